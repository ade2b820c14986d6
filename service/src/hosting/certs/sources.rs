//! Where each of the front door's certificates comes from, decided from the settings alone:
//! the operator's files where given; with `--tls auto`, a loopback or IP name from the local
//! certificate authority (no public CA will certify it) and a DNS name from the ACME server.
use std::net::IpAddr;

use crate::config::TlsMode;
use crate::proxy::CertPaths;
use crate::ServiceConfig;

/// How one certificate is obtained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// Not served over HTTPS.
    None,
    /// Files the operator keeps current (`--tls-cert`, `--tls-wildcard-cert`).
    Operator(CertPaths),
    /// Issued here by the local certificate authority, for these names.
    LocalCa(Vec<String>),
    /// From the ACME server, validated over HTTP (HTTP-01), for these names.
    AcmeHttp(Vec<String>),
    /// From the ACME server, validated in DNS (DNS-01, an RFC 2136 update), for these names.
    AcmeDns(Vec<String>),
}

impl Source {
    /// The `certificates.source` value of this kind.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Source::None => "none",
            Source::Operator(_) => "operator",
            Source::LocalCa(_) => "local_ca",
            Source::AcmeHttp(_) | Source::AcmeDns(_) => "acme",
        }
    }

    /// HTTP answers 301 to HTTPS: everywhere but for the local CA's names (the original
    /// system's `http://localhost/...` scripts keep working).
    pub(crate) fn redirects_http(&self) -> bool {
        matches!(self, Source::Operator(_) | Source::AcmeHttp(_) | Source::AcmeDns(_))
    }
}

/// A name no public CA certifies: an IP literal, `localhost` and names under it, or a single
/// label (an intranet name).
pub(crate) fn is_local_name(host: &str) -> bool {
    let h = host.trim().trim_end_matches('.').to_ascii_lowercase();
    let bare = h.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok() || h == "localhost" || h.ends_with(".localhost") || !h.contains('.')
}

/// Whether TLS clients accept a `*.{base}` certificate: browsers and OpenSSL refuse a wildcard
/// directly under a single label (`*.localhost`), so such sites get a certificate each.
pub(crate) fn wildcard_ok(base_domain: &str) -> bool {
    base_domain.trim_end_matches('.').split('.').filter(|l| !l.is_empty()).count() >= 2
}

fn https(cfg: &ServiceConfig) -> bool {
    cfg.nginx_listen_tls.is_some() && cfg.tls.mode != TlsMode::Off
}

fn operator(files: &Option<(std::path::PathBuf, std::path::PathBuf)>) -> Option<CertPaths> {
    files.as_ref().map(|(chain, key)| CertPaths { chain: chain.clone(), key: key.clone() })
}

/// The dashboard's certificate.
pub(crate) fn dashboard(cfg: &ServiceConfig) -> Source {
    if !https(cfg) {
        return Source::None;
    }
    if let Some(files) = operator(&cfg.tls.dashboard_files) {
        return Source::Operator(files);
    }
    if cfg.tls.mode == TlsMode::Files {
        return Source::None;
    }
    let host = cfg.public_host.trim().trim_end_matches('.').to_ascii_lowercase();
    if is_local_name(&host) {
        // The names nginx serves the dashboard under (the loopback ones too).
        let names = crate::proxy::dashboard_names(&host).unwrap_or_else(|_| vec![host.clone()]);
        Source::LocalCa(names.into_iter().map(|n| n.trim_start_matches('[').trim_end_matches(']').to_owned()).collect())
    } else {
        Source::AcmeHttp(vec![host])
    }
}

