//! Custom domain names (issue #30): the one rule for a name a user may point at their site, and
//! the token that proves it is theirs.
//!
//! A name is what DNS and certificates write: ASCII (IDNA, UTS 46 with the STD3 rules),
//! lowercase, no trailing dot. It reaches nginx's `server_name`, a certificate order and a
//! directory name only after [`DomainName::parse`], so nothing else needs to check it again.
//!
//! Refused on purpose (besides what is not a host name at all):
//! - wildcards (`*.example.com`): one name routes to one site, and HTTP-01 cannot prove them;
//! - IP literals (`192.0.2.1`, `[::1]`, `::1`) and a last label of digits only (not a TLD);
//! - the app's own names: its public host, its base domain and every name under it (those are
//!   the sites' `{slug}.{base_domain}`, never a user's to claim);
//! - special-use names no public CA will certify and no resolver sends to us: `localhost` and
//!   `*.localhost` (RFC 6761), `*.local` (mDNS, RFC 6762), `*.invalid` (RFC 6761) and
//!   `*.arpa` (reverse zones). `.test` and `.example` are allowed: tests run ACME (pebble) and
//!   DNS (named) on loopback with them.
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::file_error::FileError;

/// The longest name DNS carries (RFC 1035, without the root's dot).
pub const MAX_NAME_LEN: usize = 253;
/// The longest label (RFC 1035).
pub const MAX_LABEL_LEN: usize = 63;
/// Where the owner puts the TXT record that proves the name is theirs: `_vmw-verify.{name}`.
pub const TXT_PREFIX: &str = "_vmw-verify";

/// Special-use suffixes refused (see the module's doc).
const SPECIAL_SUFFIXES: &[&str] = &["localhost", "local", "invalid", "arpa"];

/// A validated custom domain name: ASCII, lowercase, no trailing dot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DomainName(String);

/// Why a name was refused; each is worded for the form field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DomainNameError {
    #[error("enter a domain name")]
    Empty,
    #[error("'{0}' is not a valid domain name (letters, digits and '-' between dots)")]
    Idna(String),
    #[error("a domain name has at most {MAX_NAME_LEN} characters; this one has {0}")]
    TooLong(usize),
    #[error("each part of a domain name between dots has 1 to {MAX_LABEL_LEN} characters")]
    LabelLength,
    #[error("each part of a domain name has only letters, digits and '-'")]
    LabelCharacters,
    #[error("a part of a domain name cannot start or end with '-'")]
    Hyphen,
    #[error("wildcard names ('*') are not supported; add each name on its own")]
    Wildcard,
    #[error("a domain name needs at least two parts, like example.com")]
    SingleLabel,
    #[error("an IP address is not a domain name")]
    IpLiteral,
    #[error("the last part of a domain name cannot be only digits")]
    NumericTld,
    #[error("'{0}' is this server's own name")]
    PublicHost(String),
    #[error("names under '{0}' are the sites' own addresses; add a domain of your own")]
    BaseDomain(String),
    #[error("'{0}' is a special-use name that cannot be served publicly")]
    SpecialUse(String),
}

/// A custom domain refused by the façade: the API's codes `invalid_domain` (422),
/// `domain_taken` and `domain_limit` (409); the form's field is `name`.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error(transparent)]
    Invalid(#[from] DomainNameError),
    /// Someone (this user or another) has added the name already: one name routes to one site.
    #[error("'{0}' is already added to a site; a name can point at one site only")]
    Taken(String),
    #[error("you may add at most {0} custom domains over all your sites; remove one first")]
    Limit(u32),
}

impl DomainError {
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::Invalid(_) => "invalid_domain",
            DomainError::Taken(_) => "domain_taken",
            DomainError::Limit(_) => "domain_limit",
        }
    }
}

