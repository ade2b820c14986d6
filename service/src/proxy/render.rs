//! Rendering nginx files from the templates in the project's `nginx/` folder (compiled in).
//! Only validated values reach a template: slugs (`domain::Slug`), numbers, the configured
//! addresses (typed: `SocketAddr`, `IpAddr`) and the base domain (a host name).
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::ProxyError;
use super::https;
use crate::ServiceConfig;

const MAIN: &str = include_str!("../../../nginx/nginx.conf.template");
const APP_PROXY: &str = include_str!("../../../nginx/app-proxy.conf");
const SITE_PROXY: &str = include_str!("../../../nginx/site-proxy.conf");
const SITE_DOWN: &str = include_str!("../../../nginx/site-down.html");
const LOCATIONS: &str = include_str!("../../../nginx/site.locations.template");
const SERVER: &str = include_str!("../../../nginx/site.server.template");
const DASHBOARD: &str = include_str!("../../../nginx/dashboard.conf");
const ACME_CHALLENGE: &str = include_str!("../../../nginx/acme-challenge.conf");
pub(super) const SITES_HTTPS: &str = include_str!("../../../nginx/sites-https.template");

/// The `Strict-Transport-Security` value of a site whose owner turned HSTS on.
pub(super) const SITE_HSTS: &str = "max-age=31536000";

/// What nginx needs to publish one site.
#[derive(Clone, Debug)]
pub struct SiteRoute {
    pub hosting_id: i32,
    pub slug: String,
    pub user_id: i32,
    /// Whether `/{user_id}/` leads here (the user's first site).
    pub serve_user_path: bool,
    pub http_port: u16,
    /// Where nginx reaches the VM's HTTP forward: its node's address.
    pub backend: std::net::IpAddr,
    /// The owner's HSTS switch: `Strict-Transport-Security` on the site's HTTPS names
    /// (`{slug}.{base_domain}` and its custom domains), never on `/{slug}/` (the dashboard's).
    pub hsts: bool,
    /// The site's custom domains whose ownership is proven (unverified ones route nowhere).
    pub domains: Vec<DomainRoute>,
    /// The certificate of `{slug}.{base_domain}` when it has one of its own (the local CA's,
    /// when the base domain cannot take a wildcard, e.g. `localhost`). None: the sites'
    /// wildcard (`TlsFront::sites`).
    pub subdomain_tls: Option<TlsName>,
}

/// A certificate chain and its private key, as files nginx reads (written by `tls`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertPaths {
    pub chain: PathBuf,
    pub key: PathBuf,
}

/// How nginx serves a group of names over HTTPS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsName {
    pub cert: CertPaths,
    /// Plain HTTP answers 301 to HTTPS (ACME and operator certificates; the ACME challenge
    /// path excepted). false: both answer (the local CA's loopback names).
    pub redirect_http: bool,
    /// The certificate names an OCSP responder: nginx staples its answer.
    pub ocsp_stapling: bool,
}

/// A custom domain of a site, routed once its ownership is proven.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainRoute {
    pub id: i32,
    /// Validated ASCII (IDNA) name, lowercase, no trailing dot.
    pub name: String,
    /// Its certificate, once issued: HTTPS, and HTTP redirected. None: HTTP only (the ACME
    /// HTTP-01 challenge is answered on it).
    pub tls: Option<TlsName>,
}

/// The HTTPS side of the front door: the dashboard's names and the sites'
/// `{slug}.{base_domain}` (one wildcard certificate). None of either: HTTP only for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFront {
    pub dashboard: Option<TlsName>,
    pub sites: Option<TlsName>,
    /// `Strict-Transport-Security: max-age=...` on the dashboard's HTTPS answers; 0: none.
    pub hsts_max_age_secs: u64,
}

/// Site names as nginx sees them: the one rule for site names (`domain::Slug`), and already
/// normalised (a slug that parsing would change is refused too).
pub fn validate_slug(slug: &str) -> Result<(), ProxyError> {
    match crate::domain::Slug::parse(slug) {
        Ok(s) if s.as_ref() == slug => Ok(()),
        Ok(_) => Err(ProxyError::Invalid(format!("'{slug}' is not a normalised site name"))),
        Err(e) => Err(ProxyError::Invalid(format!("'{slug}' is not a valid site name: {e}"))),
    }
}

fn validate_host(h: &str) -> Result<(), ProxyError> {
    let ok = !h.is_empty()
        && h.len() <= 200
        && h.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if ok { Ok(()) } else { Err(ProxyError::Invalid(format!("'{h}' is not a valid base domain"))) }
}

/// The Host names nginx serves the dashboard for: the public host and the loopback names.
pub fn dashboard_names(public_host: &str) -> Result<Vec<String>, ProxyError> {
    let host = public_host.trim().trim_end_matches('.').to_ascii_lowercase();
    let ipv6 = host.starts_with('[')
        && host.ends_with(']')
        && host[1..host.len() - 1].bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    if !ipv6 {
        validate_host(&host).map_err(|_| ProxyError::Invalid(format!("'{public_host}' is not a valid public host name")))?;
    }
    let mut names = vec![host];
    for n in ["localhost", "127.0.0.1", "[::1]"] {
        if !names.iter().any(|h| h == n) {
            names.push(n.to_owned());
        }
    }
    Ok(names)
}

pub(super) fn fill(template: &str, vars: &[(&str, String)]) -> String {
    let mut out = template.to_owned();
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    out
}

pub(super) fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// `own` and `peers`, sorted and without repeats (every replica renders the same list).
fn all_of(own: Option<SocketAddr>, peers: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut all: Vec<SocketAddr> = own.into_iter().chain(peers.iter().copied()).collect();
    all.sort();
    all.dedup();
    all
}

