//! nginx serves HTTPS (issue 30, part 1), through the project's `Proxy` and a real nginx in a
//! temporary prefix on free loopback ports. Certificates come from a test CA made here with
//! `openssl`; curl and `openssl s_client` are the visitors (SNI by `--resolve`, the CA by
//! `--cacert`). Stand-ins: the app (an axum server answering the ACME challenge path and its
//! pages, telling what it received), a site's VM and the waker.
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use service::ServiceConfig;
use service::proxy::{CertPaths, DomainRoute, Proxy, ProxyError, SiteRoute, TlsFront, TlsName};
use vmw_test_support::free_port;

/// An axum server on a free loopback port; `who` names it in every answer.
async fn stand_in(who: &'static str) -> SocketAddr {
    use axum::extract::Path as UrlPath;
    use axum::http::{HeaderMap, Uri};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let describe = move |headers: &HeaderMap, what: String| {
        let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
        let cookie = if headers.contains_key("cookie") { "cookie" } else { "no-cookie" };
        format!("{who} {what} proto={} hosting={} {cookie}", h("x-forwarded-proto"), h("x-webhoster-hosting"))
    };
    let app = axum::Router::new()
        .route(
            "/.well-known/acme-challenge/{token}",
            axum::routing::get(move |UrlPath(token): UrlPath<String>, headers: HeaderMap| async move {
                ([("set-cookie", "challenge=1")], describe(&headers, format!("challenge:{token}")))
            }),
        )
        .fallback(move |uri: Uri, headers: HeaderMap| async move {
            // A VM that sends its own HSTS (nginx replaces it where the owner turned HSTS on).
            ([("strict-transport-security", "max-age=5")], describe(&headers, format!("page:{}", uri.path())))
        });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn openssl(args: &[&str], dir: &Path) {
    let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A certificate for `names` (DNS names, or IP addresses) signed by the test CA in `dir`, as
/// `{file}.pem` and `{file}.key`.
fn issue(dir: &Path, file: &str, names: &[&str]) -> CertPaths {
    let san: Vec<String> =
        names.iter().map(|n| if n.parse::<std::net::IpAddr>().is_ok() { format!("IP:{n}") } else { format!("DNS:{n}") }).collect();
    let (pem, key) = (format!("{file}.pem"), format!("{file}.key"));
    openssl(
        &[
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-keyout", &key, "-out", &pem, "-subj", &format!("/CN={}", names[0]),
            "-addext", &format!("subjectAltName={}", san.join(",")), "-CA", "ca.pem", "-CAkey", "ca.key",
        ],
        dir,
    );
    // nginx's workers read the sites' keys at each handshake (as www-data when the test runs
    // as root): a throwaway test key may be readable by anyone.
    std::fs::set_permissions(dir.join(&key), std::fs::Permissions::from_mode(0o644)).unwrap();
    CertPaths { chain: dir.join(pem), key: dir.join(key) }
}

/// A temporary directory with `certs/ca.pem` and `certs/ca.key`: the test CA.
fn test_ca() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    // ...and get to them (a temporary directory is 0700).
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    openssl(
        &["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=vmw test CA"],
        &certs,
    );
    (dir, certs)
}

fn tls(cert: CertPaths, redirect_http: bool) -> TlsName {
    TlsName { cert, redirect_http, ocsp_stapling: false }
}

struct Front {
    /// First: nginx stops before its prefix is removed.
    _stop: StopOnDrop,
    _dir: tempfile::TempDir,
    certs: PathBuf,
    proxy: Proxy,
    http: u16,
    https: u16,
    ca: PathBuf,
    /// The stand-in VM sites 1 and 2 route to.
    vm: SocketAddr,
}

const PUBLIC: &str = "host.test";

/// Site 1 "shop" (HSTS on) with `www.shop.test` (certificate, redirected) and `plain.test`
/// (verified, no certificate yet); site 2 "other" (HSTS off); site 3 "sleepy" whose VM port
/// refuses connections (the waker answers).
fn routes(vm: SocketAddr, certs: &Path) -> Vec<SiteRoute> {
    let site = |id: i32, slug: &str, port: u16, hsts: bool, domains: Vec<DomainRoute>| SiteRoute {
        hosting_id: id,
        slug: slug.into(),
        user_id: 100 + id,
        serve_user_path: false,
        http_port: port,
        backend: vm.ip(),
        hsts,
        domains,
        subdomain_tls: None,
    };
    let www = DomainRoute { id: 10, name: "www.shop.test".into(), tls: Some(tls(issue(certs, "www", &["www.shop.test"]), true)) };
    let plain = DomainRoute { id: 11, name: "plain.test".into(), tls: None };
    vec![site(1, "shop", vm.port(), true, vec![www, plain]), site(2, "other", vm.port(), false, Vec::new()), site(3, "sleepy", free_port(), false, Vec::new())]
}

/// nginx with HTTPS: the dashboard (public host redirected, HSTS 600 s), the sites' wildcard
/// (redirected) and the routes above.
async fn front() -> Front {
    vmw_test_support::init_tracing();
    let (dir, certs) = test_ca();
    let (app, vm, waker) = (stand_in("app").await, stand_in("vm").await, stand_in("waker").await);
    let (http, https) = (free_port(), free_port());
    let cfg = ServiceConfig {
        data_dir: dir.path().to_path_buf(),
        public_host: PUBLIC.into(),
        base_domain: "sites.test".into(),
        nginx_listen: SocketAddr::from(([127, 0, 0, 1], http)),
        nginx_listen_tls: Some(SocketAddr::from(([127, 0, 0, 1], https))),
        app_upstream: app,
        waker_upstream: Some(waker),
        ..ServiceConfig::default()
    };
    let proxy = Proxy::new(&cfg);
    proxy.ensure_running().await.expect("nginx starts");
    let f = Front { _stop: StopOnDrop(proxy.clone()), ca: certs.join("ca.pem"), certs, _dir: dir, proxy, http, https, vm };
    let front = TlsFront {
        dashboard: Some(tls(issue(&f.certs, "dash", &[PUBLIC, "localhost", "127.0.0.1"]), true)),
        sites: Some(tls(issue(&f.certs, "wild", &["*.sites.test"]), true)),
        hsts_max_age_secs: 600,
    };
    f.proxy.set_tls(front).await.expect("nginx takes the certificates");
    for r in routes(vm, &f.certs) {
        f.proxy.add_route(&r).await.unwrap();
    }
    f
}

/// One answer as curl saw it.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// "1.1" or "2".
    version: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }
}