impl DomainName {
    /// Checks a name a user typed: trimmed, lowercased, one trailing dot dropped, converted to
    /// ASCII (IDNA), then the rules of the module's doc. `public_host` may carry a port.
    pub fn parse(input: &str, public_host: &str, base_domain: &str) -> Result<DomainName, DomainNameError> {
        let raw = input.trim().to_lowercase();
        let raw = raw.strip_suffix('.').unwrap_or(&raw);
        if raw.is_empty() {
            return Err(DomainNameError::Empty);
        }
        if raw.contains('*') {
            return Err(DomainNameError::Wildcard);
        }
        if is_ip_literal(raw) {
            return Err(DomainNameError::IpLiteral);
        }
        let ascii = idna::domain_to_ascii_strict(raw).map_err(|_| DomainNameError::Idna(shorten(raw)))?;
        Self::check_ascii(&ascii)?;
        if is_ip_literal(&ascii) {
            return Err(DomainNameError::IpLiteral);
        }
        let labels: Vec<&str> = ascii.split('.').collect();
        if labels.len() < 2 {
            return Err(DomainNameError::SingleLabel);
        }
        if labels.last().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit())) {
            return Err(DomainNameError::NumericTld);
        }
        if let Some(s) = SPECIAL_SUFFIXES.iter().find(|s| labels.last() == Some(s)) {
            return Err(DomainNameError::SpecialUse(format!(".{s}")));
        }
        let host = host_of(public_host);
        if !host.is_empty() && ascii == host {
            return Err(DomainNameError::PublicHost(ascii));
        }
        let base = base_domain.trim().trim_end_matches('.').to_ascii_lowercase();
        if !base.is_empty() && (ascii == base || ascii.ends_with(&format!(".{base}"))) {
            return Err(DomainNameError::BaseDomain(base));
        }
        Ok(DomainName(ascii))
    }

    /// The length and label rules on the ASCII form (IDNA's strict mode checks most of them;
    /// these say which one failed, and hold whatever the crate's version does).
    fn check_ascii(ascii: &str) -> Result<(), DomainNameError> {
        if ascii.len() > MAX_NAME_LEN {
            return Err(DomainNameError::TooLong(ascii.len()));
        }
        for label in ascii.split('.') {
            if label.is_empty() || label.len() > MAX_LABEL_LEN {
                return Err(DomainNameError::LabelLength);
            }
            if !label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
                return Err(DomainNameError::LabelCharacters);
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(DomainNameError::Hyphen);
            }
        }
        Ok(())
    }

    /// A name read back from the database (validated when it was stored).
    pub fn from_stored(ascii: String) -> DomainName {
        DomainName(ascii)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as people read it: Unicode for an internationalised name (`xn--bcher-kva.example`
    /// -> `bücher.example`), else the name itself.
    pub fn display(&self) -> String {
        display_name(&self.0)
    }

    /// `_vmw-verify.{name}`: where the TXT record goes.
    pub fn txt_name(&self) -> String {
        format!("{TXT_PREFIX}.{}", self.0)
    }
}

impl AsRef<str> for DomainName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DomainName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The Unicode form of an ASCII name (itself when it has no `xn--` label or does not decode).
pub fn display_name(ascii: &str) -> String {
    if !ascii.split('.').any(|l| l.starts_with("xn--")) {
        return ascii.to_owned();
    }
    match idna::domain_to_unicode(ascii) {
        (unicode, Ok(())) => unicode,
        _ => ascii.to_owned(),
    }
}

/// `public_host` without a port (`host:8080`, `[::1]:8080`), lowercase, no trailing dot.
fn host_of(public_host: &str) -> String {
    let h = public_host.trim();
    let h = if let Some(rest) = h.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else if h.matches(':').count() == 1 {
        h.split(':').next().unwrap_or("")
    } else {
        h
    };
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// An IPv4 or IPv6 address, bracketed or not.
fn is_ip_literal(s: &str) -> bool {
    let inner = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(s);
    inner.parse::<std::net::IpAddr>().is_ok()
}

/// What an error message quotes of a refused input (it may be long or odd).
fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if s.chars().count() > 64 {
        out.push('…');
    }
    out
}

/// The value of the TXT record that proves `ascii_name` is `user_id`'s: HMAC-SHA256 over both
/// under the server's secret, hex, 32 characters. Bound to this user and this name: a token
/// seen in someone's DNS proves nothing for another account or another name; and it is the
/// same on every replica and after a restart (it is not stored).
pub fn verify_token(secret: &[u8], user_id: i32, ascii_name: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(b"vmw-verify\0");
    mac.update(&user_id.to_be_bytes());
    mac.update(b"\0");
    mac.update(ascii_name.as_bytes());
    let digest = mac.finalize().into_bytes();
    hex::encode(&digest[..16])
}

/// Domain `id`'s certificate directory: `{data_dir}/tls/certs/domain-{id}/` (named after the
/// id only, never the name), holding `fullchain.pem` and `key.pem`.
pub fn domain_cert_dir(data_dir: &Path, id: i32) -> PathBuf {
    data_dir.join("tls").join("certs").join(crate::store::domain_cert_label(id))
}

/// The chain and key files in [`domain_cert_dir`].
pub fn domain_cert_files(data_dir: &Path, id: i32) -> (PathBuf, PathBuf) {
    let dir = domain_cert_dir(data_dir, id);
    (dir.join("fullchain.pem"), dir.join("key.pem"))
}

/// Where the verification secret lives: `{data_dir}/tls/verify.secret`.
pub fn secret_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tls").join("verify.secret")
}

