//! CSRF: state-changing requests from a browser must come from this site. Browsers send
//! `Origin` on cross-site POSTs (and `Sec-Fetch-Site`). Bearer-token requests carry no ambient
//! credentials and are exempt, and so are cookie-less calls of the REST API (`/api/v1/...`,
//! which answers with tokens, never a cookie). The pages' forms and server functions are
//! guarded even without a cookie: a foreign page must not log a visitor into the attacker's
//! account (login CSRF). SameSite=Lax cookies are the second layer.
//!
//! The `Origin` is compared with the dashboard's own origins (scheme, host AND port), not with
//! the request's `Host` header: a DNS-rebinding page (evil.example resolved to this server)
//! sends `Host: evil.example` and `Origin: http://evil.example`, which agree with each other
//! but not with the dashboard's name. The dashboard's origins are `http://` the public host
//! (`--public-host`) on nginx's port (`--nginx-listen`) and on the app's own port (`--listen`),
//! and `https://` it on 443 (a TLS front); a loopback public host (the default, 127.0.0.1) also
//! accepts the other loopback names on those ports. Any other port of the same host is another
//! origin: browsers do not scope cookies by port, and a tenant's VM port on the dashboard's
//! host (`http://127.0.0.1:20005`) must not pass for the dashboard.
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The dashboard's own origins: (scheme, host, port).
#[derive(Clone, Debug)]
pub struct Origins(Arc<Vec<(&'static str, String, u16)>>);

impl Origins {
    /// `http://{public_host}:{port}` for each of `ports` (and its loopback aliases when it is
    /// a loopback name), and `https://{public_host}` (port 443).
    pub fn new(public_host: &str, ports: &[u16]) -> Self {
        Self::with_tls(public_host, ports, &[443])
    }

    /// As [`Origins::new`], with `https://` on each of `tls_ports`.
    pub fn with_tls(public_host: &str, ports: &[u16], tls_ports: &[u16]) -> Self {
        let host = public_host.trim().trim_end_matches('.').to_ascii_lowercase();
        let loopback = ["127.0.0.1", "localhost", "[::1]", "::1"];
        let mut names = vec![if host == "::1" { "[::1]".to_owned() } else { host.clone() }];
        if loopback.contains(&host.as_str()) {
            names.extend(["127.0.0.1", "localhost", "[::1]"].map(String::from));
        }
        names.dedup();
        let mut all = Vec::new();
        for n in &names {
            for p in ports.iter().filter(|p| **p != 0) {
                all.push(("http", n.clone(), *p));
            }
            for p in tls_ports.iter().filter(|p| **p != 0) {
                all.push(("https", n.clone(), *p));
            }
        }
        all.dedup();
        Origins(Arc::new(all))
    }

    /// The dashboard's origins of these settings: the public host on nginx's port and on the
    /// app's own (its real one: `app_upstream` is set to the bound address at start-up).
    pub fn for_config(cfg: &service::ServiceConfig) -> Self {
        let tls: Vec<u16> = std::iter::once(443).chain(cfg.nginx_listen_tls.map(|a| a.port())).collect();
        Self::with_tls(&cfg.public_host, &[cfg.nginx_listen.port(), cfg.app_upstream.port()], &tls)
    }

    /// Whether `origin` (scheme://host[:port]) is exactly one of the dashboard's.
    pub fn allows(&self, origin: &str) -> bool {
        parse_origin(origin).is_some_and(|(scheme, host, port)| self.0.iter().any(|(s, h, p)| *s == scheme && *h == host && *p == port))
    }
}

/// (scheme, host, port) of an `Origin` value: the port is the scheme's default when absent;
/// anything but `http`/`https` with a plain authority is None.
fn parse_origin(origin: &str) -> Option<(&'static str, String, u16)> {
    let (scheme, authority) = origin.split_once("://")?;
    let (scheme, default) = match scheme.to_ascii_lowercase().as_str() {
        "http" => ("http", 80),
        "https" => ("https", 443),
        _ => return None,
    };
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return None;
    }
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (h, rest) = authority.split_at(end + 1);
        match rest {
            "" => (h, None),
            r => (h, Some(r.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => default,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
        Some(_) => return None,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some((scheme, host, port))
}

pub async fn guard(State(origins): State<Origins>, req: Request<Body>, next: Next) -> Response {
    if is_cross_site_write(&origins, req.method(), req.uri().path(), req.headers()) {
        tracing::warn!(method = %req.method(), path = req.uri().path(), "refused a cross-site request");
        let body = serde_json::json!({"error": {"code": "csrf", "message": "cross-site request refused"}});
        return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    }
    next.run(req).await
}

pub fn is_cross_site_write(origins: &Origins, method: &Method, path: &str, h: &HeaderMap) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    let bearer = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("bearer "));
    if bearer {
        return false;
    }
    if h.get(header::COOKIE).is_none() && path.starts_with("/api/v1/") {
        return false; // nothing ambient to abuse, and nothing set (the register/login API calls)
    }
    if let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        return origin == "null" || !origins.allows(origin);
    }
    matches!(h.get("sec-fetch-site").and_then(|v| v.to_str().ok()), Some("cross-site"))
}

/// Whether a WebSocket handshake (a GET, which [`guard`] lets through) comes from another site.
/// Browsers send `Origin` on every handshake and let any page open a socket to any host with
/// the visitor's cookies (cross-site WebSocket hijacking), so: a foreign or `null` Origin is
/// refused, and so is a cookie-authenticated handshake without one. A script with a bearer
/// token and no Origin is no browser.
pub fn is_cross_site_upgrade(origins: &Origins, h: &HeaderMap, cookie_auth: bool) -> bool {
    match h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) => origin == "null" || !origins.allows(origin),
        None => cookie_auth,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    fn site() -> Origins {
        Origins::new("site.example", &[80, 3000])
    }

    #[test]
    fn the_origin_is_compared_with_the_public_host_not_the_host_header() {
        let rebinding = headers(&[("cookie", "id=1"), ("host", "evil.example"), ("origin", "http://evil.example")]);
        assert!(is_cross_site_write(&site(), &Method::POST, "/api/fn/change_password", &rebinding), "DNS rebinding");
        let behind_tls = headers(&[("cookie", "id=1"), ("host", "10.0.0.5:8080"), ("origin", "https://SITE.example")]);
        assert!(!is_cross_site_write(&site(), &Method::POST, "/api/fn/change_password", &behind_tls));
        let sub = headers(&[("cookie", "id=1"), ("origin", "http://blog.site.example")]);
        assert!(is_cross_site_write(&site(), &Method::POST, "/api/fn/change_password", &sub), "a site's subdomain is not the dashboard");
        let local = Origins::new("127.0.0.1", &[8080, 3000]);
        for own in ["http://127.0.0.1:8080", "http://localhost:3000", "http://[::1]:8080", "https://127.0.0.1"] {
            assert!(!is_cross_site_write(&local, &Method::POST, "/api/fn/login", &headers(&[("origin", own)])), "{own}");
        }
        let slug = headers(&[("origin", "http://ann.localhost:8080")]);
        assert!(is_cross_site_write(&local, &Method::POST, "/api/fn/login", &slug), "a slug site is another origin");
    }

    #[test]
    fn another_port_of_the_dashboards_host_is_another_origin() {
        let local = Origins::new("127.0.0.1", &[80, 3000]);
        for own in ["http://127.0.0.1", "http://127.0.0.1:80", "http://127.0.0.1:3000", "http://LOCALHOST:3000", "http://[::1]"] {
            assert!(local.allows(own), "{own}");
        }
        // A tenant's raw forward on the dashboard's host, its SSH port, nginx's port under https.
        for foreign in [
            "http://127.0.0.1:20005",
            "http://localhost:10001",
            "http://[::1]:20005",
            "https://127.0.0.1:80",
            "http://127.0.0.2:20005",
            "http://127.0.0.1:3000.evil.example",
            "http://127.0.0.1:",
            "http://user@127.0.0.1:3000",
            "ftp://127.0.0.1:3000",
            "http://127.0.0.1:99999",
        ] {
            assert!(!local.allows(foreign), "{foreign}");
            let cookie_post = headers(&[("cookie", "id=1"), ("origin", foreign)]);
            assert!(is_cross_site_write(&local, &Method::POST, "/api/v1/hostings/1/stop", &cookie_post), "{foreign}");
            assert!(is_cross_site_upgrade(&local, &headers(&[("origin", foreign)]), true), "{foreign}");
        }
        let named = Origins::new("panel.example", &[8080, 3000]);
        assert!(named.allows("http://panel.example:8080") && named.allows("https://panel.example"));
        assert!(!named.allows("http://panel.example") && !named.allows("http://panel.example:20005"));
        assert!(!named.allows("http://localhost:8080"), "loopback names only for a loopback public host");
        let mut cfg = service::ServiceConfig::default();
        cfg.app_upstream = "127.0.0.1:41234".parse().unwrap();
        let c = Origins::for_config(&cfg);
        assert!(c.allows("http://127.0.0.1") && c.allows("http://127.0.0.1:41234") && !c.allows("http://127.0.0.1:3000"));
        // nginx's HTTPS port is the dashboard's too, with the https scheme only.
        cfg.nginx_listen_tls = Some("127.0.0.1:8443".parse().unwrap());
        let c = Origins::for_config(&cfg);
        assert!(c.allows("https://127.0.0.1:8443") && c.allows("https://localhost:8443") && c.allows("https://127.0.0.1"));
        assert!(!c.allows("http://127.0.0.1:8443"), "http on the TLS port is another origin");
    }

    #[test]
    fn websocket_handshakes_must_come_from_the_dashboard() {
        let local = Origins::new("127.0.0.1", &[8080]);
        assert!(!is_cross_site_upgrade(&local, &headers(&[("origin", "http://127.0.0.1:8080")]), true));
        assert!(is_cross_site_upgrade(&local, &headers(&[("origin", "http://evil.example")]), true));
        assert!(is_cross_site_upgrade(&local, &headers(&[("origin", "http://ann.localhost")]), true), "a tenant's site");
        assert!(is_cross_site_upgrade(&local, &headers(&[("origin", "null")]), false), "a sandboxed page");
        assert!(is_cross_site_upgrade(&local, &headers(&[]), true), "a cookie without an Origin");
        assert!(!is_cross_site_upgrade(&local, &headers(&[]), false), "a script with a token");
    }
    #[test]
    fn cookie_writes_from_other_origins_are_refused() {
        let evil = headers(&[("cookie", "id=1"), ("host", "site.example"), ("origin", "https://evil.example")]);
        assert!(is_cross_site_write(&site(), &Method::POST, "/api/fn/change_password", &evil));
        let same = headers(&[("cookie", "id=1"), ("host", "site.example"), ("origin", "http://site.example")]);
        assert!(!is_cross_site_write(&site(), &Method::POST, "/api/fn/change_password", &same));
        let fetch = headers(&[("cookie", "id=1"), ("host", "a"), ("sec-fetch-site", "cross-site")]);
        assert!(is_cross_site_write(&site(), &Method::DELETE, "/api/v1/host", &fetch));
        assert!(!is_cross_site_write(&site(), &Method::GET, "/api/fn/change_password", &evil), "reads are not writes");
        let bearer = headers(&[("cookie", "id=1"), ("host", "a"), ("origin", "https://evil"), ("authorization", "Bearer vmw_x")]);
        assert!(!is_cross_site_write(&site(), &Method::POST, "/api/v1/host", &bearer));
    }

    #[test]
    fn a_foreign_page_cannot_log_a_visitor_in_but_scripts_can_use_the_api() {
        let login_csrf = headers(&[("host", "site.example"), ("origin", "https://evil.example")]);
        assert!(is_cross_site_write(&site(), &Method::POST, "/api/fn/login", &login_csrf), "login CSRF needs no cookie");
        assert!(is_cross_site_write(&site(), &Method::POST, "/api/fn/signup", &login_csrf));
        let script = headers(&[("host", "site.example"), ("origin", "https://elsewhere.example")]);
        assert!(!is_cross_site_write(&site(), &Method::POST, "/api/v1/auth/login", &script), "the token API sets no cookie");
        let curl = headers(&[("host", "site.example")]);
        assert!(!is_cross_site_write(&site(), &Method::POST, "/api/fn/login", &curl), "no Origin, no browser");
    }
}
