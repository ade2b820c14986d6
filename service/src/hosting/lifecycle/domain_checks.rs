//! The custom domains' background work (the leader's, [`run_due`]): a domain waiting for DNS
//! is looked up (a CNAME to the site's `{slug}.{base_domain}`, or the TXT token at
//! `_vmw-verify.{name}`); once its ownership is proven it routes to the site over HTTP and its
//! certificate is asked of the ACME server by HTTP-01 (nginx hands the CA's request to the
//! app on every name); with the certificate it is `active` over HTTPS, HTTP redirecting. Its
//! renewal comes at two thirds of the certificate's lifetime. Every failure is the owner's to
//! read (`last_error`, an event) with the next try, backing off; a certificate that cannot be
//! renewed keeps being served until it expires.
use std::time::Duration;

use time::OffsetDateTime;
use vmw_types::{CertSource, DomainMethod, DomainState, EventKind, EventStatus};

use crate::dns::{Ownership, VerifyError};
use crate::hosting::certs::http01::DbHttp01;
use crate::hosting::certs::record;
use crate::hosting::cx::Cx;
use crate::hosting::lifecycle::domains::{cname_target, refresh_route, txt_value};
use crate::store::{DomainRow, HostingRow, domain_cert_label};
use crate::tls::{AcmeError, Challenge, IssuedCert, validity};
use crate::domain_name::DomainName;

/// Looks at every domain whose time has come; returns how many were looked at.
pub(crate) async fn run_due(cx: &Cx) -> usize {
    let due = match cx.store.domains_due(crate::db::now_ms(), Duration::ZERO).await {
        Ok(d) => d,
        Err(err) => {
            tracing::warn!(%err, "could not read the domains due");
            return 0;
        }
    };
    for d in &due {
        let Ok(Some(site)) = cx.store.get(d.hosting_id).await else { continue };
        if d.verified_at.is_none() {
            verify(cx, &site, d).await;
        } else {
            certify(cx, &site, d).await;
        }
    }
    due.len()
}

/// How long until a domain waiting for its DNS record is looked up again: 30 s doubling to an
/// hour (an owner who fixed it presses "Check now").
fn dns_backoff(attempts: i32) -> Duration {
    Duration::from_secs(30).saturating_mul(1u32 << attempts.clamp(0, 7) as u32).min(Duration::from_secs(3600))
}

fn later(d: Duration) -> i64 {
    crate::db::now_ms() + d.as_millis() as i64
}

async fn verify(cx: &Cx, site: &HostingRow, d: &DomainRow) {
    let name = DomainName::from_stored(d.name.clone());
    let token = match txt_value(cx, d.user_id, &d.name).await {
        Ok(t) => t,
        Err(err) => return tracing::warn!(domain = %d.name, %err, "no verification token"),
    };
    let target = cname_target(cx, &site.slug);
    match cx.shared.certs.lookup.verify(&d.name, &target, &name.txt_name(), &token).await {
        Ok(how) => {
            let method = match how {
                Ownership::Cname => DomainMethod::Cname,
                Ownership::Txt => DomainMethod::Txt,
            };
            let now = Some(crate::db::now_ms());
            if !matches!(cx.store.update_domain_state(d.id, DomainState::Verified, Some(method), None, now, 0).await, Ok(true)) {
                return; // removed meanwhile
            }
            tracing::info!(domain = %d.name, ?method, "custom domain verified");
            tell(cx, site, EventStatus::Succeeded, format!("Domain {} verified by its {}", name.display(), method.label())).await;
            if let Err(err) = refresh_route(cx, site.id).await {
                tracing::error!(domain = %d.name, %err, "a verified domain could not be routed");
            }
            // Its certificate at once (the CA reaches it over HTTP now).
            if let Ok(Some(d)) = cx.store.domain(d.id).await {
                certify(cx, site, &d).await;
            }
        }
        Err(err) => {
            let attempts = d.attempts + 1;
            let next = later(dns_backoff(d.attempts));
            let detail = err.to_string();
            let _ = cx.store.update_domain_state(d.id, DomainState::WaitingDns, None, Some(detail.clone()), Some(next), attempts).await;
            // Told once per new reason, not at every try.
            if d.last_error.as_deref() != Some(detail.as_str()) && !matches!(err, VerifyError::Lookup { .. }) {
                tell(cx, site, EventStatus::Info, format!("Domain {}: {detail}", name.display())).await;
            }
        }
    }
}

