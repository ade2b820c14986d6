//! Custom domains of a site (issue #30): what the owner does (add, list, remove, check now,
//! the HSTS switch) and what the domains' background work needs (the verification token, the
//! route refresh, forgetting a certificate). The façade authorises and calls one of these; the
//! background checker (DNS, ACME) calls the store and [`refresh_route`] / [`tell_owner`].
use std::io::ErrorKind;

use crate::domain_name::{self, DomainName, domain_cert_dir, verify_token};
use crate::hosting::cx::Cx;
use crate::store::{DomainRow, HostingRow, domain_cert_label};
use crate::{Error, Result};
use vmw_types::{DomainVerification, DomainView, EventKind, EventStatus, HostingState, Operation};

/// The server's verification secret (`{data_dir}/tls/verify.secret`), read or made once per
/// process.
pub(crate) async fn secret(cx: &Cx) -> Result<&[u8]> {
    let data_dir = cx.cfg.data_dir.clone();
    let s = cx
        .shared
        .verify_secret
        .get_or_try_init(|| async move {
            tokio::task::spawn_blocking(move || domain_name::load_or_create_secret(&data_dir))
                .await
                .map_err(Error::internal)?
                .map_err(|e| Error::internal(format!("the domain verification secret: {e}")))
        })
        .await?;
    Ok(s.as_slice())
}

/// The TXT value that proves `ascii_name` is `user_id`'s (the checker compares with it).
pub(crate) async fn txt_value(cx: &Cx, user_id: i32, ascii_name: &str) -> Result<String> {
    Ok(verify_token(secret(cx).await?, user_id, ascii_name))
}

/// `{slug}.{base_domain}`: what a custom domain's CNAME points at.
pub(crate) fn cname_target(cx: &Cx, slug: &str) -> String {
    format!("{slug}.{}", cx.cfg.base_domain.trim_end_matches('.'))
}

/// What the owner sees of a domain of `site`.
pub(crate) async fn view(cx: &Cx, site: &HostingRow, d: &DomainRow) -> Result<DomainView> {
    let name = DomainName::from_stored(d.name.clone());
    Ok(DomainView {
        id: d.id,
        hosting_id: d.hosting_id,
        display_name: name.display(),
        name: d.name.clone(),
        state: d.state,
        method: d.method,
        last_error: d.last_error.clone(),
        next_check_at: d.next_check_at,
        cert_not_after: d.cert_not_after,
        verified_at: d.verified_at,
        created_at: d.created_at,
        verification: DomainVerification {
            cname_target: cname_target(cx, &site.slug),
            txt_name: name.txt_name(),
            txt_value: txt_value(cx, d.user_id, &d.name).await?,
        },
    })
}

/// The site's domains, oldest first.
pub(crate) async fn list(cx: &Cx, site: &HostingRow) -> Result<Vec<DomainView>> {
    let rows = cx.store.domains_of_hosting(site.id).await?;
    let mut out = Vec::with_capacity(rows.len());
    for d in &rows {
        out.push(view(cx, site, d).await?);
    }
    Ok(out)
}

/// Domain `did` of `site`, or not found (a domain of another site is not this one's).
pub(crate) async fn of_site(cx: &Cx, site: &HostingRow, did: i32) -> Result<DomainRow> {
    match cx.store.domain(did).await? {
        Some(d) if d.hosting_id == site.id => Ok(d),
        _ => Err(Error::NotFound("domain")),
    }
}

/// A site going away takes no new domain and no new setting.
fn refuse_if_deleting(site: &HostingRow) -> Result<()> {
    if site.state == HostingState::Deleting || site.operation == Some(Operation::Delete) {
        return Err(Error::conflict(Some("state"), format!("'{}' is being deleted", site.slug)));
    }
    Ok(())
}

/// Adds `raw` to `site` (checked by [`DomainName::parse`]), waiting for its DNS record; the
/// checker is woken to look at once. Counted against the site owner's `domains_per_user`.
pub(crate) async fn add(cx: &Cx, site: &HostingRow, raw: &str) -> Result<DomainView> {
    refuse_if_deleting(site)?;
    let owner = site.user_id.ok_or(Error::NotFound("hosting"))?;
    let name = DomainName::parse(raw, &cx.cfg.public_host, &cx.cfg.base_domain).map_err(domain_name::DomainError::from)?;
    let now = crate::db::now_ms();
    let row = cx.store.insert_domain(site.id, owner, &name, cx.cfg.domains_per_user, now).await?;
    tracing::info!(hosting_id = site.id, domain_id = row.id, domain = %name, "custom domain added");
    tell_owner(cx, site, format!("Domain {} added; waiting for its DNS record", name.display())).await;
    cx.shared.domain_checks.notify_one();
    view(cx, site, &row).await
}

