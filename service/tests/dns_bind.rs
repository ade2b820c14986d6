//! DNS against a real BIND `named` on loopback (ops/test-dns.sh): the ownership checks a custom
//! domain's owner relies on, and the RFC 2136 updates (TSIG-signed) that publish DNS-01
//! challenges. Skipped, with the reason printed, where `named` (Debian package bind9) is not
//! installed; the timeout test needs no server and always runs.
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use service::dns::{Lookup, Ownership, Rfc2136, TsigKey, UpdateError, VerifyError};
use service::tls::Dns01Publisher;

const ZONE: &str = "$TTL 300
@     IN SOA ns.example.test. hostmaster.example.test. ( 1 3600 600 86400 60 )
      IN NS  ns.example.test.
ns    IN A   127.0.0.1
www   IN CNAME slug.sites.test.
_vmw-verify.other IN TXT \"tok\"
wrong IN CNAME other-slug.sites.test.
chain IN CNAME www.example.test.
badtxt IN A  127.0.0.1
_vmw-verify.badtxt IN TXT \"not-the-token\" \"-at-all\"
_vmw-verify.badtxt IN TXT \"0123456789012345678901234567890123456789-and-then-some\"
";

const TARGET: &str = "slug.sites.test";

/// A running named with the zone `example.test`, stopped (by PID, through the script) on drop,
/// its log printed when the test failed.
struct Named {
    dir: tempfile::TempDir,
    server: SocketAddr,
    key_path: PathBuf,
}