/// The sites' `{slug}.{base_domain}` certificate: one wildcard (the base domain's own name
/// too). A local base domain that cannot take a wildcard gets [`Source::LocalCa`] with no
/// names: each site's name is certified on its own ([`site_names`]).
pub(crate) fn sites(cfg: &ServiceConfig) -> Source {
    if !https(cfg) {
        return Source::None;
    }
    if let Some(files) = operator(&cfg.tls.sites_files) {
        return Source::Operator(files);
    }
    if cfg.tls.mode == TlsMode::Files {
        return Source::None;
    }
    let base = cfg.base_domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let names = vec![format!("*.{base}"), base.clone()];
    if is_local_name(&base) {
        Source::LocalCa(if wildcard_ok(&base) { names } else { Vec::new() })
    } else if cfg.tls.dns_update.is_some() {
        Source::AcmeDns(names)
    } else {
        // A public wildcard needs DNS-01; without an update server the subdomains stay HTTP
        // (the admin page says so) and custom domains still get theirs by HTTP-01.
        Source::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DnsUpdate, TlsSettings};

    fn cfg(public_host: &str, base: &str, mode: TlsMode) -> ServiceConfig {
        ServiceConfig {
            public_host: public_host.into(),
            base_domain: base.into(),
            nginx_listen_tls: Some("127.0.0.1:443".parse().unwrap()),
            tls: TlsSettings { mode, ..TlsSettings::default() },
            ..ServiceConfig::default()
        }
    }

    #[test]
    fn make_run_gets_https_from_the_local_ca_out_of_the_box() {
        let c = cfg("127.0.0.1", "localhost", TlsMode::Auto);
        assert_eq!(dashboard(&c), Source::LocalCa(vec!["127.0.0.1".into(), "localhost".into(), "::1".into()]));
        assert!(!dashboard(&c).redirects_http(), "http://localhost/ keeps working");
        assert_eq!(sites(&c), Source::LocalCa(Vec::new()), "*.localhost is refused by clients: one certificate per site");
        let c = cfg("127.0.0.1", "sites.localhost", TlsMode::Auto);
        assert_eq!(sites(&c), Source::LocalCa(vec!["*.sites.localhost".into(), "sites.localhost".into()]));
    }

    #[test]
    fn a_dns_name_gets_its_certificate_from_acme_and_redirects() {
        let mut c = cfg("panel.example.com", "sites.example.com", TlsMode::Auto);
        assert_eq!(dashboard(&c), Source::AcmeHttp(vec!["panel.example.com".into()]));
        assert!(dashboard(&c).redirects_http());
        assert_eq!(sites(&c), Source::None, "a public wildcard needs DNS-01");
        c.tls.dns_update = Some(DnsUpdate { server: "127.0.0.1:53".parse().unwrap(), tsig_key_file: "/k".into(), zone: None });
        assert_eq!(sites(&c), Source::AcmeDns(vec!["*.sites.example.com".into(), "sites.example.com".into()]));
    }

    #[test]
    fn operator_files_win_and_off_means_http_only() {
        let mut c = cfg("panel.example.com", "sites.example.com", TlsMode::Files);
        assert_eq!((dashboard(&c), sites(&c)), (Source::None, Source::None));
        c.tls.dashboard_files = Some(("/c".into(), "/k".into()));
        assert_eq!(dashboard(&c), Source::Operator(CertPaths { chain: "/c".into(), key: "/k".into() }));
        c.tls.mode = TlsMode::Off;
        assert_eq!(dashboard(&c), Source::None);
        let mut c = cfg("127.0.0.1", "localhost", TlsMode::Auto);
        c.nginx_listen_tls = None;
        assert_eq!((dashboard(&c), sites(&c)), (Source::None, Source::None));
    }

    #[test]
    fn local_names_are_ips_loopback_and_single_labels() {
        for n in ["127.0.0.1", "[::1]", "::1", "localhost", "a.localhost", "intranet", "10.0.0.1"] {
            assert!(is_local_name(n), "{n}");
        }
        for n in ["example.com", "panel.example.com.", "sites.test"] {
            assert!(!is_local_name(n), "{n}");
        }
        assert!(!wildcard_ok("localhost") && wildcard_ok("sites.test"));
    }
}