/// Issues or renews domain `d`'s certificate by HTTP-01.
async fn certify(cx: &Cx, site: &HostingRow, d: &DomainRow) {
    let certs = &cx.shared.certs;
    let label = domain_cert_label(d.id);
    let names = vec![d.name.clone()];
    let current = certs.files.load(&label).ok().flatten().filter(|c| c.not_after > OffsetDateTime::now_utc());
    // An active certificate is renewed at its time, not at every "Check now" (the CA counts
    // duplicate certificates).
    if let Some(c) = current.as_ref().filter(|_| d.state == DomainState::Active) {
        let renew = validity::renew_at(c.not_before, c.not_after);
        if OffsetDateTime::now_utc() < renew {
            let _ = cx.store.update_domain_state(d.id, DomainState::Active, d.method, None, Some(record::at_ms(renew)), 0).await;
            return;
        }
    }
    let working = if current.is_some() { DomainState::Renewing } else { DomainState::Issuing };
    let _ = cx.store.update_domain_state(d.id, working, d.method, d.last_error.clone(), d.next_check_at, d.attempts).await;
    let result = match certs.acme(&cx.cfg).await {
        Ok(acme) => acme.issue(&names, Challenge::Http01(&DbHttp01(cx.store.db().clone()))).await,
        Err(e) => Err(e),
    };
    let display = crate::domain_name::display_name(&d.name);
    let attempts = d.attempts + 1;
    let failed_wait = |e: Option<&AcmeError>| record::wait_after(e, attempts as u32);
    match result
        .map_err(|e| (failed_wait(Some(&e)), e.to_string()))
        .and_then(|c| certs.files.save(&label, &c).map(|_| c).map_err(|e| (failed_wait(None), e.to_string())))
    {
        Ok(cert) => {
            let renew = validity::renew_at(cert.not_before, cert.not_after);
            record::issued(cx, &label, &names, CertSource::Acme, &cert, renew).await;
            let _ = cx.store.set_domain_cert(d.id, Some(record::at_ms(cert.not_after))).await;
            // Served first (an issuing or renewing name is routed, with whatever certificate
            // its files hold), then shown active: "active" means nginx serves the new one.
            if let Err(err) = refresh_route(cx, site.id).await {
                tracing::error!(domain = %d.name, %err, "a domain's new certificate could not be served");
            }
            if !matches!(cx.store.update_domain_state(d.id, DomainState::Active, d.method, None, Some(record::at_ms(renew)), 0).await, Ok(true)) {
                return;
            }
            let what = if current.is_some() { "renewed" } else { "issued" };
            tell(cx, site, EventStatus::Succeeded, format!("Certificate for {display} {what}; it expires {}", date(cert.not_after))).await;
        }
        Err((wait, error)) => {
            let next = OffsetDateTime::now_utc() + wait;
            let soon = record::failed(cx, &label, &names, CertSource::Acme, current.as_ref(), attempts, &error, next).await;
            // With a certificate still valid the name keeps being served with it.
            let state = if current.is_some() { DomainState::Renewing } else { DomainState::Failed };
            let _ = cx.store.update_domain_state(d.id, state, d.method, Some(error.clone()), Some(record::at_ms(next)), attempts).await;
            if soon {
                let expires = current.as_ref().map(|c: &IssuedCert| date(c.not_after)).unwrap_or_default();
                tell(cx, site, EventStatus::Failed, format!("Certificate for {display} could not be renewed and expires {expires}: {error}")).await;
            } else if d.last_error.as_deref() != Some(error.as_str()) {
                tell(cx, site, EventStatus::Failed, format!("Certificate for {display} could not be issued: {error}")).await;
            }
        }
    }
}

fn date(t: OffsetDateTime) -> String {
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", t.year(), t.month() as u8, t.day(), t.hour(), t.minute())
}

async fn tell(cx: &Cx, site: &HostingRow, status: EventStatus, message: String) {
    cx.event(site, EventKind::Action, None, status, message, None).await;
}