impl Front {
    /// `curl` of `scheme://host:port{path}`, `host` resolved to 127.0.0.1 (SNI and Host are
    /// `host`), trusting the test CA; `extra` args as given. Err: curl's error (no answer).
    async fn curl(&self, scheme: &str, host: &str, path: &str, extra: &[&str]) -> Result<Answer, String> {
        let port = if scheme == "https" { self.https } else { self.http };
        let url = format!("{scheme}://{host}:{port}{path}");
        let out = tokio::process::Command::new("curl")
            .args(["-sS", "--noproxy", "*", "--max-time", "10", "-D", "-", "-w", "\n%{http_version}"])
            .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
            .arg("--cacert")
            .arg(&self.ca)
            .args(extra)
            .arg(&url)
            .output()
            .await
            .unwrap();
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (head, rest) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{url}: {text}"));
        let (body, version) = rest.rsplit_once('\n').unwrap();
        let mut lines = head.lines();
        let status = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
        let headers = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
        Ok(Answer { status, version: version.trim().to_owned(), headers, body: body.to_owned() })
    }

    async fn get(&self, scheme: &str, host: &str, path: &str) -> Answer {
        self.curl(scheme, host, path, &[]).await.unwrap_or_else(|e| panic!("{scheme}://{host}{path}: {e}"))
    }

