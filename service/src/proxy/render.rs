//! Rendering nginx files from the templates in the project's `nginx/` folder (compiled in).
//! Only validated values reach a template: slugs (`domain::Slug`), numbers, the configured
//! addresses (typed: `SocketAddr`, `IpAddr`) and the base domain (a host name).
use std::net::SocketAddr;
use std::path::Path;

use super::ProxyError;
use crate::ServiceConfig;

const MAIN: &str = include_str!("../../../nginx/nginx.conf.template");
const APP_PROXY: &str = include_str!("../../../nginx/app-proxy.conf");
const SITE_PROXY: &str = include_str!("../../../nginx/site-proxy.conf");
const SITE_DOWN: &str = include_str!("../../../nginx/site-down.html");
const LOCATIONS: &str = include_str!("../../../nginx/site.locations.template");
const SERVER: &str = include_str!("../../../nginx/site.server.template");

/// What nginx needs to publish one site.
#[derive(Clone, Debug)]
pub struct SiteRoute {
    pub hosting_id: i32,
    pub slug: String,
    pub user_id: i32,
    /// Whether `/{user_id}/` leads here (the user's first site).
    pub serve_user_path: bool,
    pub http_port: u16,
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

fn fill(template: &str, vars: &[(&str, String)]) -> String {
    let mut out = template.to_owned();
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    out
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// The main config and its includes, as (file name in the prefix, content).
pub(super) fn main_files(cfg: &ServiceConfig, prefix: &Path) -> Result<Vec<(&'static str, String)>, ProxyError> {
    let vars = [
        ("prefix", prefix.display().to_string()),
        ("listen", cfg.nginx_listen.to_string()),
        ("app_upstream", cfg.app_upstream.to_string()),
        ("user", if is_root() { "user www-data;".into() } else { String::new() }),
    ];
    Ok(vec![
        ("nginx.conf", fill(MAIN, &vars)),
        ("app-proxy.conf", APP_PROXY.to_owned()),
        ("site-proxy.conf", SITE_PROXY.to_owned()),
        ("html/__vmw/site-down.html", SITE_DOWN.to_owned()),
    ])
}

/// (locations file, server file) of one site.
pub(super) fn site_files(cfg: &ServiceConfig, prefix: &Path, r: &SiteRoute) -> Result<(String, String), ProxyError> {
    validate_slug(&r.slug)?;
    validate_host(&cfg.base_domain)?;
    let (listen, bind) = (cfg.nginx_listen, cfg.forward_bind);
    if r.http_port == 0 {
        return Err(ProxyError::Invalid("no HTTP port".into()));
    }
    let backend = SocketAddr::new(bind, r.http_port).to_string();
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
        &[
            ("id", r.hosting_id.to_string()),
            ("slug", r.slug.clone()),
            ("listen", listen.to_string()),
            ("base_domain", cfg.base_domain.clone()),
            ("backend", backend.clone()),
            ("prefix", prefix.display().to_string()),
        ],
    );
    Ok((locations, server))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> SiteRoute {
        SiteRoute { hosting_id: 3, slug: "my-site".into(), user_id: 42, serve_user_path: true, http_port: 20003 }
    }

    #[test]
    fn a_site_is_routed_by_slug_user_id_and_subdomain_to_its_loopback_port() {
        let cfg = ServiceConfig::default();
        let (loc, srv) = site_files(&cfg, Path::new("/p"), &route()).unwrap();
        assert!(loc.contains("location ^~ /my-site/ {"));
        assert!(loc.contains("location ^~ /42/ {"));
        assert!(loc.contains("proxy_pass http://vmw_site_3/;"));
        assert!(srv.contains("server_name my-site.localhost;"));
        assert!(srv.contains("proxy_pass http://vmw_site_3;"));
        assert!(srv.contains("upstream vmw_site_3 {\n    server 127.0.0.1:20003 max_fails=0;\n    keepalive 8;"));
        let mut r = route();
        r.serve_user_path = false;
        let (loc, _) = site_files(&cfg, Path::new("/p"), &r).unwrap();
        assert!(!loc.contains("/42/"));
    }

    #[test]
    fn sites_never_get_the_dashboard_session() {
        // /{slug}/ shares the dashboard's origin: no cookies go to the VM, none come back, and
        // the page runs sandboxed (an opaque origin).
        assert!(SITE_PROXY.contains("proxy_set_header Cookie \"\";"));
        assert!(SITE_PROXY.contains("proxy_hide_header Set-Cookie;"));
        let (loc, srv) = site_files(&ServiceConfig::default(), Path::new("/p"), &route()).unwrap();
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
        let main = main_files(&cfg, Path::new("/p")).unwrap();
        let proxy = &main.iter().find(|(n, _)| *n == "site-proxy.conf").unwrap().1;
        let (loc, srv) = site_files(&cfg, Path::new("/p"), &route()).unwrap();
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
        for h in ["Set-Cookie", "Clear-Site-Data", "X-Webhoster-Site"] {
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
}