/// The main config and its includes, as (file name in the prefix, content). `front` is the
/// HTTPS side: everything that depends on it is among these files (the sites' files map their
/// subdomain to `s` over HTTP and `*` over HTTPS: the redirect and the wildcard are named here).
pub(super) fn main_files(cfg: &ServiceConfig, prefix: &Path, front: &TlsFront) -> Result<Vec<(&'static str, String)>, ProxyError> {
    let p = prefix.display().to_string();
    let vars = [
        ("prefix", p.clone()),
        ("listen", cfg.nginx_listen.to_string()),
        ("app_upstream", all_of(Some(cfg.app_upstream), &cfg.peer_upstreams).iter().map(|a| format!("server {a};")).collect::<Vec<_>>().join("\n        ")),
        ("user", if is_root() { format!("user {};", super::worker::WORKER_USER) } else { String::new() }),
        ("tls_settings", https::tls_settings(cfg)),
        ("dashboard_hsts", https::dashboard_hsts(cfg, front)),
        ("default_tls_server", https::default_tls_server(cfg, front)?),
        ("dashboard_servers", https::dashboard_servers(cfg, prefix, front)?),
        ("sites_https", https::sites_https_server(cfg, prefix, front)?),
        ("sites_http_redirect", https::sites_http_redirect(cfg, front)),
        ("redirect", https::redirect_line(cfg)),
    ];
    let with_prefix = |t: &str| fill(t, &[("prefix", p.clone())]);
    Ok(vec![
        ("nginx.conf", fill(MAIN, &vars)),
        ("dashboard.conf", with_prefix(DASHBOARD)),
        ("acme-challenge.conf", with_prefix(ACME_CHALLENGE)),
        ("app-proxy.conf", APP_PROXY.to_owned()),
        ("site-proxy.conf", SITE_PROXY.to_owned()),
        ("html/__vmw/site-down.html", SITE_DOWN.to_owned()),
    ])
}

/// (locations file, server file) of one site.
pub(super) fn site_files(cfg: &ServiceConfig, prefix: &Path, r: &SiteRoute) -> Result<(String, String), ProxyError> {
    validate_slug(&r.slug)?;
    validate_host(&cfg.base_domain)?;
    let bind = r.backend;
    if r.http_port == 0 {
        return Err(ProxyError::Invalid("no HTTP port".into()));
    }
    let backend = SocketAddr::new(bind, r.http_port).to_string();
    let waker: String = match cfg.waker_upstream {
        Some(w) => all_of(Some(w), &cfg.peer_wakers).iter().map(|w| format!("    server {w} backup;\n")).collect(),
        None => String::new(),
    };
    let common = |path: String| {
        fill(
            LOCATIONS,
            &[
                ("id", r.hosting_id.to_string()),
                ("slug", r.slug.clone()),
                ("path", path),
                ("backend", backend.clone()),
                ("prefix", prefix.display().to_string()),
            ],
        )
    };
    let mut locations = common(r.slug.clone());
    if r.serve_user_path {
        locations.push_str(&common(r.user_id.to_string()));
    }
    let server = fill(
        SERVER,
        &[("id", r.hosting_id.to_string()), ("slug", r.slug.clone()), ("backend", backend.clone()), ("waker", waker)],
    );
    Ok((locations, server))
}

/// The site's lines for the shared plain-HTTP server (nginx.conf), as (map file, names file):
/// `{slug}.{base_domain}` and every proven custom domain, mapped to "{id} {slug} {redirect}"
/// and listed in a `server_name`. redirect: `s` for the subdomain (it follows the sites'
/// certificate, a setting of the main configuration, so a new wildcard rewrites no site file),
/// `1` for a custom domain whose certificate asks for HTTPS (with an HTTPS address), else `0`.
pub(super) fn site_http_files(cfg: &ServiceConfig, r: &SiteRoute) -> Result<(String, String), ProxyError> {
    validate_slug(&r.slug)?;
    validate_host(&cfg.base_domain)?;
    let mut lines = vec![(format!("{}.{}", r.slug, cfg.base_domain), "s")];
    for d in &r.domains {
        https::validate_domain_name(&d.name)?;
        let redirect = match cfg.nginx_listen_tls.zip(d.tls.as_ref()) {
            Some((_, t)) if t.redirect_http => "1",
            _ => "0",
        };
        lines.push((d.name.clone(), redirect));
    }
    let head = format!("# hosting {} ({}): its names for the shared HTTP server, generated by service::proxy\n", r.hosting_id, r.slug);
    Ok(map_and_names(&head, lines.iter().map(|(n, redirect)| (n.as_str(), format!("{} {} {redirect}", r.hosting_id, r.slug)))))
}

/// A site's lines for one of the shared servers: each name mapped to its value (the map file)
/// and listed in a `server_name` (the names file), both under `head`.
fn map_and_names<'a>(head: &str, lines: impl Iterator<Item = (&'a str, String)>) -> (String, String) {
    let (mut map, mut names) = (head.to_owned(), head.to_owned());
    for (name, value) in lines {
        map.push_str(&format!("{name} \"{value}\";\n"));
        names.push_str(&format!("server_name {name};\n"));
    }
    (map, names)
}