    /// `openssl s_client` to the HTTPS port with `sni` and `extra` args: (handshake done, output).
    async fn s_client(&self, sni: &str, extra: &[&str]) -> (bool, String) {
        let out = tokio::process::Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{}", self.https), "-servername", sni])
            .args(extra)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success() && text.contains("BEGIN CERTIFICATE"), text)
    }

    /// The subject of the certificate served for `sni`.
    async fn served_cert(&self, sni: &str) -> String {
        let (ok, text) = self.s_client(sni, &[]).await;
        assert!(ok, "{sni}: {text}");
        text.lines().find(|l| l.starts_with("subject=")).unwrap_or("").to_owned()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_name_is_served_over_https_with_its_certificate_tls_1_2_and_1_3_and_http2() {
    let f = front().await;
    // The dashboard, its locations proxied to the app with X-Forwarded-Proto https.
    let a = f.get("https", PUBLIC, "/hostings").await;
    assert_eq!((a.status, a.version.as_str(), a.body.as_str()), (200, "2", "app page:/hostings proto=https hosting=- no-cookie"));
    // A site's subdomain (the wildcard) and a custom domain (its own certificate): the VM.
    let a = f.get("https", "shop.sites.test", "/index.html").await;
    assert_eq!((a.status, a.version.as_str(), a.body.as_str()), (200, "2", "vm page:/index.html proto=https hosting=1 no-cookie"));
    assert_eq!(a.header("x-webhoster-site"), ["shop"]);
    let a = f.get("https", "www.shop.test", "/").await;
    assert_eq!((a.status, a.body.as_str()), (200, "vm page:/ proto=https hosting=1 no-cookie"));
    assert!(f.served_cert("www.shop.test").await.contains("www.shop.test"));
    assert!(f.served_cert("other.sites.test").await.contains("*.sites.test"));
    assert!(f.served_cert(PUBLIC).await.contains(PUBLIC));
    // A sleeping site wakes on its first HTTPS request as on HTTP: the waker gets it.
    let a = f.get("https", "sleepy.sites.test", "/").await;
    assert_eq!((a.status, a.body.as_str()), (200, "waker page:/ proto=https hosting=3 no-cookie"));
    // A verified domain without a certificate yet: HTTP only, no certificate of ours shown.
    assert_eq!(f.get("http", "plain.test", "/x").await.body, "vm page:/x proto=http hosting=1 no-cookie");
    assert!(f.curl("https", "plain.test", "/", &[]).await.is_err());

    // Unknown names: the handshake is refused, no certificate revealed; HTTP keeps its 421.
    for sni in ["unknown.test", "127.0.0.2"] {
        let (ok, text) = f.s_client(sni, &[]).await;
        assert!(!ok && !text.contains("BEGIN CERTIFICATE"), "{sni}: {text}");
        assert!(text.contains("no peer certificate available"), "{sni}: {text}");
    }
    assert!(f.curl("https", "unknown.test", "/", &[]).await.is_err());
    assert_eq!(f.get("http", "unknown.test", "/").await.status, 421);

    // TLS 1.2 and 1.3 work; 1.1 (offered by a client that would accept it) is refused.
    let a = f.curl("https", PUBLIC, "/", &["--tlsv1.3", "--tls-max", "1.3"]).await.unwrap();
    assert_eq!(a.status, 200);
    let a = f.curl("https", PUBLIC, "/", &["--tlsv1.2", "--tls-max", "1.2"]).await.unwrap();
    assert_eq!(a.status, 200);
    let (ok, text) = f.s_client(PUBLIC, &["-tls1_3"]).await;
    assert!(ok && text.contains("TLSv1.3"), "{text}");
    let (ok, text) = f.s_client(PUBLIC, &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]).await;
    assert!(!ok && text.contains("protocol version"), "TLS 1.1: {text}");
    // ALPN offers h2 (and HTTP/1.1 for the clients that ask for it).
    let (_, text) = f.s_client(PUBLIC, &["-alpn", "h2,http/1.1"]).await;
    assert!(text.contains("ALPN protocol: h2"), "{text}");
    let a = f.curl("https", PUBLIC, "/", &["--http1.1"]).await.unwrap();
    assert_eq!(a.version, "1.1");
}

/// Makes a visit (answered 200) and checks that it moved the site's visits `log`: returns the
/// log's new modification time.
async fn visit_moves(log: &Path, visit: impl std::future::Future<Output = Answer>) -> std::time::SystemTime {
    let before = std::fs::metadata(log).and_then(|m| m.modified()).ok();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(visit.await.status, 200);
    let after = std::fs::metadata(log).expect("a visits log after a visit").modified().unwrap();
    assert!(before.is_none_or(|b| after > b), "the visit moves it");
    after
}

