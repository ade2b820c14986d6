//! A certificate authority of this host, for the names no public CA signs: loopback names
//! ("localhost", "*.localhost") and IP literals. Made at first start (ECDSA P-256, 10 years)
//! and kept as `{dir}/root.pem` + `{dir}/root.key` (0600), so a browser that trusted it once
//! keeps trusting the certificates of later starts.
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::files::{private_dir, write_atomic};
use super::{IssuedCert, TlsError};

const ROOT_CERT: &str = "root.pem";
const ROOT_KEY: &str = "root.key";
/// The lifetime of a leaf: what public CAs give, so renewal runs as often as for theirs.
pub const LEAF_DAYS: i64 = 90;
const ROOT_DAYS: i64 = 3650;

pub struct LocalCa {
    dir: PathBuf,
    root_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn key_err(e: rcgen::Error) -> TlsError {
    TlsError::Key(e)
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Io { what: "reading", path: path.to_path_buf(), source })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "localhost".into())
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // positive
    SerialNumber::from_slice(&bytes)
}

/// A name the local CA signs, as a SAN: an IP literal ("127.0.0.1", "::1", "[::1]") or a DNS
/// name of `[a-z0-9-]` labels, the first of which may be "*".
fn san(name: &str) -> Result<SanType, TlsError> {
    let bad = || TlsError::InvalidName(name.to_string());
    let bare = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    if name.len() > 253 || name.is_empty() {
        return Err(bad());
    }
    for (i, label) in name.split('.').enumerate() {
        let ok = (i == 0 && label == "*")
            || ((1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-'));
        if !ok {
            return Err(bad());
        }
    }
    Ok(SanType::DnsName(name.to_string().try_into().map_err(|_| bad())?))
}

impl LocalCa {
    /// Loads the root kept in `dir`, or makes one (first start).
    pub fn load_or_create(dir: &Path) -> Result<Self, TlsError> {
        let (cert_path, key_path) = (dir.join(ROOT_CERT), dir.join(ROOT_KEY));
        if cert_path.exists() {
            let root_pem = read(&cert_path)?;
            let key = KeyPair::from_pem(&read(&key_path)?).map_err(key_err)?;
            let issuer = Issuer::from_ca_cert_pem(&root_pem, key).map_err(|e| TlsError::Parse {
                detail: format!("the local CA root {}", cert_path.display()),
                source: Some(Box::new(e)),
            })?;
            tracing::debug!(dir = %dir.display(), "local CA loaded");
            return Ok(Self { dir: dir.to_path_buf(), root_pem, issuer });
        }
        private_dir(dir)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(key_err)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("vm-webhoster local CA ({})", hostname()));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(ROOT_DAYS);
        params.serial_number = Some(random_serial());
        let root_pem = params.self_signed(&key).map_err(key_err)?.pem();
        // The key first: a root on disk always has its key next to it.
        write_atomic(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
        write_atomic(&cert_path, root_pem.as_bytes(), 0o644)?;
        tracing::info!(dir = %dir.display(), "local CA created");
        Ok(Self { dir: dir.to_path_buf(), root_pem, issuer: Issuer::new(params, key) })
    }

    /// The root certificate (PEM), for the owner to trust in a browser.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// Where the root certificate is.
    pub fn root_path(&self) -> PathBuf {
        self.dir.join(ROOT_CERT)
    }

    /// A server certificate for `names` (DNS names and IP literals) with a fresh ECDSA P-256
    /// key, valid [`LEAF_DAYS`] days; the chain is leaf + root.
    pub fn issue(&self, names: &[String]) -> Result<IssuedCert, TlsError> {
        if names.is_empty() {
            return Err(TlsError::InvalidName(String::new()));
        }
        let mut params = CertificateParams::default();
        params.subject_alt_names = names.iter().map(|n| san(n)).collect::<Result<_, _>>()?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names[0].trim_start_matches('[').trim_end_matches(']'));
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(LEAF_DAYS);
        params.serial_number = Some(random_serial());
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(key_err)?;
        let leaf = params.signed_by(&key, &self.issuer).map_err(key_err)?;
        tracing::info!(?names, "local CA issued a certificate");
        // rcgen encodes whole seconds: the stored validity is the certificate's own.
        let (not_before, not_after) = super::validity::validity(&leaf.pem())?;
        Ok(IssuedCert { chain_pem: format!("{}{}", leaf.pem(), self.root_pem), key_pem: key.serialize_pem(), not_before, not_after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn names_outside_dns_and_ip_are_refused() {
        for bad in ["", "a..b", "-a.b", "A.b", "a.*.b", "a b", "a/b", "**.b", "[x]"] {
            assert!(matches!(san(bad), Err(TlsError::InvalidName(_))), "{bad}");
        }
        assert!(matches!(san("[::1]").unwrap(), SanType::IpAddress(_)));
        assert!(matches!(san("*.localhost").unwrap(), SanType::DnsName(_)));
    }

    /// The leaf verifies against the root with openssl (as a browser that trusts the root
    /// would), names every name, and a second start keeps the same root.
    #[test]
    fn leaf_verifies_against_a_root_that_survives_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        let ca = LocalCa::load_or_create(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(ROOT_KEY)), 0o600);
        let names: Vec<String> = ["localhost", "*.localhost", "a.b", "127.0.0.1", "::1", "[::1]"].map(String::from).to_vec();
        let cert = ca.issue(&names).unwrap();
        assert!(!format!("{cert:?}").contains("PRIVATE"));
        let sans = super::super::validity::names(&cert.chain_pem).unwrap();
        for n in ["localhost", "*.localhost", "a.b", "127.0.0.1", "::1"] {
            assert!(sans.iter().any(|s| s == n), "{n} not in {sans:?}");
        }
        let days = (cert.not_after - cert.not_before).whole_days();
        assert!((LEAF_DAYS..=LEAF_DAYS + 1).contains(&days), "{days}");

        let ca2 = LocalCa::load_or_create(&dir).unwrap();
        assert_eq!(ca2.root_pem(), ca.root_pem());
        let cert2 = ca2.issue(&["localhost".to_string()]).unwrap();

        for (i, c) in [&cert, &cert2].into_iter().enumerate() {
            let leaf_end = c.chain_pem.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----\n".len();
            let leaf = tmp.path().join(format!("leaf{i}.pem"));
            std::fs::write(&leaf, &c.chain_pem[..leaf_end]).unwrap();
            let out = std::process::Command::new("openssl")
                .args(["verify", "-purpose", "sslserver", "-CAfile"])
                .arg(dir.join(ROOT_CERT))
                .arg(&leaf)
                .output()
                .expect("openssl");
            assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        }
        let out = std::process::Command::new("openssl").args(["x509", "-noout", "-subject", "-in"]).arg(dir.join(ROOT_CERT)).output().unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("vm-webhoster local CA ("), "{out:?}");
    }
}
