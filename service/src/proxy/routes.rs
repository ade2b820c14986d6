//! The sites' routes: published, refreshed, checked, removed and listed, each change rolled
//! back when nginx refuses it.
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::files::{read_opt, restore, write_atomic};
use super::{Proxy, ProxyError, SiteRoute, io, render, validate_slug};

impl Proxy {
    /// Publishes a site. On any failure the previous files (or none) are put back.
    pub async fn add_route(&self, route: &SiteRoute) -> Result<(), ProxyError> {
        let mut contents = self.render_route(route)?;
        if self.inner.invalid.load(Ordering::SeqCst) {
            contents[0].push_str("\nthis_is_not_an_nginx_directive on;\n");
        }
        let _g = self.exclusive().await;
        let paths = self.route_files(route.hosting_id);
        let before = read_all(&paths).await?;
        for (p, c) in paths.iter().zip(&contents) {
            write_atomic(p, c).await?;
        }
        if let Err(e) = self.apply().await {
            // nginx still runs the last good configuration (the reload never happened).
            restore_all(&paths, before).await?;
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
            let contents = self.render_route(r)?;
            let paths = self.route_files(r.hosting_id);
            let before = read_all(&paths).await?;
            if before.iter().zip(&contents).all(|(b, c)| b.as_deref() == Some(c.as_str())) {
                continue;
            }
            for (p, c) in paths.iter().zip(&contents) {
                write_atomic(p, c).await?;
            }
            changed.push((paths, before));
        }
        if changed.is_empty() {
            return Ok(0);
        }
        if let Err(e) = self.apply().await {
            for (paths, before) in changed {
                restore_all(&paths, before).await?;
            }
            return Err(e);
        }
        Ok(changed.len())
    }

    /// A site's files: locations, upstream, HTTP map lines and names, HTTPS map lines and names
    /// (see `route_files`). Its certificates are checked first (nginx reads them only at handshakes).
    fn render_route(&self, r: &SiteRoute) -> Result<[String; FILES], ProxyError> {
        if self.inner.cfg.nginx_listen_tls.is_some() {
            for t in r.subdomain_tls.iter().chain(r.domains.iter().filter_map(|d| d.tls.as_ref())) {
                super::https::check_cert_files(t)?;
            }
        }
        let (locations, server) = render::site_files(&self.inner.cfg, &self.inner.prefix, r)?;
        let (http_map, http_names) = render::site_http_files(&self.inner.cfg, r)?;
        let (map, names) = render::site_https_files(&self.inner.cfg, r)?;
        Ok([locations, server, http_map, http_names, map, names])
    }

    /// Where a site's files are, in the order of `render_route`.
    fn route_files(&self, hosting_id: i32) -> [PathBuf; FILES] {
        [
            self.site_file(hosting_id),
            self.server_file(hosting_id),
            self.http_map_file(hosting_id),
            self.http_names_file(hosting_id),
            self.https_map_file(hosting_id),
            self.https_names_file(hosting_id),
        ]
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

    /// Unpublishes a site (its HTTPS names and map lines with it). Missing: fine.
    pub async fn remove_route(&self, hosting_id: i32) -> Result<(), ProxyError> {
        let _g = self.exclusive().await;
        let paths = self.route_files(hosting_id);
        let before = read_all(&paths).await?;
        if before.iter().all(Option::is_none) {
            return Ok(());
        }
        for p in &paths {
            restore(p, None).await?;
        }
        if let Err(e) = self.apply().await {
            restore_all(&paths, before).await?;
            return Err(e);
        }
        let _ = tokio::fs::remove_file(self.visits_file(hosting_id)).await;
        let _ = tokio::fs::remove_file(self.tls_visits_file(hosting_id)).await;
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
                .and_then(|r| {
                    [".locations.conf", ".server.conf", ".http.map", ".http.names", ".https.map", ".https.names"].iter().find_map(|s| r.strip_suffix(s))
                })
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

/// How many files a site has (`Proxy::route_files`).
const FILES: usize = 6;

async fn read_all(paths: &[PathBuf; FILES]) -> Result<[Option<String>; FILES], ProxyError> {
    let mut out: [Option<String>; FILES] = Default::default();
    for (o, p) in out.iter_mut().zip(paths) {
        *o = read_opt(p).await?;
    }
    Ok(out)
}

async fn restore_all(paths: &[PathBuf; FILES], before: [Option<String>; FILES]) -> Result<(), ProxyError> {
    for (p, b) in paths.iter().zip(before) {
        restore(p, b).await?;
    }
    Ok(())
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
