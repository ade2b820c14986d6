//! What a hosting row means to its VM and to nginx: its VM's spec, its seed (keys, welcome
//! page), its route, whether it answers; and how its failures are told to its owner.
use std::time::Duration;

use vmw_types::HostingState;
use crate::hosting::cx::Cx;
use crate::store::HostingRow;
use crate::domain_name::domain_cert_files;
use crate::proxy::{CertPaths, DomainRoute, SiteRoute, TlsName};
use crate::vm::{CpuPriority, SeedSpec, VmSpec};
use crate::{Error, Result};

pub(crate) fn vm_spec(cx: &Cx, row: &HostingRow) -> Result<VmSpec> {
    let plan = cx
        .cfg
        .plan(&row.plan)
        .ok_or_else(|| Error::internal(format!("plan '{}' is no longer configured", row.plan)))?;
    let (Some(http), Some(ssh)) = (row.http_port, row.ssh_port) else {
        return Err(Error::internal("ports are not allocated"));
    };
    Ok(VmSpec {
        hosting_id: row.id,
        vcpus: plan.vcpus,
        memory_mib: plan.memory_mib,
        disk_gib: plan.disk_gib,
        http_port: http as u16,
        ssh_port: ssh as u16,
        // A spare (no owner yet) is made in the background; a user's VM comes first.
        priority: if row.user_id.is_some() { CpuPriority::Foreground } else { CpuPriority::Background },
    })
}

/// The route of a hosting; it also serves `/{user_id}/` when it is the user's first live one.
pub(crate) async fn site_route(cx: &Cx, row: &HostingRow) -> Result<SiteRoute> {
    let user_id = row.user_id.ok_or_else(|| Error::internal("a spare has no route"))?;
    let first = cx
        .store
        .first_for_user_in(
            user_id,
            &[
                HostingState::Queued,
                HostingState::Provisioning,
                HostingState::Running,
                HostingState::Stopped,
                HostingState::Sleeping,
            ],
        )
        .await?;
    let http = row.http_port.ok_or_else(|| Error::internal("ports are not allocated"))?;
    Ok(SiteRoute {
        backend: cx.backend(row.node_id)?,
        hosting_id: row.id,
        slug: row.slug.clone(),
        user_id,
        serve_user_path: first.map(|f| f.id) == Some(row.id),
        http_port: http as u16,
        hsts: row.hsts,
        domains: domain_routes(cx, row.id).await?,
        // `{slug}.localhost` cannot take the wildcard: the local CA certifies each site.
        subdomain_tls: crate::hosting::certs::front::site_name(cx, row).await,
    })
}

/// The site's custom domains nginx routes (ownership proven), each with its certificate once
/// its files are there (`{data_dir}/tls/certs/domain-{id}/`): HTTPS, and HTTP redirected.
async fn domain_routes(cx: &Cx, hosting_id: i32) -> Result<Vec<DomainRoute>> {
    let rows = cx.store.routed_domains_of_hosting(hosting_id).await?;
    Ok(rows
        .into_iter()
        .map(|d| {
            let (chain, key) = domain_cert_files(&cx.cfg.data_dir, d.id);
            let tls = (chain.is_file() && key.is_file())
                .then(|| TlsName { cert: CertPaths { chain, key }, redirect_http: true, ocsp_stapling: false });
            DomainRoute { id: d.id, name: d.name, tls }
        })
        .collect())
}

pub(crate) fn seed(cx: &Cx, row: &HostingRow) -> Result<SeedSpec> {
    let keys: Vec<String> = serde_json::from_str(&row.ssh_keys).map_err(Error::internal)?;
    Ok(SeedSpec {
        hostname: row.slug.clone(),
        user: cx.cfg.guest_user.clone(),
        authorized_keys: keys,
        index_html: welcome_page(&row.slug, &cx.cfg.guest_user),
    })
}

pub(crate) async fn wait_ready(cx: &Cx, row: &HostingRow) -> Result<()> {
    wait_answers(cx, row, true).await
}

/// The VM answers HTTP (any status: a redirect or a 404 at `/` is the tenant's page) and,
/// with `ssh`, sends its SSH banner. A VM restored from its own saved state needs no SSH
/// check: its sshd is the one that was saved running, and under TCG the check (sshd forks
/// and re-executes itself per connection) took about half of a start's second.
pub(crate) async fn wait_answers(cx: &Cx, row: &HostingRow, ssh: bool) -> Result<()> {
    let spec = vm_spec(cx, row)?;
    let timeout = Duration::from_secs(cx.cfg.ready_timeout_secs);
    cx.guest().wait_answers(&cx.vm, row.id, spec.http_port, ssh.then_some(spec.ssh_port), timeout).await
}

/// After a user's first site is gone (deleted, or its create failed), `/{user_id}/` moves
/// to their next live one.
pub(crate) async fn reroute_user_path(cx: &Cx, user_id: i32) {
    let next = cx
        .store
        .first_for_user_in(user_id, &[HostingState::Running, HostingState::Stopped, HostingState::Sleeping])
        .await;
    if let Ok(Some(next)) = next {
        if let Ok(route) = site_route(cx, &next).await {
            if let Err(err) = cx.proxy().add_route(&route).await {
                tracing::warn!(hosting_id = next.id, %err, "could not move the user path route");
            }
        }
    }
}

/// A user-facing description of an error (the owner sees their own hosting's failure, and it
/// names the step). nginx's own words are not shown: its configuration and its reports are
/// shared by every site (a `[emerg]` line may quote another tenant's file), so they go to the
/// log and the owner reads a plain sentence. Its "not serving" hint is already this site's own.
pub(crate) fn describe(err: &Error) -> String {
    use crate::proxy::ProxyError as P;
    match err {
        Error::Proxy(p @ (P::Rejected { .. } | P::Command { .. } | P::Spawn { .. } | P::DidNotStop { .. } | P::Io { .. })) => {
            tracing::error!(error = %p, detail = ?p, "nginx failed; the owner is shown a plain message");
            match p {
                P::Rejected { .. } => "the web server (nginx) refused the new configuration; the details are in the server's log".into(),
                _ => "the web server (nginx) could not apply the change; the details are in the server's log".into(),
            }
        }
        other => other.to_string(),
    }
}

/// The page a new site shows until its owner uploads their own. `slug` is validated
/// ([a-z0-9-]), `user` comes from configuration; both are escaped anyway.
pub(crate) fn welcome_page(slug: &str, user: &str) -> String {
    let slug = crate::escape::markup(slug);
    let user = crate::escape::markup(user);
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{slug} is live</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1e293b}}code{{background:#f1f5f9;padding:.1rem .3rem;border-radius:.25rem}}</style>
</head><body>
<h1>Welcome to {slug}</h1>
<p data-site="{slug}">This site runs in its own virtual machine, hosted by vm-webhoster.</p>
<p>Replace this page: upload files into <code>/var/www/html</code> over SFTP as <code>{user}</code>.</p>
</body></html>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welcome_page_names_the_site_and_escapes_markup() {
        let page = welcome_page("my-site", "ubuntu");
        assert!(page.contains("Welcome to my-site"));
        assert!(page.contains("data-site=\"my-site\""));
        let hostile = welcome_page("<script>", "a\"b");
        assert!(!hostile.contains("<script>"));
        assert!(hostile.contains("&lt;script&gt;"));
    }
}
