//! The sites' routes: published, refreshed, checked, removed and listed, each change rolled
//! back when nginx refuses it.
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::files::{read_opt, restore, write_atomic};
use super::{Proxy, ProxyError, SiteRoute, io, render, validate_slug};

impl Proxy {
    /// Publishes a site. On any failure the previous files (or none) are put back.
    pub async fn add_route(&self, route: &SiteRoute) -> Result<(), ProxyError> {
        let (locations, server) = render::site_files(&self.inner.cfg, &self.inner.prefix, route)?;
        let poison = self.inner.invalid.load(Ordering::SeqCst);
        let locations = if poison { format!("{locations}\nthis_is_not_an_nginx_directive on;\n") } else { locations };
        let _g = self.exclusive().await;
        let lf = self.site_file(route.hosting_id);
        let sf = self.server_file(route.hosting_id);
        let before = (read_opt(&lf).await?, read_opt(&sf).await?);
        write_atomic(&lf, &locations).await?;
        write_atomic(&sf, &server).await?;
        if let Err(e) = self.apply().await {
            restore(&lf, before.0).await?;
            restore(&sf, before.1).await?;
            // Put nginx back on the last good configuration (it still runs it: reload never happened).
            return Err(e);
        }
        Ok(())
    }

    /// Rewrites the files of these routes where they differ from what the templates make now
    /// (an upgrade changed them, or the waker's port moved with a restart), then reloads once.
    /// Returns how many sites changed. On failure every file is put back.
    pub async fn refresh_routes(&self, routes: &[SiteRoute]) -> Result<usize, ProxyError> {
        let _g = self.exclusive().await;
        let mut changed = Vec::new();
        for r in routes {
            let (locations, server) = render::site_files(&self.inner.cfg, &self.inner.prefix, r)?;
            let (lf, sf) = (self.site_file(r.hosting_id), self.server_file(r.hosting_id));
            let before = (read_opt(&lf).await?, read_opt(&sf).await?);
            if before.0.as_deref() == Some(locations.as_str()) && before.1.as_deref() == Some(server.as_str()) {
                continue;
            }
            write_atomic(&lf, &locations).await?;
            write_atomic(&sf, &server).await?;
            changed.push((lf, sf, before));
        }
        if changed.is_empty() {
            return Ok(0);
        }
        if let Err(e) = self.apply().await {
            for (lf, sf, before) in changed {
                restore(&lf, before.0).await?;
                restore(&sf, before.1).await?;
            }
            return Err(e);
        }
        Ok(changed.len())
    }