/// Removes domain `did` of `site`: its row, its route (the site's is written again without it),
/// its certificate (files and row).
pub(crate) async fn remove(cx: &Cx, site: &HostingRow, did: i32) -> Result<()> {
    let d = of_site(cx, site, did).await?;
    cx.store.delete_domain(d.id).await?;
    if (d.state.is_routed() || d.verified_at.is_some())
        && let Err(err) = refresh_route(cx, site.id).await
    {
        tracing::error!(hosting_id = site.id, domain_id = d.id, %err, "a removed domain's route could not be withdrawn");
    }
    forget_cert(cx, d.id).await?;
    tracing::info!(hosting_id = site.id, domain_id = d.id, domain = %d.name, "custom domain removed");
    tell_owner(cx, site, format!("Domain {} removed", domain_name::display_name(&d.name))).await;
    Ok(())
}

/// The owner's "Check now": domain `did` is looked at at once (its DNS record, or its
/// certificate once verified), and the checker is woken.
pub(crate) async fn check_now(cx: &Cx, site: &HostingRow, did: i32) -> Result<DomainView> {
    let d = of_site(cx, site, did).await?;
    cx.store.set_domain_next_check(d.id, crate::db::now_ms()).await?;
    cx.shared.domain_checks.notify_one();
    let d = of_site(cx, site, did).await?;
    view(cx, site, &d).await
}

/// The owner's HSTS switch: the site's route is written again with it; when nginx refuses,
/// the switch is put back and the error returned.
pub(crate) async fn set_hsts(cx: &Cx, site: &HostingRow, on: bool) -> Result<HostingRow> {
    refuse_if_deleting(site)?;
    if site.hsts == on {
        return Ok(site.clone());
    }
    let row = cx.store.set_hsts(site.id, on).await?;
    if let Err(err) = refresh_route(cx, site.id).await {
        cx.store.set_hsts(site.id, site.hsts).await?;
        return Err(err);
    }
    let msg = if on { "HSTS turned on for the site's HTTPS names" } else { "HSTS turned off" };
    tell_owner(cx, &row, msg.to_owned()).await;
    Ok(row)
}

/// Writes the site's route again (its domains or its HSTS switch changed). A site with no
/// route yet (queued, provisioning, failed, deleted) is left alone: its route is made with
/// its domains when it is published.
pub(crate) async fn refresh_route(cx: &Cx, hosting_id: i32) -> Result<()> {
    let Some(row) = cx.store.get(hosting_id).await? else { return Ok(()) };
    if row.user_id.is_none() || row.http_port.is_none() || !cx.proxy().site_file(hosting_id).exists() {
        return Ok(());
    }
    let route = crate::hosting::saga::site::site_route(cx, &row).await?;
    cx.proxy().add_route(&route).await?;
    Ok(())
}

/// Removes domain `domain_id`'s certificate: its directory `{data_dir}/tls/certs/domain-{id}/`
/// and its `certificates` row. Nothing there is not an error.
pub(crate) async fn forget_cert(cx: &Cx, domain_id: i32) -> Result<()> {
    let dir = domain_cert_dir(&cx.cfg.data_dir, domain_id);
    match tokio::fs::remove_dir_all(&dir).await {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(source) => {
            return Err(Error::internal(crate::file_error::FileError { what: "removing", path: dir, source }));
        }
    }
    cx.store.delete_certificate(&domain_cert_label(domain_id)).await
}

/// A hosting being deleted: every domain's certificate, then their rows (the foreign key would
/// take the rows too; the files only go here). Its route is removed by the delete itself.
pub(crate) async fn forget_domains_of(cx: &Cx, hosting_id: i32) -> Result<()> {
    for d in cx.store.domains_of_hosting(hosting_id).await? {
        forget_cert(cx, d.id).await?;
    }
    // The site's own `{slug}.{base_domain}` certificate (the local CA's), if it had one.
    let own = crate::hosting::certs::front::site_label(hosting_id);
    if let Err(err) = cx.shared.certs.files.remove(&own) {
        tracing::warn!(hosting_id, %err, "could not remove the site's certificate");
    }
    cx.store.delete_certificate(&own).await?;
    cx.store.delete_domains_of_hosting(hosting_id).await
}

/// Tells the site's owner (the site's events: the page re-reads its domains on them).
pub(crate) async fn tell_owner(cx: &Cx, site: &HostingRow, message: String) {
    cx.event(site, EventKind::Action, None, EventStatus::Info, message, None).await;
}
