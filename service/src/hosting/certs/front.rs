//! The dashboard's certificate and the sites' `{slug}.{base_domain}` one(s): what nginx's
//! [`TlsFront`] is made of, kept current. [`front`] with `ask_ca: false` reads what is on disk
//! (and lets the local CA make what is missing, which takes milliseconds): the front at start,
//! before nginx runs. With `ask_ca: true` (the leader's loop) the ACME server is asked for what
//! is missing or due, with back-off after failures.
use time::OffsetDateTime;
use vmw_types::CertSource;

use super::http01::DbHttp01;
use super::record;
use super::sources::{self, Source};
use crate::hosting::cx::Cx;
use crate::proxy::{TlsFront, TlsName};
use crate::store::HostingRow;
use crate::tls::{AcmeError, Challenge, IssuedCert, validity};

/// The front as it should be served now (see the module's doc).
pub(crate) async fn front(cx: &Cx, ask_ca: bool) -> TlsFront {
    let dashboard = keep(cx, "dashboard", &sources::dashboard(&cx.cfg), ask_ca).await;
    let sites = keep(cx, "sites", &sources::sites(&cx.cfg), ask_ca).await;
    TlsFront { dashboard, sites, hsts_max_age_secs: cx.cfg.hsts_max_age_secs }
}

/// The certificate of one site's `{slug}.{base_domain}` when the base domain cannot take a
/// wildcard (`localhost`): issued by the local CA, one per site (label `site-{id}`).
pub(crate) async fn site_name(cx: &Cx, row: &HostingRow) -> Option<TlsName> {
    if sources::sites(&cx.cfg) != Source::LocalCa(Vec::new()) {
        return None;
    }
    let name = format!("{}.{}", row.slug, cx.cfg.base_domain.trim_end_matches('.'));
    keep(cx, &site_label(row.id), &Source::LocalCa(vec![name]), false).await
}

/// The label of site `id`'s own certificate (see [`site_name`]).
pub(crate) fn site_label(id: i32) -> String {
    format!("site-{id}")
}

fn source_kind(s: &Source) -> CertSource {
    match s {
        Source::LocalCa(_) => CertSource::LocalCa,
        Source::Operator(_) => CertSource::Operator,
        _ => CertSource::Acme,
    }
}

/// Whether `cert` certifies every one of `names` and is valid now.
fn fits(cert: &IssuedCert, names: &[String]) -> bool {
    let have = validity::names(&cert.chain_pem).unwrap_or_default();
    cert.not_after > OffsetDateTime::now_utc() && names.iter().all(|n| have.iter().any(|h| h.eq_ignore_ascii_case(n)))
}

/// The certificate `label` from `source`: issued when missing, stale or due (the CA only with
/// `ask_ca`, and not before the back-off of earlier failures ends), then served while valid.
async fn keep(cx: &Cx, label: &str, source: &Source, ask_ca: bool) -> Option<TlsName> {
    let names = match source {
        Source::None => return None,
        Source::Operator(paths) => return operator(cx, label, paths.clone()).await,
        Source::LocalCa(n) if n.is_empty() => return None,
        Source::LocalCa(n) | Source::AcmeHttp(n) | Source::AcmeDns(n) => n.clone(),
    };
    let certs = &cx.shared.certs;
    let mut current = certs.files.load(label).unwrap_or_else(|err| {
        tracing::warn!(label, %err, "a saved certificate could not be read; a new one is issued");
        None
    });
    let now = OffsetDateTime::now_utc();
    let due = match &current {
        Some(c) if fits(c, &names) => now >= validity::renew_at(c.not_before, c.not_after) || ari_due(cx, source, c).await,
        _ => true,
    };
    let local = matches!(source, Source::LocalCa(_));
    if due && (local || ask_ca) {
        let (failures, next_try) = record::backoff_of(cx, label).await;
        if next_try.is_none_or(|t| crate::db::now_ms() >= t) {
            match issue(cx, source, &names).await {
                Ok(cert) => match certs.files.save(label, &cert) {
                    Ok(_) => {
                        let next = validity::renew_at(cert.not_before, cert.not_after);
                        record::issued(cx, label, &names, source_kind(source), &cert, next).await;
                        tracing::info!(label, names = ?names, not_after = %cert.not_after, "certificate issued");
                        current = Some(cert);
                    }
                    Err(err) => tracing::error!(label, %err, "an issued certificate could not be saved"),
                },
                Err((acme_error, error)) => {
                    let failures = failures + 1;
                    let next = now + record::wait_after(acme_error.as_ref(), failures as u32);
                    let kept = current.as_ref().filter(|c| fits(c, &names));
                    record::failed(cx, label, &names, source_kind(source), kept, failures, &error, next).await;
                }
            }
        }
    }
    let cert = current.filter(|c| fits(c, &names))?;
    record::expiry_metric(label, cert.not_after);
    Some(TlsName {
        cert: certs.files.files(label).ok()?,
        redirect_http: source.redirects_http(),
        ocsp_stapling: validity::ocsp_url(&cert.chain_pem).is_some(),
    })
}