/// Every site name over HTTPS is one shared server: each request goes to the site its Host
/// names (whatever name opened the connection), a visit over HTTPS moves the site's last visit
/// (its own log), a site's own certificate for its subdomain wins over the wildcard, and a
/// removed site takes its names and certificates with it.
#[tokio::test(flavor = "multi_thread")]
async fn one_https_server_routes_every_site_by_name_and_logs_its_visits() {
    let f = front().await;
    // A connection opened for shop.sites.test, asking for other.sites.test: site 2 answers.
    let a = f.curl("https", "shop.sites.test", "/", &["-H", "Host: other.sites.test"]).await.unwrap();
    assert_eq!((a.status, a.body.as_str()), (200, "vm page:/ proto=https hosting=2 no-cookie"));
    assert_eq!(a.header("x-webhoster-site"), ["other"]);
    // ...and for a name that is no site's: 421, nothing served.
    let a = f.curl("https", "shop.sites.test", "/", &["-H", "Host: nobody.sites.test"]).await.unwrap();
    assert_eq!(a.status, 421);
    assert!(a.header("x-webhoster-site").is_empty());

    // A visit over HTTPS is the site's visit: its own log, written by nginx's workers.
    // (nginx keeps it open: emptied in place, never removed while the site lives.)
    let log = f.proxy.tls_visits_file(2);
    let first = visit_moves(&log, f.get("https", "other.sites.test", "/")).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(f.get("https", "other.sites.test", "/page").await.status, 200);
    assert!(std::fs::metadata(&log).unwrap().modified().unwrap() > first, "the second visit moves it");
    assert!(!log.with_file_name(".log").exists(), "the 421 is no site's visit");

    // A visit over plain HTTP (the shared HTTP server, a custom domain without a certificate)
    // is the site's visit too: the file the idle sleeper reads beside `visits_file`.
    visit_moves(&f.proxy.tls_visits_file(1), f.get("http", "plain.test", "/")).await;
    let a = f.curl("http", "plain.test", "/", &["-H", "Host: nobody.sites.test"]).await.unwrap();
    assert_eq!(a.status, 421, "a Host that is no site's, over HTTP");

    // A certificate of its own for a site's subdomain (the local CA's, where no wildcard can
    // be had): served instead of the wildcard, for that name only.
    let mut r = routes(f.vm, &f.certs).remove(1);
    r.subdomain_tls = Some(tls(issue(&f.certs, "own", &["other.sites.test"]), false));
    f.proxy.add_route(&r).await.unwrap();
    assert_eq!(f.served_cert("other.sites.test").await, "subject=CN = other.sites.test");
    assert!(f.served_cert("shop.sites.test").await.contains("*.sites.test"));
    assert_eq!(f.get("https", "other.sites.test", "/").await.status, 200);

    // A removed site takes its HTTPS names with it: no certificate for them any more.
    f.proxy.remove_route(1).await.unwrap();
    let (ok, text) = f.s_client("www.shop.test", &[]).await;
    assert!(!ok, "www.shop.test after its site went: {text}");
    assert!(f.curl("https", "shop.sites.test", "/", &[]).await.is_err());
    assert_eq!(f.get("https", "other.sites.test", "/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn hsts_is_sent_exactly_where_configured() {
    let f = front().await;
    // Every location of the dashboard over HTTPS (the app's, the API, the auth pages, nginx's
    // own 404 and 413, and a site on /{slug}/): max-age=600. Never over HTTP.
    for path in ["/", "/api/v1/hostings", "/login", "/api/fn/login", "/metrics", "/shop/", "/__vmw_generation"] {
        let a = f.get("https", PUBLIC, path).await;
        assert_eq!(a.header("strict-transport-security"), ["max-age=600"], "https {path} ({})", a.status);
        let a = f.get("http", "localhost", path).await;
        assert!(a.header("strict-transport-security").is_empty(), "http {path}");
    }
    let big = f.certs.join("big.bin");
    std::fs::write(&big, vec![b'x'; 3 << 20]).unwrap();
    let a = f.curl("https", PUBLIC, "/api/v1/hostings", &["--data-binary", &format!("@{}", big.display())]).await.unwrap();
    assert_eq!((a.status, a.header("strict-transport-security")), (413, vec!["max-age=600"]));
    // A site whose owner turned HSTS on: nginx's one value replaces the VM's, on its
    // subdomain and its custom domain.
    for host in ["shop.sites.test", "www.shop.test"] {
        let a = f.get("https", host, "/").await;
        assert_eq!(a.header("strict-transport-security"), ["max-age=31536000"], "{host}");
    }
    // HSTS off: the VM's own header is the tenant's business on its own origin.
    assert_eq!(f.get("https", "other.sites.test", "/").await.header("strict-transport-security"), ["max-age=5"]);
    // Plain HTTP answers carry none of ours.
    assert_eq!(f.get("http", "plain.test", "/").await.header("strict-transport-security"), ["max-age=5"]);
    // The dashboard's HSTS switched off: gone.
    let mut front = f.proxy.tls_front();
    front.hsts_max_age_secs = 0;
    f.proxy.set_tls(front).await.unwrap();
    assert!(f.get("https", PUBLIC, "/").await.header("strict-transport-security").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn http_redirects_to_https_but_the_acme_challenge_reaches_the_app() {
    let f = front().await;
    let https = f.https;
    // Names with an ACME or operator certificate: 301 to the same URL over HTTPS.
    for (host, path) in [(PUBLIC, "/hostings?x=1"), ("shop.sites.test", "/a/b"), ("www.shop.test", "/")] {
        let a = f.get("http", host, path).await;
        assert_eq!(a.status, 301, "{host}");
        assert_eq!(a.header("location"), [format!("https://{host}:{https}{path}").as_str()], "{host}");
    }
    // The loopback names (the app's probes, local scripts) and a name without a certificate answer.
    assert_eq!(f.get("http", "localhost", "/x").await.body, "app page:/x proto=http hosting=- no-cookie");
    assert_eq!(f.get("http", "127.0.0.1", "/x").await.status, 200);
    assert_eq!(f.get("http", "plain.test", "/").await.status, 200);
    // The challenge path on every plain-HTTP server goes to the app, never to a site, without
    // the visitor's cookies either way, and is not redirected.
    for host in [PUBLIC, "localhost", "shop.sites.test", "www.shop.test", "plain.test", "unknown.test"] {
        let a = f.curl("http", host, "/.well-known/acme-challenge/tok-1", &["-H", "Cookie: vmw_session=secret"]).await.unwrap();
        assert_eq!((a.status, a.body.as_str()), (200, "app challenge:tok-1 proto=http hosting=- no-cookie"), "{host}");
        assert!(a.header("set-cookie").is_empty(), "{host}");
    }
    // With a local-CA certificate (no redirect) both schemes answer.
    let mut front = f.proxy.tls_front();
    front.sites.as_mut().unwrap().redirect_http = false;
    front.dashboard.as_mut().unwrap().redirect_http = false;
    f.proxy.set_tls(front).await.unwrap();
    for host in [PUBLIC, "shop.sites.test"] {
        assert_eq!(f.get("http", host, "/").await.status, 200, "{host}");
        assert_eq!(f.get("https", host, "/").await.status, 200, "{host}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_certificate_never_takes_nginx_down() {
    let f = front().await;
    let sites_file = f.proxy.site_file(1).with_file_name("hosting-1.server.conf");
    let site_before = std::fs::read_to_string(&sites_file).unwrap();
    let before = f.proxy.tls_front();
    let tls_conf = f.proxy.prefix().join("nginx.conf");
    let tls_conf_before = std::fs::read_to_string(&tls_conf).unwrap();
    // A garbage chain for the sites' wildcard: refused, everything put back, HTTPS still served.
    let garbage = f.certs.join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n").unwrap();
    let mut bad = before.clone();
    bad.sites.as_mut().unwrap().cert.chain = garbage.clone();
    let err = f.proxy.set_tls(bad).await.unwrap_err();
    assert!(matches!(err, ProxyError::Certificate { .. }), "{err}");
    assert_eq!(f.proxy.tls_front(), before);
    assert_eq!(std::fs::read_to_string(&tls_conf).unwrap(), tls_conf_before);
    assert_eq!(f.get("https", "shop.sites.test", "/").await.status, 200);
    assert_eq!(f.get("https", PUBLIC, "/").await.status, 200);
    // A key that is not the certificate's: refused too.
    let other = issue(&f.certs, "other", &[PUBLIC]);
    let mut bad = before.clone();
    bad.dashboard.as_mut().unwrap().cert.key = other.key.clone();
    assert!(f.proxy.set_tls(bad).await.is_err());
    assert!(f.served_cert(PUBLIC).await.contains(PUBLIC));
    // A renewed wildcard is served without rewriting any site's file.
    let renewed = issue(&f.certs, "renewed", &["sites.test", "*.sites.test"]);
    let mut next = before.clone();
    next.sites.as_mut().unwrap().cert = renewed;
    f.proxy.set_tls(next.clone()).await.unwrap();
    assert_eq!(f.proxy.tls_front(), next);
    assert_eq!(std::fs::read_to_string(&sites_file).unwrap(), site_before);
    assert_eq!(f.served_cert("shop.sites.test").await, "subject=CN = sites.test");
    assert_eq!(f.get("https", "shop.sites.test", "/").await.status, 200);
    // A custom domain's garbage certificate: the site's route is refused and put back.
    let vm: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let mut r = routes(vm, &f.certs).remove(0);
    r.backend = vm.ip();
    r.domains[0].tls.as_mut().unwrap().cert.chain = garbage;
    assert!(matches!(f.proxy.add_route(&r).await, Err(ProxyError::Certificate { .. })));
    assert_eq!(std::fs::read_to_string(&sites_file).unwrap(), site_before);
    assert_eq!(f.get("https", "www.shop.test", "/").await.status, 200);
}

/// A static nginx on loopback standing in for a VM's web server (a 1 KiB page), stopped on drop.
struct StaticBackend {
    prefix: PathBuf,
    port: u16,
}

impl StaticBackend {
    fn start(dir: &Path) -> Self {
        let prefix = dir.join("backend");
        std::fs::create_dir_all(prefix.join("html")).unwrap();
        std::fs::create_dir_all(prefix.join("logs")).unwrap();
        std::fs::write(prefix.join("html/index.html"), "x".repeat(1024)).unwrap();
        let port = free_port();
        let p = prefix.display();
        std::fs::write(
            prefix.join("nginx.conf"),
            format!(
                "worker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log;\nevents {{ worker_connections 1024; }}\nhttp {{\n    access_log off;\n    keepalive_requests 1000000;\n    client_body_temp_path {p}/tmp; proxy_temp_path {p}/tmp; fastcgi_temp_path {p}/tmp; uwsgi_temp_path {p}/tmp; scgi_temp_path {p}/tmp;\n    server {{ listen 127.0.0.1:{port}; root {p}/html; }}\n}}\n"
            ),
        )
        .unwrap();
        let out = std::process::Command::new("nginx").arg("-p").arg(&prefix).arg("-c").arg(prefix.join("nginx.conf")).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        StaticBackend { prefix, port }
    }
}

impl Drop for StaticBackend {
    fn drop(&mut self) {
        let _ = std::process::Command::new("nginx").arg("-p").arg(&self.prefix).arg("-c").arg(self.prefix.join("nginx.conf")).args(["-s", "quit"]).output();
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// `wrk` at 100 keep-alive connections for `secs` against `url` with Host `host`:
/// (requests/s, p50, p99, non-2xx+errors line).
async fn wrk(url: &str, host: &str, secs: u32) -> (f64, String, String, String) {
    let out = tokio::process::Command::new("wrk")
        .args(["-t2", "-c100", &format!("-d{secs}s"), "--latency", "-H", &format!("Host: {host}"), url])
        .output()
        .await
        .expect("wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |prefix: &str| text.lines().map(str::trim).find(|l| l.starts_with(prefix)).map(|l| l[prefix.len()..].trim().to_owned()).unwrap_or_default();
    let rps = field("Requests/sec:").parse().unwrap_or(0.0);
    let errors = [field("Non-2xx or 3xx responses:"), field("Socket errors:")].iter().filter(|e| !e.is_empty()).cloned().collect::<Vec<_>>().join("; ");
    (rps, field("50%"), field("99%"), if errors.is_empty() { "none".into() } else { errors })
}

/// `n` new TLS handshakes (TCP connect included), one at a time, with SNI `sni` and at most
/// `version`: "p50 ms / p99 ms".
async fn handshakes(port: u16, sni: &str, ca: &Path, n: u32, version: &str) -> String {
    let script = format!(
        r#"
import socket, ssl, time
ctx = ssl.create_default_context(cafile={ca:?})
ctx.maximum_version = ssl.TLSVersion.{version}
ts = []
for _ in range({n}):
    t = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", {port}))
    c = ctx.wrap_socket(s, server_hostname={sni:?})
    ts.append((time.perf_counter() - t) * 1000)
    c.close()
ts.sort()
print("%.2f / %.2f" % (ts[len(ts) // 2], ts[int(len(ts) * 0.99)]))
"#,
        ca = ca.display().to_string(),
    );
    let out = tokio::process::Command::new("python3").arg("-c").arg(script).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `make bench-tls` (ops/bench-tls.sh): HTTPS against HTTP through the project's nginx
/// configuration, new handshakes, and reload times with 1,000 sites each with a custom domain
/// and its own certificate. Prints a table (BENCHMARKS.md).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark: make bench-tls"]
async fn bench_https_against_http() {
    let secs: u32 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let sites: i32 = std::env::var("BENCH_SITES").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let (dir, certs) = test_ca();
    let backend = StaticBackend::start(dir.path());
    let (http, https) = (free_port(), free_port());
    // The default public host (an IP address): wrk sends no SNI and gets the dashboard's
    // certificate; its Host header picks the site's HTTPS server.
    let cfg = ServiceConfig {
        data_dir: dir.path().to_path_buf(),
        base_domain: "sites.test".into(),
        nginx_listen: SocketAddr::from(([127, 0, 0, 1], http)),
        nginx_listen_tls: Some(SocketAddr::from(([127, 0, 0, 1], https))),
        app_upstream: SocketAddr::from(([127, 0, 0, 1], free_port())),
        ..ServiceConfig::default()
    };
    let proxy = Proxy::new(&cfg);
    proxy.ensure_running().await.unwrap();
    let ca = certs.join("ca.pem");
    let f = Front { _stop: StopOnDrop(proxy.clone()), _dir: dir, certs: certs.clone(), proxy: proxy.clone(), http, https, ca, vm: SocketAddr::from(([127, 0, 0, 1], backend.port)) };
    let mut front = TlsFront {
        dashboard: Some(tls(issue(&certs, "dash", &["localhost", "127.0.0.1"]), false)),
        sites: Some(tls(issue(&certs, "wild", &["*.sites.test"]), false)),
        hsts_max_age_secs: 0,
    };
    proxy.set_tls(front.clone()).await.unwrap();
    let site = |id: i32, port: u16, domains: Vec<DomainRoute>| SiteRoute {
        hosting_id: id,
        slug: format!("site-{id}"),
        user_id: id,
        serve_user_path: false,
        http_port: port,
        backend: std::net::Ipv4Addr::LOCALHOST.into(),
        hsts: false,
        domains,
        subdomain_tls: None,
    };
    proxy.add_route(&site(1, backend.port, Vec::new())).await.unwrap();

    let mut rows: Vec<(String, String)> = vec![("machine".into(), format!("{} cores, load {}", std::thread::available_parallelism().unwrap(), loadavg()))];
    let host = "site-1.sites.test";
    let mut best = (0.0f64, 0.0f64);
    for round in 1..=2 {
        let (rps, p50, p99, err) = wrk(&format!("http://127.0.0.1:{http}/"), host, secs).await;
        rows.push((format!("HTTP/1.1, 100 keep-alive conns, round {round}"), format!("{rps:.0} req/s, p50 {p50}, p99 {p99}, errors {err} (load {})", loadavg())));
        best.0 = best.0.max(rps);
        let (rps, p50, p99, err) = wrk(&format!("https://127.0.0.1:{https}/"), host, secs).await;
        rows.push((format!("HTTPS (TLS 1.3, HTTP/1.1), 100 keep-alive conns, round {round}"), format!("{rps:.0} req/s, p50 {p50}, p99 {p99}, errors {err} (load {})", loadavg())));
        best.1 = best.1.max(rps);
    }
    rows.push(("HTTPS / HTTP (best rounds; goal >= 80 %)".into(), format!("{:.0} %", 100.0 * best.1 / best.0)));
    for version in ["TLSv1_3", "TLSv1_2"] {
        let t = handshakes(https, host, &certs.join("ca.pem"), 500, version).await;
        rows.push((format!("new handshake + TCP connect, max {version}, 500 in a row (goal p50 <= 5 ms)"), format!("p50 / p99 ms: {t} (load {})", loadavg())));
    }

    // 1,000 sites, each with a custom domain with its own certificate.
    let t = std::time::Instant::now();
    let routes: Vec<SiteRoute> = (2..sites + 2)
        .map(|id| {
            let name = format!("www.shop-{id}.test");
            let cert = issue(&certs, &format!("d{id}"), &[&name]);
            site(id, backend.port, vec![DomainRoute { id, name, tls: Some(tls(cert, true)) }])
        })
        .collect();
    rows.push((format!("{sites} certificates made (openssl)"), format!("{:.1} s", t.elapsed().as_secs_f64())));
    let t = std::time::Instant::now();
    assert_eq!(proxy.refresh_routes(&routes).await.unwrap(), routes.len());
    rows.push((format!("refresh_routes: {sites} sites written, nginx -t, one reload"), format!("{:.0} ms (load {})", t.elapsed().as_secs_f64() * 1000.0, loadavg())));
    let last = format!("www.shop-{}.test", sites + 1);
    assert_eq!(f.get("https", &last, "/").await.status, 200);
    let mut set_tls = Vec::new();
    let mut add = Vec::new();
    for i in 0..5 {
        front.hsts_max_age_secs = 100 + i;
        let t = std::time::Instant::now();
        proxy.set_tls(front.clone()).await.unwrap();
        set_tls.push(t.elapsed().as_secs_f64() * 1000.0);
        let id = sites + 10 + i as i32;
        let name = format!("www.new-{id}.test");
        let r = site(id, backend.port, vec![DomainRoute { id, name: name.clone(), tls: Some(tls(issue(&certs, &format!("n{id}"), &[&name]), true)) }]);
        let t = std::time::Instant::now();
        proxy.add_route(&r).await.unwrap();
        add.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(f.get("https", &name, "/").await.status, 200);
    }
    let stats = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        format!("median {:.0} ms, max {:.0} ms (5 runs, load {})", v[v.len() / 2], v[v.len() - 1], loadavg())
    };
    rows.push((format!("set_tls with {} HTTPS site names, {sites} own certificates (goal <= 1 s)", 2 * sites + 3), stats(&mut set_tls)));
    rows.push((format!("add_route (a site + its domain's certificate) with {} HTTPS names (goal <= 1 s)", 2 * sites + 3), stats(&mut add)));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap();
    println!("\n| {:width$} | result |\n|{}|---|", "measure", "-".repeat(width + 2));
    for (k, v) in rows {
        println!("| {k:width$} | {v} |");
    }
    // BENCH_KEEP=/some/dir: a copy of nginx's prefix (its configuration for 1,000 sites), to
    // time `nginx -t` on it by hand.
    if let Ok(keep) = std::env::var("BENCH_KEEP") {
        let _ = std::process::Command::new("cp").args(["-a"]).arg(proxy.prefix()).arg(&keep).status();
    }
    drop(backend);
    drop(f);
}

/// Stops the proxy's nginx when dropped (also when the benchmark fails).
struct StopOnDrop(Proxy);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let proxy = self.0.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(proxy.stop())
        })
        .join();
    }
}