impl Named {
    /// None, after printing why, when named is not installed.
    fn start() -> Option<Self> {
        if !Path::new("/usr/sbin/named").exists() && Command::new("named").arg("-v").output().is_err() {
            assert!(std::env::var("REQUIRE_NAMED").is_err(), "REQUIRE_NAMED is set but named (Debian package bind9) is not installed");
            eprintln!("SKIPPED: named is not installed (Debian package bind9): no DNS server to test against");
            return None;
        }
        // Debian's AppArmor profile lets an enforced named read and write only under /var/cache/bind.
        let profiles = std::fs::read_to_string("/sys/kernel/security/apparmor/profiles").unwrap_or_default();
        let confined = profiles.lines().any(|l| l.starts_with("named (enforce)") || l.starts_with("/usr/sbin/named (enforce)"));
        let dir = if confined { tempfile::tempdir_in("/var/cache/bind") } else { tempfile::tempdir() }.unwrap();
        let zone_file = dir.path().join("example.test.zone");
        std::fs::write(&zone_file, ZONE).unwrap();
        let out = Command::new(script()).arg("start").arg(dir.path().join("named")).arg(&zone_file).output().unwrap();
        assert!(out.status.success(), "test-dns.sh start failed: {}", String::from_utf8_lossy(&out.stderr));
        let vars = String::from_utf8(out.stdout).unwrap();
        let var = |k: &str| vars.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).unwrap_or_else(|| panic!("no {k} in {vars}")).to_owned();
        Some(Self { server: var("DNS_SERVER").parse().unwrap(), key_path: var("DNS_TSIG_KEY").into(), dir })
    }

    fn key(&self) -> TsigKey {
        TsigKey::from_file(&self.key_path).unwrap()
    }

    fn updater(&self, zone: Option<&str>) -> Rfc2136 {
        Rfc2136 { server: self.server, zone: zone.map(str::to_owned), key: self.key(), timeout: Duration::from_secs(3) }
    }

    fn lookup(&self) -> Lookup {
        Lookup::new(Some(self.server)).with_timeout(Duration::from_secs(2), 1)
    }

    /// What `dig` (another client than ours) sees: the TXT values, quoted as dig prints them.
    fn dig_txt(&self, name: &str) -> Vec<String> {
        let out = Command::new("dig")
            .args([&format!("@{}", self.server.ip()), "-p", &self.server.port().to_string(), "+short", "+norecurse", name, "TXT"])
            .output()
            .expect("dig (Debian package bind9-dnsutils)");
        assert!(out.status.success(), "dig: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect()
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        let dir = self.dir.path().join("named");
        if std::thread::panicking() {
            eprintln!("--- named.log ---\n{}", std::fs::read_to_string(dir.join("named.log")).unwrap_or_default());
        }
        let _ = Command::new(script()).arg("stop").arg(&dir).status();
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/test-dns.sh")
}

#[tokio::test]
async fn ownership_is_a_direct_cname_or_the_txt_token_and_each_failure_says_what_is_wrong() {
    let Some(named) = Named::start() else { return };
    let lookup = named.lookup();

    assert_eq!(lookup.cname("www.example.test").await.unwrap().as_deref(), Some(TARGET));
    assert_eq!(lookup.cname("WWW.Example.Test.").await.unwrap().as_deref(), Some(TARGET));
    assert_eq!(lookup.cname("ns.example.test").await.unwrap(), None); // an A record, no CNAME
    assert_eq!(lookup.cname("nothing.example.test").await.unwrap(), None); // NXDOMAIN
    assert_eq!(lookup.txt("_vmw-verify.other.example.test").await.unwrap(), vec!["tok".to_owned()]);
    assert!(lookup.txt("_vmw-verify.nothing.example.test").await.unwrap().is_empty());

    let verify = |name: &'static str, token: &'static str| {
        let lookup = lookup.clone();
        async move { lookup.verify(name, &format!("{TARGET}."), &format!("_vmw-verify.{name}"), token).await }
    };
    assert_eq!(verify("www.example.test", "tok").await.unwrap(), Ownership::Cname);
    assert_eq!(verify("other.example.test", "tok").await.unwrap(), Ownership::Txt);

    match verify("nothing.example.test", "tok").await {
        Err(e @ VerifyError::NoRecords { .. }) => {
            let s = e.to_string();
            assert!(s.contains("CNAME record for nothing.example.test pointing to slug.sites.test"), "{s}");
            assert!(s.contains("TXT record at _vmw-verify.nothing.example.test"), "{s}");
        }
        other => panic!("expected NoRecords, got {other:?}"),
    }
    match verify("wrong.example.test", "tok").await {
        Err(VerifyError::WrongCname { found, expected, .. }) => assert_eq!((found.as_str(), expected.as_str()), ("other-slug.sites.test", TARGET)),
        other => panic!("expected WrongCname, got {other:?}"),
    }
    // A chain that ends at the target does not count: only a direct CNAME does.
    match verify("chain.example.test", "tok").await {
        Err(VerifyError::WrongCname { found, .. }) => assert_eq!(found, "www.example.test"),
        other => panic!("expected WrongCname for a chain, got {other:?}"),
    }
    // Another token than this user's for this name.
    assert!(matches!(verify("other.example.test", "someone-elses").await, Err(VerifyError::WrongTxt { .. })));
    match verify("badtxt.example.test", "tok").await {
        Err(e @ VerifyError::WrongTxt { .. }) => {
            let VerifyError::WrongTxt { found, .. } = &e else { unreachable!() };
            let mut found = found.clone();
            found.sort();
            assert_eq!(found[0], "\"0123456789012345678901234567890123456789\"…", "long values are shortened");
            assert_eq!(found[1], "\"not-the-token-at-all\"", "a record's strings are joined");
            assert!(e.to_string().contains("_vmw-verify.badtxt.example.test"), "{e}");
        }
        other => panic!("expected WrongTxt, got {other:?}"),
    }
}

#[tokio::test]
async fn rfc2136_adds_a_txt_that_lookups_and_dig_see_and_deletes_exactly_that_value() {
    let Some(named) = Named::start() else { return };
    let lookup = named.lookup();
    let fqdn = "_acme-challenge.example.test";

    // Zone found by asking the server for the SOA; two values side by side (a wildcard and its base).
    let found_zone = named.updater(None);
    found_zone.add_txt(fqdn, "value-one").await.unwrap();
    Dns01Publisher::publish(&found_zone, fqdn, "value-two").await.unwrap();
    let mut seen = lookup.txt(fqdn).await.unwrap();
    seen.sort();
    assert_eq!(seen, ["value-one", "value-two"]);
    let mut by_dig = named.dig_txt(fqdn);
    by_dig.sort();
    assert_eq!(by_dig, ["\"value-one\"", "\"value-two\""]);

    // Deleting removes exactly that value; deleting it again is no error.
    let given_zone = named.updater(Some("example.test."));
    given_zone.delete_txt(fqdn, "value-one").await.unwrap();
    given_zone.delete_txt(fqdn, "value-one").await.unwrap();
    assert_eq!(lookup.txt(fqdn).await.unwrap(), ["value-two"]);
    Dns01Publisher::withdraw(&given_zone, fqdn, "value-two").await;
    assert!(lookup.txt(fqdn).await.unwrap().is_empty());
    assert!(named.dig_txt(fqdn).is_empty());

    // A deeper name (the wildcard's base is a subdomain), and "check now" sees a fix at once:
    // no answer is cached from the check before.
    let name = "shop.example.test";
    assert!(matches!(lookup.verify(name, TARGET, "_vmw-verify.shop.example.test", "tok-2").await, Err(VerifyError::NoRecords { .. })));
    found_zone.add_txt("_vmw-verify.shop.example.test", "tok-2").await.unwrap();
    assert_eq!(lookup.verify(name, TARGET, "_vmw-verify.shop.example.test", "tok-2").await.unwrap(), Ownership::Txt);
}

#[tokio::test]
async fn a_wrong_key_or_a_zone_the_server_does_not_serve_is_refused() {
    let Some(named) = Named::start() else { return };
    let fqdn = "_acme-challenge.example.test";

    let mut wrong_secret = named.updater(Some("example.test"));
    wrong_secret.key.secret = b"not the secret the server has".to_vec();
    match wrong_secret.add_txt(fqdn, "v").await {
        Err(e @ UpdateError::Refused { .. }) => {
            let UpdateError::Refused { rcode, .. } = &e else { unreachable!() };
            assert!(rcode == "NOTAUTH (TSIG BADSIG)", "{rcode}");
            assert!(e.to_string().contains("TSIG key"), "{e}");
        }
        other => panic!("expected Refused, got {other:?}"),
    }

    let mut unknown_key = named.updater(Some("example.test"));
    unknown_key.key.name = "nobody-knows-me".into();
    match unknown_key.add_txt(fqdn, "v").await {
        Err(UpdateError::Refused { rcode, .. }) => assert!(rcode == "NOTAUTH (TSIG BADKEY)", "{rcode}"),
        other => panic!("expected Refused, got {other:?}"),
    }

    // A zone this server is not primary for: refused whether given or looked up.
    let elsewhere = named.updater(Some("other.test"));
    assert!(matches!(elsewhere.add_txt("_acme-challenge.other.test", "v").await, Err(UpdateError::Refused { .. })));
    let lookup_zone = named.updater(None);
    assert!(matches!(lookup_zone.add_txt("_acme-challenge.other.test", "v").await, Err(UpdateError::Refused { .. })));

    // Nothing was written by any of these.
    assert!(named.lookup().txt(fqdn).await.unwrap().is_empty());
}

/// A port nobody listens on: bound and released, so no test server is needed.
fn dead_port() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

#[tokio::test]
async fn a_server_that_does_not_answer_is_a_timeout_within_the_timeout() {
    let key = TsigKey { name: "k".into(), algorithm: service::dns::TsigAlgorithm::HmacSha256, secret: b"0123456789abcdef".to_vec() };
    let timeout = Duration::from_millis(800);
    for zone in [Some("example.test".to_owned()), None] {
        let u = Rfc2136 { server: dead_port(), zone, key: key.clone(), timeout };
        let t = Instant::now();
        let r = u.add_txt("_acme-challenge.example.test", "v").await;
        let took = t.elapsed();
        assert!(matches!(r, Err(UpdateError::Timeout { .. })), "{r:?}");
        assert!(took >= timeout && took < timeout + Duration::from_millis(500), "took {took:?}");
    }

    // A lookup that gets no answer says so (and that it is retried), not "no records".
    let lookup = Lookup::new(Some(dead_port())).with_timeout(Duration::from_millis(300), 1);
    let t = Instant::now();
    let r = lookup.verify("www.example.test", TARGET, "_vmw-verify.www.example.test", "tok").await;
    assert!(matches!(r, Err(VerifyError::Lookup { .. })), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
}