    /// Waits until nginx really serves the site at `/{slug}/` (any answer but a gateway error),
    /// so "running" means reachable. On failure, the reason names nginx's last error line about
    /// this site's own upstream, if there is one.
    pub async fn check_route(&self, route: &SiteRoute, timeout: Duration) -> Result<(), ProxyError> {
        let slug = route.slug.as_str();
        validate_slug(slug)?;
        let url = format!("http://{}/{slug}/", self.inner.cfg.nginx_local_addr());
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last: Option<u16>;
        loop {
            match crate::probe::status(&url, Some("localhost"), Duration::from_secs(3)).await {
                Some(code) if !(502..=504).contains(&code) => return Ok(()),
                code => last = code,
            }
            if tokio::time::Instant::now() >= deadline {
                let log = tokio::fs::read_to_string(self.inner.prefix.join("logs/error.log")).await.unwrap_or_default();
                let backend = std::net::SocketAddr::new(route.backend, route.http_port).to_string();
                let hint = own_error_line(&log, route.hosting_id, &backend).unwrap_or("").to_owned();
                return Err(ProxyError::NotServing { slug: slug.to_owned(), last_status: last, hint }.counted());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Unpublishes a site. Missing: fine.
    pub async fn remove_route(&self, hosting_id: i32) -> Result<(), ProxyError> {
        let _g = self.exclusive().await;
        let lf = self.site_file(hosting_id);
        let sf = self.server_file(hosting_id);
        let before = (read_opt(&lf).await?, read_opt(&sf).await?);
        if before.0.is_none() && before.1.is_none() {
            return Ok(());
        }
        restore(&lf, None).await?;
        restore(&sf, None).await?;
        if let Err(e) = self.apply().await {
            restore(&lf, before.0).await?;
            restore(&sf, before.1).await?;
            return Err(e);
        }
        let _ = tokio::fs::remove_file(self.visits_file(hosting_id)).await;
        Ok(())
    }

    /// Hosting ids that have route files (for reconciliation).
    pub async fn list_routes(&self) -> Result<Vec<i32>, ProxyError> {
        let dir = self.sites();
        let mut out = Vec::new();
        let mut rd = match tokio::fs::read_dir(&dir).await {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io("reading", &dir, e)),
        };
        while let Some(entry) = rd.next_entry().await.map_err(|e| io("reading", &dir, e))? {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let id = name
                .strip_prefix("hosting-")
                .and_then(|r| r.strip_suffix(".locations.conf").or_else(|| r.strip_suffix(".server.conf")))
                .and_then(|n| n.parse::<i32>().ok());
            if let Some(id) = id {
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

}

/// The last `[error]` line of nginx's log about this site's own upstream (`vmw_site_{id}` or its
/// `backend` address). The log is shared by every site and its lines carry other tenants'
/// visitors (addresses, URLs), so no other line may reach this site's owner. The request and
/// referrer fields are the client's text: a line with a second `upstream: "` is a forgery.
fn own_error_line<'a>(log: &'a str, hosting_id: i32, backend: &str) -> Option<&'a str> {
    let named = format!("vmw_site_{hosting_id}");
    log.lines().rev().filter(|l| l.contains("[error]")).find(|l| {
        let mut fields = l.split("upstream: \"").skip(1);
        let (Some(value), None) = (fields.next(), fields.next()) else { return false };
        let host = value.split('"').next().unwrap_or("").strip_prefix("http://").unwrap_or("");
        let host = host.split('/').next().unwrap_or("");
        host == named || host == backend
    })
}

#[cfg(test)]
mod tests {
    use super::own_error_line;

    const OURS: &str = r#"2026/12/01 19:30:00 [error] 81#81: *7 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: _, request: "GET /alice/ HTTP/1.0", upstream: "http://127.0.0.1:30001/", host: "localhost""#;
    const OTHERS: &str = r#"2026/12/01 19:30:01 [error] 81#81: *9 upstream prematurely closed connection while reading response header from upstream, client: 203.0.113.9, server: bob.localhost, request: "GET /bob-secret-page?token=abc HTTP/1.1", upstream: "http://127.0.0.1:30002/bob-secret-page?token=abc", host: "bob.localhost""#;

    #[test]
    fn a_failed_route_shows_only_its_own_nginx_error_lines() {
        let log = format!("{OURS}\n{OTHERS}\n");
        assert_eq!(own_error_line(&log, 3, "127.0.0.1:30001"), Some(OURS), "the other site's later line is skipped");
        assert_eq!(own_error_line(&log, 5, "127.0.0.1:3000"), None, "port 3000 is not 30001");
        assert_eq!(own_error_line(OTHERS, 3, "127.0.0.1:30001"), None);
        let named = r#"2026/12/01 19:30:02 [error] 81#81: *11 no live upstreams while connecting to upstream, client: 127.0.0.1, server: _, request: "GET /alice/ HTTP/1.0", upstream: "http://vmw_site_3/", host: "localhost""#;
        assert_eq!(own_error_line(named, 3, "127.0.0.1:30001"), Some(named));
        assert_eq!(own_error_line(named, 31, "127.0.0.1:30031"), None, "vmw_site_3 is not vmw_site_31");
        // A visitor of another site cannot make its line look like ours.
        let forged = OTHERS.replace("?token=abc HTTP", "?\", upstream: \"http://127.0.0.1:30001/ HTTP");
        assert_eq!(own_error_line(&forged, 3, "127.0.0.1:30001"), None);
        let warn = OURS.replace("[error]", "[warn]");
        assert_eq!(own_error_line(&warn, 3, "127.0.0.1:30001"), None);
    }
}