/// Whether the CA's renewal information (ARI) asks for an early renewal.
async fn ari_due(cx: &Cx, source: &Source, cert: &IssuedCert) -> bool {
    if !matches!(source, Source::AcmeHttp(_) | Source::AcmeDns(_)) {
        return false;
    }
    let Ok(acme) = cx.shared.certs.acme(&cx.cfg).await else { return false };
    acme.renewal_window(&cert.chain_pem).await.is_some_and(|(start, _)| OffsetDateTime::now_utc() >= start)
}

/// A new certificate for `names` from `source`; the error as the operator reads it, with the
/// CA's (for the back-off).
async fn issue(cx: &Cx, source: &Source, names: &[String]) -> Result<IssuedCert, (Option<AcmeError>, String)> {
    let certs = &cx.shared.certs;
    let acme_err = |e: AcmeError| {
        let text = e.to_string();
        (Some(e), text)
    };
    match source {
        Source::LocalCa(_) => {
            let ca = certs.local_ca(&cx.cfg).await.map_err(|e| (None, e.to_string()))?;
            ca.issue(names).map_err(|e| (None, e.to_string()))
        }
        Source::AcmeHttp(_) => {
            let acme = certs.acme(&cx.cfg).await.map_err(acme_err)?;
            acme.issue(names, Challenge::Http01(&DbHttp01(cx.store.db().clone()))).await.map_err(acme_err)
        }
        Source::AcmeDns(_) => {
            let dns = certs.dns01.as_ref().ok_or((None, "no DNS update server (--dns-update-server, --dns-tsig-key)".to_owned()))?;
            let acme = certs.acme(&cx.cfg).await.map_err(acme_err)?;
            acme.issue(names, Challenge::Dns01(dns)).await.map_err(acme_err)
        }
        Source::None | Source::Operator(_) => Err((None, "nothing to issue".into())),
    }
}

/// The operator's files, served as they are (they keep them current); their expiry is
/// recorded and measured like ours. Unreadable files are not served (nginx would refuse them).
async fn operator(cx: &Cx, label: &str, paths: crate::proxy::CertPaths) -> Option<TlsName> {
    let chain = match tokio::fs::read_to_string(&paths.chain).await {
        Ok(c) => c,
        Err(err) => {
            tracing::error!(label, path = %paths.chain.display(), %err, "the operator's certificate cannot be read: not served");
            return None;
        }
    };
    let Ok((not_before, not_after)) = validity::validity(&chain) else {
        tracing::error!(label, path = %paths.chain.display(), "the operator's certificate file holds no certificate: not served");
        return None;
    };
    let names = validity::names(&chain).unwrap_or_default();
    let cert = IssuedCert { chain_pem: chain.clone(), key_pem: String::new(), not_before, not_after };
    record::issued(cx, label, &names, CertSource::Operator, &cert, not_after).await;
    Some(TlsName { cert: paths, redirect_http: true, ocsp_stapling: validity::ocsp_url(&chain).is_some() })
}