/// The verification secret (32 random bytes), made at first use: the file is created with
/// mode 0600 (its directory 0700) and never overwritten, so every replica sharing the data
/// directory, and every restart, gives the same tokens. A file of another size is refused
/// rather than replaced (replacing it would invalidate every owner's TXT record).
pub fn load_or_create_secret(data_dir: &Path) -> Result<Vec<u8>, FileError> {
    let path = secret_path(data_dir);
    let dir = path.parent().expect("the secret has a directory");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| FileError { what: "creating", path: dir.to_owned(), source })?;
    let mut secret = [0u8; 32];
    rand::fill(&mut secret);
    match fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
        Ok(mut f) => {
            f.write_all(&secret).and_then(|()| f.sync_all()).map_err(|source| FileError { what: "writing", path: path.clone(), source })?;
            return Ok(secret.to_vec());
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => return Err(FileError { what: "creating", path, source }),
    }
    let bytes = fs::read(&path).map_err(|source| FileError { what: "reading", path: path.clone(), source })?;
    if bytes.len() != 32 {
        let source = std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} bytes, not 32", bytes.len()));
        return Err(FileError { what: "reading", path, source });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<String, DomainNameError> {
        DomainName::parse(s, "panel.example.org:8080", "sites.example.org").map(|d| d.0)
    }

    #[test]
    fn names_are_trimmed_lowercased_and_lose_one_trailing_dot() {
        assert_eq!(parse("  WWW.Example.COM.  ").unwrap(), "www.example.com");
        assert_eq!(parse("a-b.c1.example").unwrap(), "a-b.c1.example");
        assert!(parse("www.example.com..").is_err(), "only one trailing dot");
    }

    #[test]
    fn international_names_become_ascii_and_read_back_as_unicode() {
        let d = DomainName::parse("Bücher.example", "h", "b.test").unwrap();
        assert_eq!(d.as_str(), "xn--bcher-kva.example");
        assert_eq!(d.display(), "bücher.example");
        assert_eq!(parse("xn--bcher-kva.example").unwrap(), "xn--bcher-kva.example");
        assert_eq!(display_name("www.example.com"), "www.example.com");
    }

    #[test]
    fn each_rule_has_its_own_error() {
        use DomainNameError as E;
        assert_eq!(parse("   "), Err(E::Empty));
        assert_eq!(parse("."), Err(E::Empty));
        assert_eq!(parse("*.example.com"), Err(E::Wildcard));
        assert_eq!(parse("192.0.2.1"), Err(E::IpLiteral));
        assert_eq!(parse("[::1]"), Err(E::IpLiteral));
        assert_eq!(parse("2001:db8::1"), Err(E::IpLiteral));
        assert_eq!(parse("example"), Err(E::SingleLabel));
        assert_eq!(parse("host.123"), Err(E::NumericTld));
        assert_eq!(parse("localhost"), Err(E::SpecialUse(".localhost".into())));
        assert_eq!(parse("app.localhost"), Err(E::SpecialUse(".localhost".into())));
        assert_eq!(parse("printer.local"), Err(E::SpecialUse(".local".into())));
        assert_eq!(parse("x.invalid"), Err(E::SpecialUse(".invalid".into())));
        assert_eq!(parse("1.0.0.127.in-addr.arpa"), Err(E::SpecialUse(".arpa".into())));
        assert_eq!(parse("panel.example.org"), Err(E::PublicHost("panel.example.org".into())));
        assert_eq!(parse("sites.example.org"), Err(E::BaseDomain("sites.example.org".into())));
        assert_eq!(parse("blog.sites.example.org"), Err(E::BaseDomain("sites.example.org".into())));
        assert!(parse("mysites.example.org").is_ok(), "a suffix match needs the dot");
        let long_label = format!("{}.example.com", "a".repeat(64));
        assert!(matches!(parse(&long_label), Err(E::LabelLength | E::Idna(_))), "{:?}", parse(&long_label));
        let long = format!("{}.com", vec!["a".repeat(60); 5].join("."));
        assert!(matches!(parse(&long), Err(E::TooLong(_) | E::Idna(_))), "{:?}", parse(&long));
        for bad in ["-a.example.com", "a-.example.com", "a..example.com", "a_b.example.com", "a b.example.com", "a/b.example.com"] {
            assert!(parse(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn the_ascii_rules_name_what_failed() {
        use DomainNameError as E;
        assert_eq!(DomainName::check_ascii(&"a".repeat(254)), Err(E::TooLong(254)));
        assert_eq!(DomainName::check_ascii(&format!("{}.com", "a".repeat(64))), Err(E::LabelLength));
        assert_eq!(DomainName::check_ascii("a..com"), Err(E::LabelLength));
        assert_eq!(DomainName::check_ascii("a_b.com"), Err(E::LabelCharacters));
        assert_eq!(DomainName::check_ascii("-a.com"), Err(E::Hyphen));
        assert_eq!(DomainName::check_ascii("a.com"), Ok(()));
    }

    #[test]
    fn a_public_host_without_a_port_and_an_ip_host_are_understood() {
        assert_eq!(host_of("Panel.Example.org"), "panel.example.org");
        assert_eq!(host_of("panel.example.org:443"), "panel.example.org");
        assert_eq!(host_of("[::1]:8080"), "::1");
        assert_eq!(host_of("::1"), "::1");
    }

    #[test]
    fn tokens_are_bound_to_the_user_and_the_name() {
        let secret = [7u8; 32];
        let t = verify_token(&secret, 1, "www.example.com");
        assert_eq!(t.len(), 32);
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(t, verify_token(&secret, 1, "www.example.com"), "stable");
        assert_ne!(t, verify_token(&secret, 2, "www.example.com"), "another user");
        assert_ne!(t, verify_token(&secret, 1, "example.com"), "another name");
        assert_ne!(t, verify_token(&[8u8; 32], 1, "www.example.com"), "another server");
    }

    #[test]
    fn the_secret_is_made_once_private_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_secret(dir.path()).unwrap();
        assert_eq!(a.len(), 32);
        let b = load_or_create_secret(dir.path()).unwrap();
        assert_eq!(a, b, "read back, not replaced");
        let path = secret_path(dir.path());
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        fs::write(&path, b"short").unwrap();
        assert!(load_or_create_secret(dir.path()).is_err(), "a damaged secret is not silently replaced");
    }
}
