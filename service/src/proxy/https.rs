//! The HTTPS side of nginx's configuration: the TLS settings every HTTPS server shares, the
//! dashboard's servers, the one HTTPS server of every site name (certificates chosen per
//! handshake, so a reload parses no site certificate and a new wildcard rewrites no site file),
//! and the checks that keep what
//! reaches these lines (certificate paths, custom domain names) to what nginx reads as one word.
use std::net::IpAddr;
use std::path::Path;

use super::render;

use super::ProxyError;
use super::render::{TlsFront, TlsName, dashboard_names};
use crate::ServiceConfig;

/// The names that always answer plain HTTP too: the app's own probes and the original system's
/// `http://localhost/...` scripts use them, and they never get a public certificate.
pub(super) const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// Mozilla's "intermediate" configuration (TLS 1.2 and 1.3, server-side cipher preference off,
/// a shared session cache, no tickets), without the DHE suites: they need a dhparam file and
/// every client that speaks TLS 1.2 has ECDHE.
const TLS_SETTINGS: &str = "    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ecdh_curve X25519:prime256v1:secp384r1;
    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;
    ssl_prefer_server_ciphers off;
    ssl_session_cache shared:vmw_tls:10m;
    ssl_session_timeout 1d;
    ssl_session_tickets off;
";

/// A custom domain as nginx may see it: lowercase LDH labels of 1-63 characters (no leading or
/// trailing hyphen), at least two of them, at most 253 characters, no wildcard, no trailing dot,
/// and not an IP address (its last label has a letter). IDNA names arrive as their `xn--` form.
pub fn validate_domain_name(name: &str) -> Result<(), ProxyError> {
    let bad = |why: &str| Err(ProxyError::Invalid(format!("'{name}' is not a valid domain name: {why}")));
    if name.is_empty() || name.len() > 253 {
        return bad("it must have 1 to 253 characters");
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return bad("it needs at least two labels");
    }
    for l in &labels {
        let ldh = l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if l.is_empty() || l.len() > 63 || !ldh || l.starts_with('-') || l.ends_with('-') {
            return bad("each label is 1 to 63 lowercase letters, digits or inner hyphens");
        }
    }
    if labels.last().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit())) || name.parse::<IpAddr>().is_ok() {
        return bad("an IP address is not a domain");
    }
    Ok(())
}

/// A certificate or key file as nginx reads it from the configuration: an absolute path of
/// characters that need no quoting and cannot end a directive.
fn validate_cert_path(p: &Path) -> Result<String, ProxyError> {
    let s = p.to_str().unwrap_or("");
    let ok = p.is_absolute()
        && !s.contains("/../")
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+@=,:".contains(&b));
    if ok { Ok(s.to_owned()) } else { Err(ProxyError::Invalid(format!("'{}' is not a usable certificate path", p.display()))) }
}

/// ":{port}" of the HTTPS address for redirects, "" for 443.
fn tls_port_suffix(cfg: &ServiceConfig) -> String {
    match cfg.nginx_listen_tls.map(|a| a.port()) {
        Some(443) | None => String::new(),
        Some(p) => format!(":{p}"),
    }
}

/// The 301 a plain-HTTP location answers when its name is served over HTTPS (`$host` is the
/// requested name without its port, already validated by nginx's server_name match).
pub(super) fn redirect_line(cfg: &ServiceConfig) -> String {
    format!("return 301 https://$host{}$request_uri;", tls_port_suffix(cfg))
}

/// The `resolver` nginx asks for an OCSP responder's address: the configured DNS server, else
/// the host's (/etc/resolv.conf). Empty when there is none (stapling then logs and is skipped).
fn resolver_line(cfg: &ServiceConfig) -> String {
    let addrs: Vec<String> = match cfg.dns_resolver {
        Some(a) => vec![a.to_string()],
        None => std::fs::read_to_string("/etc/resolv.conf")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().strip_prefix("nameserver"))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .map(|ip| if ip.is_ipv6() { format!("[{ip}]") } else { ip.to_string() })
            .collect(),
    };
    if addrs.is_empty() { String::new() } else { format!("resolver {} valid=300s;\nresolver_timeout 5s;\n", addrs.join(" ")) }
}

/// A certificate's (chain, key) paths as they may appear in the configuration.
pub(super) fn cert_paths(t: &TlsName) -> Result<(String, String), ProxyError> {
    Ok((validate_cert_path(&t.cert.chain)?, validate_cert_path(&t.cert.key)?))
}

