//! ACME against a real CA: Debian's Pebble, started through ops/test-acme.sh on free loopback
//! ports, its names all resolving to 127.0.0.1 through pebble-challtestsrv. HTTP-01 tokens are
//! served by a small axum server on the port Pebble validates on; DNS-01 records are set
//! through challtestsrv's management API. Without `pebble` on PATH every test says it is
//! skipped (and fails instead when REQUIRE_PEBBLE=1, as in CI).
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use service::tls::{Acme, AcmeError, AcmeSettings, Challenge, Dns01Publisher, Http01Publisher, PublishError, validity};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/test-acme.sh")
}

fn pebble_installed(test: &str) -> bool {
    let found = Command::new("sh").args(["-c", "command -v pebble && command -v pebble-challtestsrv"]).output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var("REQUIRE_PEBBLE").is_err(), "REQUIRE_PEBBLE is set but pebble/pebble-challtestsrv are not installed");
        eprintln!("SKIPPED {test}: pebble and pebble-challtestsrv are not installed (apt-get install pebble)");
    }
    found
}

/// A running Pebble (and challtestsrv), stopped on drop, even when the test panics.
struct Pebble {
    dir: tempfile::TempDir,
    env: HashMap<String, String>,
}

impl Pebble {
    fn start(http_port: u16) -> Self {
        Self::start_with(http_port, None)
    }

    /// `ocsp`: the OCSP responder URL Pebble writes into its certificates.
    fn start_with(http_port: u16, ocsp: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(dir.path().join("pebble"))
            .env("PEBBLE_HTTP_PORT", http_port.to_string())
            .env_remove("PEBBLE_DNS")
            .env("PEBBLE_OCSP_URL", ocsp.unwrap_or(""))
            .output()
            .unwrap();
        let mut pebble = Self { dir, env: HashMap::new() };
        assert!(out.status.success(), "test-acme.sh start: {}", String::from_utf8_lossy(&out.stderr));
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            if let Some((k, v)) = line.split_once('=') {
                pebble.env.insert(k.to_string(), v.to_string());
            }
        }
        pebble
    }

    fn var(&self, k: &str) -> &str {
        self.env.get(k).unwrap_or_else(|| panic!("{k} not printed by test-acme.sh"))
    }

    fn settings(&self) -> AcmeSettings {
        let mut s = AcmeSettings::new(self.var("PEBBLE_DIRECTORY"), self.dir.path().join("accounts"));
        s.extra_root = Some(PathBuf::from(self.var("PEBBLE_CA")));
        s.contact_email = Some("owner@example.test".into());
        s.deadline = Duration::from_secs(30);
        s
    }

    /// A GET on Pebble's management API (the roots it issues under).
    async fn mgmt(&self, path: &str) -> String {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(self.var("PEBBLE_CA")).unwrap()).unwrap();
        let client = reqwest::Client::builder().add_root_certificate(ca).no_proxy().build().unwrap();
        let rsp = client.get(format!("{}{path}", self.var("PEBBLE_MGMT"))).send().await.unwrap();
        assert!(rsp.status().is_success(), "{path}: {}", rsp.status());
        rsp.text().await.unwrap()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script()).arg("stop").arg(self.dir.path().join("pebble")).status();
    }
}

/// HTTP-01 tokens in a map, served by [`serve_tokens`].
#[derive(Clone, Default)]
struct Tokens(Arc<Mutex<HashMap<String, String>>>);

#[async_trait::async_trait]
impl Http01Publisher for Tokens {
    async fn publish(&self, token: &str, key_authorization: &str) -> Result<(), PublishError> {
        self.0.lock().unwrap().insert(token.to_string(), key_authorization.to_string());
        Ok(())
    }
    async fn withdraw(&self, token: &str) {
        self.0.lock().unwrap().remove(token);
    }
}

/// A publisher that says yes and serves nothing: the CA finds no token.
struct Forgetful;