/// The site's lines for the shared HTTPS server (`nginx/sites-https.template`), as (map file,
/// names file): each name it serves over HTTPS, `{slug}.{base_domain}` and every custom domain
/// with a certificate, mapped to "{id} {slug} {hsts} {certificate}" and listed in a
/// `server_name`. Without an HTTPS address both are comments only.
pub(super) fn site_https_files(cfg: &ServiceConfig, r: &SiteRoute) -> Result<(String, String), ProxyError> {
    validate_slug(&r.slug)?;
    validate_host(&cfg.base_domain)?;
    let head = format!("# hosting {} ({}): its HTTPS names for the shared HTTPS server, generated by service::proxy\n", r.hosting_id, r.slug);
    if cfg.nginx_listen_tls.is_none() {
        return Ok((head.clone(), head));
    }
    let cert = |t: &TlsName| -> Result<String, ProxyError> {
        let (chain, key) = https::cert_paths(t)?;
        Ok(format!("{chain} {key}"))
    };
    let subdomain = format!("{}.{}", r.slug, cfg.base_domain);
    let mut lines = vec![(subdomain.as_str(), match &r.subdomain_tls {
        Some(t) => cert(t)?,
        None => "*".to_owned(),
    })];
    for d in &r.domains {
        https::validate_domain_name(&d.name)?;
        if let Some(t) = &d.tls {
            lines.push((d.name.as_str(), cert(t)?));
        }
    }
    let hsts = u8::from(r.hsts);
    Ok(map_and_names(&head, lines.into_iter().map(|(n, c)| (n, format!("{} {} {hsts} {c}", r.hosting_id, r.slug)))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> SiteRoute {
        SiteRoute { hosting_id: 3, slug: "my-site".into(), user_id: 42, serve_user_path: true, http_port: 20003, backend: std::net::Ipv4Addr::LOCALHOST.into(), hsts: false, domains: Vec::new(), subdomain_tls: None }
    }

    #[test]
    fn a_site_is_routed_by_slug_user_id_and_subdomain_to_its_loopback_port() {
        let cfg = ServiceConfig::default();
        let (loc, srv) = site_files(&cfg, Path::new("/p"), &route()).unwrap();
        assert!(loc.contains("location ^~ /my-site/ {"));
        assert!(loc.contains("location ^~ /42/ {"));
        assert!(loc.contains("proxy_pass http://vmw_site_3/;"));
        // Its names go to the shared plain-HTTP server, which proxies by the map's id.
        let http = site_http_files(&cfg, &route()).unwrap().0;
        assert!(http.contains("my-site.localhost \"3 my-site s\";"), "{http}");
        let conf = main_files(&cfg, Path::new("/p"), &TlsFront::default()).unwrap()[0].1.clone();
        assert!(conf.contains("proxy_pass http://vmw_site_$vmw_http_site_id;"));
        assert!(srv.contains("upstream vmw_site_3 {\n    server 127.0.0.1:20003 max_fails=0;\n    keepalive 8;"));
        assert!(!srv.contains(" backup;"), "no waker configured: no backup");
        let cfg = ServiceConfig { waker_upstream: Some("127.0.0.1:4001".parse().unwrap()), ..ServiceConfig::default() };
        let (_, srv) = site_files(&cfg, Path::new("/p"), &route()).unwrap();
        assert!(srv.contains("server 127.0.0.1:20003 max_fails=0;\n    server 127.0.0.1:4001 backup;\n    keepalive 8;"));
        assert!(loc.contains("access_log /p/logs/visits/3.log vmw_visit;") && conf.contains("access_log /p/logs/visits-tls/$vmw_http_site_id.log vmw_visit if=$vmw_http_site_id;"));
        let mut r = route();
        r.serve_user_path = false;
        let (loc, _) = site_files(&cfg, Path::new("/p"), &r).unwrap();
        assert!(!loc.contains("/42/"));
    }

    #[test]
    fn replicas_write_the_same_upstreams_listing_every_replica() {
        let a: SocketAddr = "127.0.0.1:3001".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        let (wa, wb): (SocketAddr, SocketAddr) = ("127.0.0.1:4001".parse().unwrap(), "127.0.0.1:4000".parse().unwrap());
        let one = ServiceConfig { app_upstream: a, waker_upstream: Some(wa), peer_upstreams: vec![b, a], peer_wakers: vec![wb], ..ServiceConfig::default() };
        let two = ServiceConfig { app_upstream: b, waker_upstream: Some(wb), peer_upstreams: vec![a], peer_wakers: vec![wa], ..ServiceConfig::default() };
        let main = |c: &ServiceConfig| main_files(c, Path::new("/p"), &TlsFront::default()).unwrap()[0].1.clone();
        assert_eq!(main(&one), main(&two));
        assert!(main(&one).contains("upstream vmw_app {\n        server 127.0.0.1:3000;\n        server 127.0.0.1:3001;\n        keepalive 16;"), "{}", main(&one));
        let site = |c: &ServiceConfig| site_files(c, Path::new("/p"), &route()).unwrap().1;
        assert_eq!(site(&one), site(&two));
        assert!(site(&one).contains("max_fails=0;\n    server 127.0.0.1:4000 backup;\n    server 127.0.0.1:4001 backup;\n    keepalive 8;"));
    }

    #[test]
    fn sites_never_get_the_dashboard_session() {
        // /{slug}/ shares the dashboard's origin: no cookies go to the VM, none come back, and
        // the page runs sandboxed (an opaque origin).
        assert!(SITE_PROXY.contains("proxy_set_header Cookie \"\";"));
        assert!(SITE_PROXY.contains("proxy_hide_header Set-Cookie;"));
        let (loc, _) = site_files(&ServiceConfig::default(), Path::new("/p"), &route()).unwrap();
        // The sites' names: the shared plain-HTTP server of the main configuration.
        let srv = main_files(&ServiceConfig::default(), Path::new("/p"), &TlsFront::default()).unwrap()[0].1.clone();
        assert!(loc.contains("Content-Security-Policy \"sandbox"));
        assert!(loc.contains("include /p/site-proxy.conf;") && srv.contains("include /p/site-proxy.conf;"));
    }

    /// The directives of an nginx file (comments dropped), each as its words without the `;`.
    fn directives(text: &str) -> Vec<Vec<String>> {
        text.lines()
            .map(|l| l.split('#').next().unwrap().trim())
            .filter(|l| l.ends_with(';'))
            .map(|l| l.trim_end_matches(';').split_whitespace().map(str::to_owned).collect())
            .collect()
    }

    fn hides(d: &[Vec<String>], header: &str) -> bool {
        d.iter().any(|w| w.len() == 2 && w[0] == "proxy_hide_header" && w[1].eq_ignore_ascii_case(header))
    }

    #[test]
    fn a_vms_answer_cannot_steer_nginx_or_act_on_the_dashboards_origin() {
        let cfg = ServiceConfig::default();
        let main = main_files(&cfg, Path::new("/p"), &TlsFront::default()).unwrap();
        let proxy = &main.iter().find(|(n, _)| *n == "site-proxy.conf").unwrap().1;
        let (loc, _) = site_files(&cfg, Path::new("/p"), &route()).unwrap();
        let srv = main[0].1.clone();
        // Both ways to a site include the shared proxy settings in the location that proxies.
        for f in [&loc, &srv] {
            for block in f.split("location ").filter(|b| b.contains("proxy_pass")) {
                assert!(block.contains("include /p/site-proxy.conf;"), "{block}");
            }
        }
        let shared = directives(proxy);
        let ignored: Vec<&str> = shared
            .iter()
            .filter(|w| w[0] == "proxy_ignore_headers")
            .flat_map(|w| w[1..].iter().map(String::as_str))
            .collect();
        for h in ["X-Accel-Redirect", "X-Accel-Expires", "X-Accel-Limit-Rate", "X-Accel-Buffering", "X-Accel-Charset"] {
            assert!(ignored.contains(&h), "{h} is obeyed: {ignored:?}");
        }
        for h in ["Set-Cookie", "Clear-Site-Data", "X-Webhoster-Site", "X-Webhoster-Hosting"] {
            assert!(hides(&shared, h), "{h} reaches the visitor");
        }
        // Nothing puts them back.
        assert!(!shared.iter().chain(&directives(&loc)).chain(&directives(&srv)).any(|w| w[0] == "proxy_pass_header"));
        // On /{slug}/ (the dashboard's origin) the VM's origin-wide headers are dropped too.
        let path = directives(&loc);
        for h in [
            "Content-Security-Policy",
            "Strict-Transport-Security",
            "Service-Worker-Allowed",
            "Access-Control-Allow-Origin",
            "Access-Control-Allow-Credentials",
            "Alt-Svc",
            "NEL",
            "Report-To",
            "Reporting-Endpoints",
        ] {
            assert!(hides(&path, h), "{h} reaches the visitor on /my-site/");
        }
        // ...while a site's ordinary headers pass.
        for h in ["Content-Type", "Cache-Control", "Location", "Last-Modified", "ETag"] {
            assert!(!hides(&shared, h) && !hides(&path, h), "{h} is hidden");
        }
    }

    /// The directives inside the first block that opens with `head` (e.g. "location /api/"),
    /// nested blocks included.
    fn block<'a>(text: &'a str, head: &str) -> &'a str {
        let start = text.find(&format!("{head} {{")).unwrap_or_else(|| panic!("no `{head}` block")) + head.len() + 2;
        let mut depth = 1;
        for (i, c) in text[start..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 1 => return &text[start..start + i],
                '}' => depth -= 1,
                _ => {}
            }
        }
        panic!("`{head}` is not closed")
    }

    fn has(d: &[Vec<String>], words: &str) -> bool {
        let want: Vec<&str> = words.split_whitespace().collect();
        d.iter().any(|w| w.iter().map(String::as_str).eq(want.iter().copied()))
    }

    #[test]
    fn the_front_door_refuses_big_bodies_floods_and_held_requests_itself() {
        let main = main_files(&ServiceConfig::default(), Path::new("/p"), &TlsFront::default()).unwrap();
        let file = |n: &str| main.iter().find(|(f, _)| *f == n).unwrap().1.clone();
        let (conf, app) = (file("nginx.conf"), directives(&file("app-proxy.conf")));
        let dash = file("dashboard.conf");
        let top = directives(&conf);
        // Workers: one per core; old ones never outlive a reload by more than 10 s.
        assert!(has(&top, "worker_processes auto") && has(&top, "worker_shutdown_timeout 10s"));
        assert!(!has(&top, "worker_processes 1"));
        // Bodies: sites keep 16 MB; every app location takes what the app takes (axum's 2 MiB),
        // read in full before it is passed on, and on /api/ a JSON 413.
        assert!(has(&top, "client_max_body_size 16m") && has(&top, "proxy_request_buffering on"));
        assert!(has(&app, "client_max_body_size 2m") && has(&app, "proxy_request_buffering on"));
        assert!(!has(&top, "proxy_request_buffering off") && !has(&app, "proxy_request_buffering off"));
        // ...and nothing lowers the sites' limit (their locations share the app's server block).
        let sets_body_size = |text: &str| directives(text).iter().filter(|w| w[0] == "client_max_body_size").count();
        assert_eq!(sets_body_size(&conf), 1, "only the http-level 16m");
        assert_eq!(sets_body_size(LOCATIONS) + sets_body_size(SERVER) + sets_body_size(SITE_PROXY) + sets_body_size(&dash), 0);
        let auth_api = "location ~ ^/api/(v1/auth/|auth|fn/(login|signup|check_signup_field)$)";
        for head in ["location ~ ^/(login|signup|auth/)", auth_api, "location /api/", "location /"] {
            assert!(block(&dash, head).contains("include /p/app-proxy.conf;"), "{head}");
        }
        for head in [auth_api, "location /api/"] {
            let d = directives(block(&dash, head));
            assert!(has(&d, "error_page 413 /__vmw/body-too-large.json"), "{head}");
            assert!(has(&d, "error_page 502 503 504 /__vmw/site-down.html"), "{head}: error_page replaces the inherited one");
        }
        let too_large = block(&dash, "location = /__vmw/body-too-large.json");
        assert!(too_large.contains("internal;") && too_large.contains("default_type application/json;"));
        let json = too_large.split_once("return 413 '").unwrap().1.split_once("';").unwrap().0;
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["error"]["code"], "payload_too_large");
        // Sign-up and log-in: the existing zone, on the pages, the REST API and the server functions.
        assert!(has(&top, "limit_req_zone $binary_remote_addr zone=auth:10m rate=30r/m"));
        for head in ["location ~ ^/(login|signup|auth/)", auth_api] {
            assert!(has(&directives(block(&dash, head)), "limit_req zone=auth burst=30 nodelay"), "{head}");
        }
        let auth = regex_of(auth_api);
        for p in ["/api/v1/auth/register", "/api/v1/auth/login", "/api/fn/login", "/api/fn/signup", "/api/fn/check_signup_field"] {
            assert!(auth(p), "{p} is not limited");
        }
        for p in ["/api/fn/plans", "/api/fn/logout", "/api/v1/hostings"] {
            assert!(!auth(p), "{p} is limited");
        }
        // Held requests: at most 20 per client address, answered 429.
        assert!(has(&top, "limit_conn_zone $vmw_held zone=held:10m") && has(&top, "limit_conn_status 429"));
        assert!(has(&directives(block(&dash, "location /api/")), "limit_conn held 20"));
        let held = block(&conf, "map \"$uri?$args\" $vmw_held");
        let held: Vec<&str> = held.lines().filter_map(|l| l.trim().strip_prefix("\"~")?.split_once("\" $binary_remote_addr;")).map(|(r, _)| r).collect();
        let counted = |uri: &str| held.iter().any(|r| matches(r, uri));
        for u in ["/api/v1/hostings/7/stream?", "/api/v1/hostings/7/stream?after=3", "/api/v1/hostings/7?wait=60", "/api/v1/hostings?wait=60", "/api/v1/host?wait=5", "/api/v1/host/start?wait=5"] {
            assert!(counted(u), "{u} is not counted");
        }
        for u in ["/api/v1/hostings/7?", "/api/v1/hostings?", "/api/v1/host?", "/api/v1/users/me?x=1", "/api/fn/login?"] {
            assert!(!counted(u), "{u} is counted");
        }
    }

    /// The location's regex (after `location ~ `) as a matcher.
    fn regex_of(head: &str) -> impl Fn(&str) -> bool {
        let r = head.strip_prefix("location ~ ").unwrap().to_owned();
        move |p: &str| matches(&r, p)
    }

    /// Whether nginx's regex `r` (PCRE; these use only what `regex` reads alike) matches `s`.
    fn matches(r: &str, s: &str) -> bool {
        regex::Regex::new(r).unwrap().is_match(s)
    }

    #[test]
    fn only_the_dashboards_names_reach_the_app_and_any_other_host_gets_421() {
        let cfg = ServiceConfig { public_host: "Host.Example".into(), ..ServiceConfig::default() };
        let main = main_files(&cfg, Path::new("/p"), &TlsFront::default()).unwrap();
        let conf = &main.iter().find(|(f, _)| *f == "nginx.conf").unwrap().1;
        let default = directives(block(conf, "server"));
        assert!(has(&default, "listen 127.0.0.1:80 default_server") && has(&default, "return 421"), "{default:?}");
        // It serves nothing but the ACME challenge path (the app answers only its own tokens).
        let served: Vec<&Vec<String>> = default.iter().filter(|w| w[0] == "include" || w[0] == "proxy_pass").collect();
        assert_eq!(served, [&vec!["include".to_owned(), "/p/acme-challenge.conf".to_owned()]], "{default:?}");
        assert!(has(&directives(block(conf, "location /")), "return 421"));
        assert!(conf.contains("server_name host.example localhost 127.0.0.1 [::1];"));
        assert_eq!(conf.matches("default_server").count(), 1);
        for bad in ["evil.example; return 200", "a b", ""] {
            let cfg = ServiceConfig { public_host: bad.into(), ..ServiceConfig::default() };
            assert!(main_files(&cfg, Path::new("/p"), &TlsFront::default()).is_err(), "{bad}");
        }
        assert_eq!(dashboard_names("127.0.0.1").unwrap(), ["127.0.0.1", "localhost", "[::1]"]);
        assert!(dashboard_names("[::1]").is_ok());
    }

    #[test]
    fn nothing_unvalidated_reaches_a_config() {
        let cfg = ServiceConfig::default();
        for bad in ["", "a;b", "a b", "A", "x/../y", "-lead", "a}\nserver{", &"a".repeat(41)] {
            let mut r = route();
            r.slug = bad.into();
            assert!(site_files(&cfg, Path::new("/p"), &r).is_err(), "{bad:?}");
        }
        let mut c = ServiceConfig::default();
        c.base_domain = "x; include /etc/passwd".into();
        assert!(site_files(&c, Path::new("/p"), &route()).is_err());
        // The listen and upstream addresses are typed (SocketAddr): "80; evil" is refused
        // where the settings are parsed (server::config tests).
    }

    fn tls_name(dir: &str, redirect_http: bool, ocsp_stapling: bool) -> TlsName {
        TlsName { cert: CertPaths { chain: format!("/tls/{dir}/chain.pem").into(), key: format!("/tls/{dir}/key.pem").into() }, redirect_http, ocsp_stapling }
    }

    fn tls_cfg() -> ServiceConfig {
        ServiceConfig {
            public_host: "host.example".into(),
            base_domain: "sites.example".into(),
            nginx_listen_tls: Some("127.0.0.1:443".parse().unwrap()),
            ..ServiceConfig::default()
        }
    }

    fn front() -> TlsFront {
        TlsFront { dashboard: Some(tls_name("dash", true, true)), sites: Some(tls_name("wild", true, false)), hsts_max_age_secs: 600 }
    }

    /// Every `server { ... }` block of `text`, in order.
    fn servers(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut rest = text;
        while rest.contains("server {") {
            let b = block(rest, "server");
            out.push(b);
            let end = rest.find(b).unwrap() + b.len();
            rest = &rest[end..];
        }
        out
    }

    fn server_named<'a>(text: &'a str, listen: &str, name: &str) -> Option<&'a str> {
        servers(text).into_iter().find(|b| {
            let d = directives(b);
            d.iter().any(|w| w[0] == "listen" && w[1..].join(" ") == listen) && d.iter().any(|w| w[0] == "server_name" && w[1..].iter().any(|n| n == name))
        })
    }

    #[test]
    fn https_uses_mozillas_intermediate_settings_and_refuses_unknown_names() {
        let main = main_files(&tls_cfg(), Path::new("/p"), &front()).unwrap();
        let conf = &main.iter().find(|(f, _)| *f == "nginx.conf").unwrap().1;
        let top = directives(conf);
        for d in ["ssl_protocols TLSv1.2 TLSv1.3", "ssl_prefer_server_ciphers off", "ssl_session_cache shared:vmw_tls:10m", "ssl_session_timeout 1d", "ssl_session_tickets off"] {
            assert!(has(&top, d), "{d}");
        }
        let ciphers = top.iter().find(|w| w[0] == "ssl_ciphers").unwrap()[1].clone();
        assert!(ciphers.split(':').all(|c| c.starts_with("ECDHE-") && (c.contains("GCM") || c.contains("CHACHA20"))), "{ciphers}");
        assert!(!top.iter().any(|w| w[0] == "ssl_dhparam"));
        let default = server_named(conf, "127.0.0.1:443 ssl http2 default_server", "_").expect("a TLS default server");
        assert!(has(&directives(default), "ssl_reject_handshake on"));
        assert!(!default.contains("ssl_certificate"), "no certificate of ours for an unknown name");
        // ...unless the public host is an IP address: its clients send no SNI and get the
        // dashboard's certificate (the address's own); any Host but the dashboard's gets 421.
        let ip = ServiceConfig { public_host: "192.0.2.7".into(), ..tls_cfg() };
        let ip_conf = main_files(&ip, Path::new("/p"), &front()).unwrap()[0].1.clone();
        let default = directives(server_named(&ip_conf, "127.0.0.1:443 ssl http2 default_server", "_").unwrap());
        assert!(has(&default, "ssl_certificate /tls/dash/chain.pem") && has(&default, "return 421") && !has(&default, "ssl_reject_handshake on"));
        let ip_conf = main_files(&ip, Path::new("/p"), &TlsFront::default()).unwrap()[0].1.clone();
        assert!(has(&directives(server_named(&ip_conf, "127.0.0.1:443 ssl http2 default_server", "_").unwrap()), "ssl_reject_handshake on"));
        // The HTTP default server keeps its 421 (and the challenge path).
        let plain = server_named(conf, "127.0.0.1:80 default_server", "_").unwrap();
        assert!(plain.contains("return 421;") && plain.contains("include /p/acme-challenge.conf;"));
        // Without an HTTPS address: nothing of it.
        let off = ServiceConfig { nginx_listen_tls: None, ..tls_cfg() };
        for (name, text) in main_files(&off, Path::new("/p"), &front()).unwrap() {
            if name != "site-tls.conf" {
                assert!(!directives(&text).iter().any(|w| w[0].starts_with("ssl_") || w.iter().any(|x| x == "ssl")), "{name}");
            }
        }
    }

    #[test]
    fn the_dashboard_is_served_over_https_and_its_public_name_redirected() {
        let main = main_files(&tls_cfg(), Path::new("/p"), &front()).unwrap();
        let file = |n: &str| main.iter().find(|(f, _)| *f == n).unwrap().1.clone();
        let conf = file("nginx.conf");
        let https = server_named(&conf, "127.0.0.1:443 ssl http2", "host.example").expect("the HTTPS dashboard");
        let d = directives(https);
        for w in [
            "server_name host.example localhost 127.0.0.1 [::1]",
            "ssl_certificate /tls/dash/chain.pem",
            "ssl_certificate_key /tls/dash/key.pem",
            "ssl_stapling on",
            "ssl_stapling_verify on",
            "ssl_trusted_certificate /tls/dash/chain.pem",
            "include /p/dashboard.conf",
        ] {
            assert!(has(&d, w), "{w}: {https}");
        }
        // HTTP: the public host is redirected (its challenge path excepted), the loopback names
        // keep answering (the app's probes, local scripts).
        // HTTP and HTTPS are one server (its locations parsed once); the redirect is a map on
        // $scheme$host that names the public host only, and leaves the challenge path alone.
        let public = server_named(&conf, "127.0.0.1:80", "host.example").unwrap();
        assert_eq!(public, https);
        assert!(has(&directives(block(public, "if ($vmw_dashboard_redirect)")), "return 301 https://$host$request_uri"));
        let plain = block(&conf, "map $scheme$host $vmw_dashboard_plain_public");
        assert!(has(&directives(plain), "httphost.example 1") && !plain.contains("localhost") && !plain.contains("127.0.0.1"));
        let redirect = block(&conf, "map \"$vmw_dashboard_plain_public$uri\" $vmw_dashboard_redirect");
        let (challenge, rest) = (redirect.find("\"~^1/\\.well-known/acme-challenge/\" \"\";").unwrap(), redirect.find("\"~^1\" 1;").unwrap());
        assert!(challenge < rest, "{redirect}");
        let local = server_named(&conf, "127.0.0.1:80", "localhost").unwrap();
        assert!(has(&directives(local), "server_name host.example localhost 127.0.0.1 [::1]") && local.contains("include /p/dashboard.conf;"));
        // HSTS: only on HTTPS answers (the map) and only when set.
        assert!(block(&conf, "map $scheme $vmw_dashboard_hsts").contains("https \"max-age=600\";"));
        let no_hsts = main_files(&tls_cfg(), Path::new("/p"), &TlsFront { hsts_max_age_secs: 0, ..front() }).unwrap();
        assert!(!directives(&no_hsts[0].1).iter().flatten().any(|w| w.contains("max-age=600")));
        // Every location of the dashboard that sets headers of its own repeats the HSTS one.
        let dash = file("dashboard.conf");
        assert!(has(&directives(&dash), "add_header Strict-Transport-Security $vmw_dashboard_hsts always"));
        for text in [dash.as_str(), LOCATIONS] {
            for loc in text.split("location ").skip(1) {
                let d = directives(loc.split("\n}").next().unwrap());
                if d.iter().any(|w| w[0] == "add_header") {
                    assert!(has(&d, "add_header Strict-Transport-Security $vmw_dashboard_hsts always"), "{loc}");
                }
            }
        }
        // The dashboard's challenge path reaches the app without cookies.
        assert!(block(&dash, "location ^~ /.well-known/acme-challenge/").contains("include /p/acme-challenge.conf;"));
        let challenge = directives(&file("acme-challenge.conf"));
        assert!(has(&challenge, "include /p/app-proxy.conf") && has(&challenge, "proxy_set_header Cookie \"\"") && has(&challenge, "proxy_hide_header Set-Cookie"));
        // A local-CA certificate (no redirect): one HTTP server answers every name; another
        // HTTPS port is named in redirects.
        let local_ca = TlsFront { dashboard: Some(tls_name("ca", false, false)), ..front() };
        let conf = main_files(&tls_cfg(), Path::new("/p"), &local_ca).unwrap()[0].1.clone();
        assert!(has(&directives(server_named(&conf, "127.0.0.1:80", "host.example").unwrap()), "include /p/dashboard.conf"));
        assert!(!server_named(&conf, "127.0.0.1:80", "host.example").unwrap().contains("return 301") && !conf.contains("ssl_stapling"));
        assert!(!conf.contains("$vmw_dashboard_redirect"));
        let other_port = ServiceConfig { nginx_listen_tls: Some("127.0.0.1:8443".parse().unwrap()), ..tls_cfg() };
        let conf = main_files(&other_port, Path::new("/p"), &front()).unwrap()[0].1.clone();
        assert!(conf.contains("return 301 https://$host:8443$request_uri;"));
        // No dashboard certificate: no HTTPS dashboard (the default server refuses the handshake).
        let conf = main_files(&tls_cfg(), Path::new("/p"), &TlsFront { dashboard: None, ..front() }).unwrap()[0].1.clone();
        assert!(server_named(&conf, "127.0.0.1:443 ssl http2", "host.example").is_none() && !conf.contains("$vmw_dashboard_redirect"));
    }

    /// The shared HTTPS server of the sites (in nginx.conf) and its maps.
    fn sites_https(conf: &str) -> &str {
        server_named(conf, "127.0.0.1:443 ssl http2", "vmw-sites.invalid").expect("the sites' shared HTTPS server")
    }

    #[test]
    fn every_site_name_is_served_over_https_by_one_server_whose_certificates_come_from_maps() {
        let cfg = tls_cfg();
        let main = main_files(&cfg, Path::new("/p"), &front()).unwrap();
        let conf = main.iter().find(|(f, _)| *f == "nginx.conf").unwrap().1.clone();
        let shared = sites_https(&conf);
        let d = directives(shared);
        for w in [
            "include /p/sites/*.https.names",
            "ssl_certificate $vmw_tls_chain",
            "ssl_certificate_key $vmw_tls_key",
            "add_header Strict-Transport-Security $vmw_site_hsts_ours always",
        ] {
            assert!(has(&d, w), "{w}: {shared}");
        }
        let l = directives(block(shared, "location /"));
        for w in [
            "proxy_pass http://vmw_site_$vmw_site_id",
            "include /p/site-proxy.conf",
            "proxy_set_header X-Webhoster-Hosting $vmw_site_id",
            "access_log /p/logs/visits-tls/$vmw_site_id.log vmw_visit if=$vmw_site_id",
            "add_header X-Webhoster-Site $vmw_site_slug always",
            "proxy_hide_header Strict-Transport-Security",
            "add_header Strict-Transport-Security $vmw_site_hsts always",
            "return 421",
        ] {
            assert!(has(&l, w), "{w}");
        }
        // The certificate and route maps read the sites' own lines; the wildcard is named here
        // only (a renewal rewrites no site file).
        for m in ["map $ssl_server_name $vmw_tls_site", "map $host $vmw_site"] {
            assert!(has(&directives(block(&conf, m)), "include /p/sites/*.https.map"), "{m}");
        }
        let chain = block(&conf, "map $vmw_tls_site $vmw_tls_chain");
        assert!(chain.contains("\"~^\\d+ \\S+ [01] \\*$\" /tls/wild/chain.pem;"), "{chain}");
        assert!(block(&conf, "map $vmw_tls_site $vmw_tls_key").contains(" /tls/wild/key.pem;"));
        let none = main_files(&cfg, Path::new("/p"), &TlsFront::default()).unwrap()[0].1.clone();
        assert!(!block(&none, "map $vmw_tls_site $vmw_tls_chain").contains(".pem"), "no wildcard: `*` names get no certificate");
        // Plain HTTP: one shared server too (the default one), routed by the sites' HTTP map
        // lines: the redirect (the sites' certificate asks for it), the challenge, the proxy.
        let (_, srv) = site_files(&cfg, Path::new("/p"), &route()).unwrap();
        assert!(servers(&srv).is_empty(), "no per-site server: {srv}");
        let http = server_named(&conf, "127.0.0.1:80", "vmw-sites-http.invalid").unwrap();
        assert!(has(&directives(http), "include /p/sites/*.http.names"));
        let d = directives(block(http, "location /"));
        assert!(has(&d, "proxy_pass http://vmw_site_$vmw_http_site_id") && has(&d, "include /p/site-proxy.conf"));
        assert!(has(&directives(block(http, "if ($vmw_http_redirect)")), "return 301 https://$host$request_uri"));
        assert!(block(&conf, "map $vmw_http_site $vmw_http_redirect").contains("\"~^\\d+ \\S+ s$\" 1;"));
        assert!(has(&directives(block(&conf, "map $host $vmw_http_site")), "include /p/sites/*.http.map"));
        assert!(block(http, "location ^~ /.well-known/acme-challenge/").contains("include /p/acme-challenge.conf;"));
        assert!(!srv.contains("ssl") && !srv.contains("Strict-Transport-Security") && !http.contains("Strict-Transport-Security"));
        let local_ca = TlsFront { sites: Some(tls_name("ca", false, false)), ..front() };
        let conf_ca = main_files(&cfg, Path::new("/p"), &local_ca).unwrap()[0].1.clone();
        assert!(!block(&conf_ca, "map $vmw_http_site $vmw_http_redirect").contains(" s$"), "a local-CA wildcard: both answer");
        // The site's lines: its subdomain on the wildcard, HSTS off by default.
        let (map, names) = site_https_files(&cfg, &route()).unwrap();
        assert_eq!(directives(&map), [["my-site.sites.example", "\"3", "my-site", "0", "*\""]]);
        assert_eq!(directives(&names), [["server_name", "my-site.sites.example"]]);
        // The owner's switch, and a certificate of its own for the subdomain.
        let mut r = route();
        r.hsts = true;
        r.subdomain_tls = Some(tls_name("own", false, false));
        let (map, _) = site_https_files(&cfg, &r).unwrap();
        assert!(map.contains("my-site.sites.example \"3 my-site 1 /tls/own/chain.pem /tls/own/key.pem\";"), "{map}");
        // Without an HTTPS address: no shared server, no lines.
        let off = ServiceConfig { nginx_listen_tls: None, ..tls_cfg() };
        assert!(!main_files(&off, Path::new("/p"), &front()).unwrap()[0].1.contains("vmw-sites.invalid"));
        let (map, names) = site_https_files(&off, &r).unwrap();
        assert!(directives(&map).is_empty() && directives(&names).is_empty());
    }

    /// The map values the shared server's regexes take apart, on the lines a site writes.
    #[test]
    fn the_shared_servers_maps_take_each_sites_line_apart() {
        let conf = main_files(&tls_cfg(), Path::new("/p"), &front()).unwrap()[0].1.clone();
        // Each regex entry of a map: `"~REGEX" VALUE;`.
        let entries = |head: &str| -> Vec<(regex::Regex, String)> {
            block(&conf, head)
                .lines()
                .filter_map(|l| l.trim().strip_prefix("\"~"))
                .map(|l| {
                    let (re, v) = l.split_once("\" ").unwrap();
                    (regex::Regex::new(re).unwrap(), v.trim_end_matches(';').to_owned())
                })
                .collect()
        };
        let get = |head: &str, value: &str| -> Option<String> {
            entries(head).into_iter().find_map(|(re, v)| {
                re.captures(value).map(|c| if v == "$1" { c[1].to_owned() } else { v.trim_matches('"').to_owned() })
            })
        };
        let own = "3 my-site 1 /tls/own/chain.pem /tls/own/key.pem";
        assert_eq!(get("map $vmw_tls_site $vmw_tls_chain", own).as_deref(), Some("/tls/own/chain.pem"));
        assert_eq!(get("map $vmw_tls_site $vmw_tls_key", own).as_deref(), Some("/tls/own/key.pem"));
        assert_eq!(get("map $vmw_tls_site $vmw_tls_chain", "3 my-site 0 *").as_deref(), Some("/tls/wild/chain.pem"));
        assert_eq!(get("map $vmw_tls_site $vmw_tls_key", "3 my-site 0 *").as_deref(), Some("/tls/wild/key.pem"));
        assert_eq!(get("map $vmw_site $vmw_site_id", own).as_deref(), Some("3"));
        assert_eq!(get("map $vmw_site $vmw_site_slug", own).as_deref(), Some("my-site"));
        assert_eq!(get("map $vmw_site $vmw_site_hsts_ours", own).as_deref(), Some(SITE_HSTS));
        assert_eq!(get("map $vmw_site $vmw_site_hsts_ours", "3 my-site 0 *"), None);
        // The shared plain-HTTP server's maps, on the HTTP lines.
        assert_eq!(get("map $vmw_http_site $vmw_http_site_id", "3 my-site 1").as_deref(), Some("3"));
        assert_eq!(get("map $vmw_http_site $vmw_http_site_slug", "3 my-site 0").as_deref(), Some("my-site"));
        assert_eq!(get("map $vmw_http_site $vmw_http_redirect", "3 my-site 1").as_deref(), Some("1"));
        assert_eq!(get("map $vmw_http_site $vmw_http_redirect", "3 my-site s").as_deref(), Some("1"));
        assert_eq!(get("map $vmw_http_site $vmw_http_redirect", "3 my-site 0"), None);
        assert_eq!(get("map $vmw_http_site $vmw_http_redirect", "3 my-site1 0"), None);
    }

    #[test]
    fn custom_domains_route_to_their_sites_upstream_over_http_then_https() {
        let cfg = tls_cfg();
        let mut r = route();
        r.hsts = true;
        r.domains = vec![
            DomainRoute { id: 7, name: "www.shop.example".into(), tls: Some(tls_name("www", true, true)) },
            DomainRoute { id: 8, name: "new.example".into(), tls: None },
            DomainRoute { id: 9, name: "both.example".into(), tls: Some(tls_name("both", false, false)) },
        ];
        // Over HTTP: every proven name, to this site; redirected where its certificate asks.
        let (http, http_names) = site_http_files(&cfg, &r).unwrap();
        assert_eq!(
            directives(&http),
            [
                ["my-site.sites.example", "\"3", "my-site", "s\""],
                ["www.shop.example", "\"3", "my-site", "1\""],
                ["new.example", "\"3", "my-site", "0\""],
                ["both.example", "\"3", "my-site", "0\""]
            ]
        );
        assert!(!http.contains("max-age"));
        assert_eq!(directives(&http_names).len(), 4);
        assert!(http_names.contains("server_name www.shop.example;") && http_names.contains("server_name new.example;"));
        let off = ServiceConfig { nginx_listen_tls: None, ..tls_cfg() };
        assert!(!site_http_files(&off, &r).unwrap().0.contains(" 1\";"), "no HTTPS address: no redirect");
        // Over HTTPS: the names with a certificate, each with its own, in the shared server.
        let (map, names) = site_https_files(&cfg, &r).unwrap();
        assert_eq!(
            directives(&names),
            [["server_name", "my-site.sites.example"], ["server_name", "www.shop.example"], ["server_name", "both.example"]]
        );
        assert!(map.contains("www.shop.example \"3 my-site 1 /tls/www/chain.pem /tls/www/key.pem\";"), "{map}");
        assert!(map.contains("both.example \"3 my-site 1 /tls/both/chain.pem /tls/both/key.pem\";"), "{map}");
        assert!(!map.contains("new.example"));
        // Names and paths are checked where they enter the configuration.
        for bad in ["a;b.example", "a b.example", "*.example.com", "10.1.2.3", "Shop.Example", "x.example;\nserver{", ""] {
            let mut b = r.clone();
            b.domains[1].name = bad.into();
            assert!(site_http_files(&cfg, &b).is_err(), "{bad:?}");
            assert!(site_https_files(&cfg, &b).is_err(), "{bad:?}");
        }
        let mut b = r.clone();
        b.domains[0].tls.as_mut().unwrap().cert.key = "/tls/x.pem; include /etc/shadow".into();
        assert!(site_https_files(&cfg, &b).is_err());
        let mut b = r.clone();
        b.subdomain_tls = Some(tls_name("a b", false, false));
        assert!(site_https_files(&cfg, &b).is_err());
        let mut f = front();
        f.dashboard.as_mut().unwrap().cert.chain = "relative/chain.pem".into();
        assert!(main_files(&cfg, Path::new("/p"), &f).is_err());
    }
}