/// What `nginx -t` checks of a server's own `ssl_certificate`, for a certificate the shared
/// HTTPS server reads only at a handshake (nobody would notice a broken one before a visitor):
/// the chain is X.509 PEM, the key file holds a private key, and (when the key's format is one
/// we parse: PKCS#8) the key is the leaf's. Refused certificates never reach a map.
pub(super) fn check_cert_files(t: &TlsName) -> Result<(), ProxyError> {
    use rcgen::PublicKeyData;
    use x509_parser::prelude::{FromDer, X509Certificate};
    let bad = |detail: String| Err(ProxyError::Certificate { chain: t.cert.chain.clone(), detail }.counted());
    let chain = match std::fs::read_to_string(&t.cert.chain) {
        Ok(c) => c,
        Err(e) => return bad(format!("reading it: {e}")),
    };
    let key = match std::fs::read_to_string(&t.cert.key) {
        Ok(k) => k,
        Err(e) => return bad(format!("reading its key {}: {e}", t.cert.key.display())),
    };
    let ders = match crate::tls::validity::chain_der(&chain) {
        Ok(d) => d,
        Err(e) => return bad(format!("not a PEM certificate chain: {e}")),
    };
    let leaf = match X509Certificate::from_der(&ders[0]) {
        Ok((_, leaf)) => leaf,
        Err(e) => return bad(format!("not an X.509 certificate: {e}")),
    };
    let has_key = key.lines().any(|l| l.starts_with("-----BEGIN ") && l.ends_with(" PRIVATE KEY-----"));
    if !has_key {
        return bad(format!("{} holds no private key", t.cert.key.display()));
    }
    if let Ok(pair) = rcgen::KeyPair::from_pem(&key) {
        if pair.subject_public_key_info() != leaf.public_key().raw {
            return bad(format!("{} is not the key of this certificate", t.cert.key.display()));
        }
    }
    Ok(())
}

/// A server's certificate lines (each line `indent`ed), with OCSP stapling where asked for.
pub(super) fn cert_lines(cfg: &ServiceConfig, t: &TlsName, indent: &str) -> Result<String, ProxyError> {
    let (chain, key) = cert_paths(t)?;
    let mut out = format!("ssl_certificate {chain};\nssl_certificate_key {key};\n");
    if t.ocsp_stapling {
        out.push_str(&format!("ssl_stapling on;\nssl_stapling_verify on;\nssl_trusted_certificate {chain};\n"));
        out.push_str(&resolver_line(cfg));
    }
    Ok(out.lines().map(|l| format!("{indent}{l}\n")).collect())
}

/// The `listen` parameters of an HTTPS server.
pub(super) fn listen_tls(addr: std::net::SocketAddr) -> String {
    format!("{addr} ssl http2")
}

/// The http-level TLS settings (empty without an HTTPS address).
pub(super) fn tls_settings(cfg: &ServiceConfig) -> String {
    match cfg.nginx_listen_tls {
        Some(_) => format!("    # HTTPS: Mozilla's \"intermediate\" settings, shared by every HTTPS server.\n{TLS_SETTINGS}"),
        None => String::new(),
    }
}

/// The HTTPS default server: a name none of ours (unknown SNI) gets its handshake refused, so no
/// certificate of ours is shown to a scanner that only knows the address. A client of an
/// `https://{ip}/` URL sends no SNI at all and lands here too: when the public host is an IP
/// address (the default, with the local CA) the default server therefore presents the
/// dashboard's certificate, the one anybody connecting to that address gets anyway, and the
/// Host header then picks the server (the dashboard's names; any other 421).
pub(super) fn default_tls_server(cfg: &ServiceConfig, front: &TlsFront) -> Result<String, ProxyError> {
    let Some(a) = cfg.nginx_listen_tls else { return Ok(String::new()) };
    let host = cfg.public_host.trim().trim_start_matches('[').trim_end_matches(']');
    let body = match &front.dashboard {
        Some(t) if host.parse::<IpAddr>().is_ok() => format!(
            "        # The public host is an IP address: its clients send no SNI (see service::proxy::https).\n{}        return 421;\n",
            cert_lines(cfg, t, "        ")?
        ),
        // A request still lands here when its Host is none of ours on a connection opened for
        // one of our names: nothing served.
        _ => "        ssl_reject_handshake on;\n        return 421;\n".to_owned(),
    };
    Ok(format!(
        "\n    # HTTPS for a name we do not serve: the handshake is refused, no certificate revealed.\n    server {{\n        listen {a} ssl http2 default_server;\n        server_name _;\n{body}    }}\n"
    ))
}

/// The `https` entry of the `$vmw_dashboard_hsts` map (empty: no HSTS).
pub(super) fn dashboard_hsts(cfg: &ServiceConfig, front: &TlsFront) -> String {
    match (cfg.nginx_listen_tls, &front.dashboard, front.hsts_max_age_secs) {
        (Some(_), Some(_), secs) if secs > 0 => format!("        https \"max-age={secs}\";\n"),
        _ => String::new(),
    }
}