#[async_trait::async_trait]
impl Http01Publisher for Forgetful {
    async fn publish(&self, _: &str, _: &str) -> Result<(), PublishError> {
        Ok(())
    }
    async fn withdraw(&self, _: &str) {}
}

/// Serves `/.well-known/acme-challenge/{token}` from `tokens` on a loopback port (returned).
async fn serve_tokens(tokens: Tokens) -> u16 {
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    async fn token(State(t): State<Tokens>, Path(token): Path<String>) -> Result<String, StatusCode> {
        t.0.lock().unwrap().get(&token).cloned().ok_or(StatusCode::NOT_FOUND)
    }
    let app = axum::Router::new().route("/.well-known/acme-challenge/{token}", axum::routing::get(token)).with_state(tokens);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

/// TXT records through pebble-challtestsrv's management API.
struct ChallTestSrv {
    mgmt: String,
    set: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl Dns01Publisher for ChallTestSrv {
    async fn publish(&self, fqdn: &str, value: &str) -> Result<(), PublishError> {
        let body = serde_json::json!({ "host": format!("{fqdn}."), "value": value });
        let rsp = reqwest::Client::new().post(format!("{}/set-txt", self.mgmt)).json(&body).send().await;
        match rsp.and_then(|r| r.error_for_status()) {
            Ok(_) => {
                self.set.lock().unwrap().push(fqdn.to_string());
                Ok(())
            }
            Err(e) => Err(PublishError { what: format!("set-txt {fqdn}"), source: Box::new(e) }),
        }
    }
    async fn withdraw(&self, fqdn: &str, _value: &str) {
        let body = serde_json::json!({ "host": format!("{fqdn}.") });
        let _ = reqwest::Client::new().post(format!("{}/clear-txt", self.mgmt)).json(&body).send().await;
        self.set.lock().unwrap().retain(|f| f != fqdn);
    }
}

/// `openssl verify` of the leaf against `root_pem`, the rest of the chain as intermediates.
fn verify(chain_pem: &str, root_pem: &str) {
    let dir = tempfile::tempdir().unwrap();
    let end = "-----END CERTIFICATE-----\n";
    let leaf_end = chain_pem.find(end).unwrap() + end.len();
    let write = |name: &str, s: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, s).unwrap();
        p
    };
    let (leaf, rest, root) = (write("leaf.pem", &chain_pem[..leaf_end]), write("rest.pem", &chain_pem[leaf_end..]), write("root.pem", root_pem));
    let mut cmd = Command::new("openssl");
    cmd.args(["verify", "-purpose", "sslserver", "-CAfile"]).arg(&root);
    if chain_pem[leaf_end..].contains("CERTIFICATE") {
        cmd.arg("-untrusted").arg(&rest);
    }
    let out = cmd.arg(&leaf).output().unwrap();
    assert!(out.status.success(), "openssl verify: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// The public key of a certificate or private key, as openssl prints it.
fn public_key(pem: &str, of_cert: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("in.pem");
    std::fs::write(&p, pem).unwrap();
    let args: &[&str] = if of_cert { &["x509", "-noout", "-pubkey", "-in"] } else { &["pkey", "-pubout", "-in"] };
    let out = Command::new("openssl").args(args).arg(&p).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn http01_issues_a_certificate_for_two_names_and_the_account_is_kept() {
    if !pebble_installed("http01_issues_a_certificate_for_two_names_and_the_account_is_kept") {
        return;
    }
    let tokens = Tokens::default();
    let pebble = Pebble::start(serve_tokens(tokens.clone()).await);
    let acme = Acme::new(pebble.settings()).await.unwrap();
    let account_file = acme.account_file().to_path_buf();
    let stored = std::fs::read(&account_file).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&account_file).unwrap().permissions().mode() & 0o777, 0o600);

    let names = vec!["www.example.test".to_string(), "example.test".to_string()];
    let started = Instant::now();
    let cert = acme.issue(&names, Challenge::Http01(&tokens)).await.unwrap();
    eprintln!("HTTP-01 issuance of 2 names took {:?}", started.elapsed());

    verify(&cert.chain_pem, &pebble.mgmt("/roots/0").await);
    assert_eq!(sorted(validity::names(&cert.chain_pem).unwrap()), sorted(names.clone()));
    assert_eq!(public_key(&cert.chain_pem, true), public_key(&cert.key_pem, false), "the key is the certificate's");
    let now = time::OffsetDateTime::now_utc();
    assert!(cert.not_before <= now + time::Duration::minutes(1) && cert.not_after > now + time::Duration::days(1), "{cert:?}");
    assert_eq!(validity::validity(&cert.chain_pem).unwrap(), (cert.not_before, cert.not_after));
    assert!(tokens.0.lock().unwrap().is_empty(), "the tokens are withdrawn after issuance");
    assert_eq!(acme.renewal_window(&cert.chain_pem).await, None, "Pebble 2.4 has no ARI");
    assert_eq!(validity::ocsp_url(&cert.chain_pem), None, "no OCSP responder configured");

    // A second start uses the stored account: same account URL, file untouched.
    let again = Acme::new(pebble.settings()).await.unwrap();
    assert_eq!(again.account_id(), acme.account_id());
    assert_eq!(again.account_file(), account_file);
    assert_eq!(std::fs::read(&account_file).unwrap(), stored);
    let cert2 = again.issue(&["example.test".to_string()], Challenge::Http01(&tokens)).await.unwrap();
    verify(&cert2.chain_pem, &pebble.mgmt("/roots/0").await);
}

#[tokio::test]
async fn dns01_issues_a_wildcard_certificate() {
    if !pebble_installed("dns01_issues_a_wildcard_certificate") {
        return;
    }
    let pebble = Pebble::start_with(serve_tokens(Tokens::default()).await, Some("http://ocsp.sites.test/"));
    let dns = ChallTestSrv { mgmt: pebble.var("CHALLTESTSRV_MGMT").to_string(), set: Mutex::new(Vec::new()) };
    let acme = Acme::new(pebble.settings()).await.unwrap();
    let names = vec!["*.sites.test".to_string(), "sites.test".to_string()];
    let started = Instant::now();
    let cert = acme.issue(&names, Challenge::Dns01(&dns)).await.unwrap();
    eprintln!("DNS-01 issuance of 2 names took {:?}", started.elapsed());
    verify(&cert.chain_pem, &pebble.mgmt("/roots/0").await);
    assert_eq!(sorted(validity::names(&cert.chain_pem).unwrap()), sorted(names));
    assert!(dns.set.lock().unwrap().is_empty(), "the TXT records are withdrawn after issuance");
    assert_eq!(validity::ocsp_url(&cert.chain_pem).as_deref(), Some("http://ocsp.sites.test/"), "nginx staples from it");
}

#[tokio::test]
async fn a_challenge_not_served_is_a_validation_error_naming_the_name() {
    if !pebble_installed("a_challenge_not_served_is_a_validation_error_naming_the_name") {
        return;
    }
    let pebble = Pebble::start(serve_tokens(Tokens::default()).await);
    let acme = Acme::new(pebble.settings()).await.unwrap();
    let started = Instant::now();
    let err = acme.issue(&["unserved.example.test".to_string()], Challenge::Http01(&Forgetful)).await.unwrap_err();
    assert!(started.elapsed() < pebble.settings().deadline, "took {:?}", started.elapsed());
    match &err {
        AcmeError::Validation { name, .. } => assert_eq!(name, "unserved.example.test"),
        other => panic!("expected a validation error, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("unserved.example.test") && !message.contains("/tmp"), "{message}");
}

#[tokio::test]
async fn an_unreachable_directory_is_unreachable() {
    // No CA at all: a loopback port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = AcmeSettings::new(format!("https://127.0.0.1:{port}/dir"), dir.path());
    settings.deadline = Duration::from_secs(10);
    let started = Instant::now();
    let err = Acme::new(settings).await.unwrap_err();
    assert!(matches!(err, AcmeError::Unreachable { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "no account stored");
}