/// The dashboard's server: its names over HTTP, and over HTTPS with `front.dashboard`, in ONE
/// server with two `listen`s, so its locations (every site's `/{slug}/` among them) are parsed
/// once, not once per scheme (BENCHMARKS.md Run TLS-2). When the certificate asks for it, plain
/// HTTP to the public host is redirected to HTTPS by a map on `$scheme$host` (its ACME challenge
/// path excepted); the loopback names are never redirected (the app's probes, local scripts).
pub(super) fn dashboard_servers(cfg: &ServiceConfig, prefix: &Path, front: &TlsFront) -> Result<String, ProxyError> {
    let names = dashboard_names(&cfg.public_host)?;
    let tls = cfg.nginx_listen_tls.zip(front.dashboard.as_ref());
    let public: Vec<&str> = names.iter().map(String::as_str).filter(|n| !LOOPBACK_NAMES.contains(n)).collect();
    let mut out = String::new();
    let mut server = format!("    server {{\n        listen {};\n", cfg.nginx_listen);
    if let Some((addr, _)) = tls {
        server.push_str(&format!("        listen {};\n", listen_tls(addr)));
    }
    server.push_str(&format!("        server_name {};\n", names.join(" ")));
    if let Some((_, t)) = tls {
        server.push_str(&cert_lines(cfg, t, "        ")?);
        if t.redirect_http && !public.is_empty() {
            out.push_str("    # Plain HTTP to the dashboard's public name: redirected to HTTPS, its ACME challenge\n");
            out.push_str("    # path excepted (the CA asks over HTTP). The loopback names are not in it.\n");
            out.push_str("    map $scheme$host $vmw_dashboard_plain_public {\n        default \"\";\n");
            for n in &public {
                out.push_str(&format!("        http{n} 1;\n"));
            }
            out.push_str("    }\n");
            out.push_str("    map \"$vmw_dashboard_plain_public$uri\" $vmw_dashboard_redirect {\n        default \"\";\n");
            out.push_str("        \"~^1/\\.well-known/acme-challenge/\" \"\";\n        \"~^1\" 1;\n    }\n");
            server.push_str(&format!("        if ($vmw_dashboard_redirect) {{\n            {}\n        }}\n", redirect_line(cfg)));
        }
    }
    server.push_str(&format!("        include {}/dashboard.conf;\n    }}\n", prefix.display()));
    out.push_str(&server);
    Ok(out)
}

/// The one HTTPS server of every site name, with its maps (`nginx/sites-https.template`);
/// empty without an HTTPS address. `front.sites` (the wildcard) is named here only, for the
/// map lines whose certificate is `*`: without it those names get no certificate.
pub(super) fn sites_https_server(cfg: &ServiceConfig, prefix: &Path, front: &TlsFront) -> Result<String, ProxyError> {
    let Some(addr) = cfg.nginx_listen_tls else { return Ok(String::new()) };
    let (chain, key) = match &front.sites {
        Some(t) => {
            let (c, k) = cert_paths(t)?;
            (format!("        \"~^\\d+ \\S+ [01] \\*$\" {c};\n"), format!("        \"~^\\d+ \\S+ [01] \\*$\" {k};\n"))
        }
        None => (String::new(), String::new()),
    };
    Ok(render::fill(
        render::SITES_HTTPS,
        &[
            ("prefix", prefix.display().to_string()),
            ("listen_tls", listen_tls(addr)),
            ("wildcard_chain", chain),
            ("wildcard_key", key),
            ("site_hsts", render::SITE_HSTS.to_owned()),
        ],
    ))
}

/// The redirect entries of the shared HTTP server's `$vmw_http_redirect` map (nginx.conf): a
/// custom domain whose line says 1 (its certificate asks for HTTPS), and every
/// `{slug}.{base_domain}` (line `s`) when the sites' certificate asks for it. Nothing without an
/// HTTPS address.
pub(super) fn sites_http_redirect(cfg: &ServiceConfig, front: &TlsFront) -> String {
    if cfg.nginx_listen_tls.is_none() {
        return String::new();
    }
    let mut out = "        \"~^\\d+ \\S+ 1$\" 1;\n".to_owned();
    if front.sites.as_ref().is_some_and(|t| t.redirect_http) {
        out.push_str("        \"~^\\d+ \\S+ s$\" 1;\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_domain_names_are_accepted() {
        for ok in ["example.com", "www.example.com", "xn--bcher-kva.example", "a-b.c0.example", "1.example.com"] {
            assert!(validate_domain_name(ok).is_ok(), "{ok}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        let too_long = format!("{}com", "abcdefghi.".repeat(26));
        for bad in [
            "",
            "com",
            "Example.com",
            "*.example.com",
            "a;b.com",
            "a b.com",
            "evil.com; include /etc/passwd",
            "example.com.",
            ".example.com",
            "a..com",
            "-a.com",
            "a-.com",
            "127.0.0.1",
            "10.0.0.300",
            "[::1]",
            "::1",
            "a_b.com",
            "a}.com",
            "exa\nmple.com",
            long_label.as_str(),
            too_long.as_str(),
        ] {
            assert!(validate_domain_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn certificate_paths_are_one_absolute_word() {
        assert!(validate_cert_path(Path::new("/data/tls/certs/www.example.com/chain.pem")).is_ok());
        for bad in ["rel/chain.pem", "/a b/c.pem", "/a;b.pem", "/a/../b.pem", "/a/${x}.pem", "/a/\"q\".pem", "/a/{b}.pem"] {
            assert!(validate_cert_path(Path::new(bad)).is_err(), "{bad}");
        }
    }
}
