//! Validated input types. Each has a private field and a `parse` that returns a field-specific
//! validation error, so no unchecked string reaches the database, a VM seed or an nginx file.
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Names that can never be a username or a site name: they are (or may become) paths of the
/// app itself, or would be confusing.
pub const RESERVED: &[&str] = &[
    "admin", "administrator", "api", "app", "assets", "auth", "dashboard", "docs", "favicon", "favicon-ico",
    "health", "host", "hostings", "login", "logout", "new", "nginx", "openapi", "pkg", "public", "root",
    "settings", "signup", "static", "status", "system", "users", "www", "vmw", "webhoster", "hosting", "me",
];

fn name_rules(field: &'static str, what: &str, raw: &str) -> Result<String> {
    let s = raw.trim().to_ascii_lowercase();
    let err = |m: String| Err(Error::validation(field, m));
    if s.len() < 3 || s.len() > 32 {
        return err(format!("{what} must be 3 to 32 characters long"));
    }
    if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return err(format!("{what} may contain only letters a-z, digits and dashes"));
    }
    if !s.as_bytes()[0].is_ascii_lowercase() {
        return err(format!("{what} must start with a letter"));
    }
    if s.ends_with('-') || s.contains("--") {
        return err(format!("{what} cannot end with a dash or contain two dashes in a row"));
    }
    if RESERVED.contains(&s.as_str()) {
        return err(format!("'{s}' is reserved; choose another {what}"));
    }
    Ok(s)
}

macro_rules! string_newtype {
    ($t:ident) => {
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl $t {
            pub fn into_inner(self) -> String {
                self.0
            }
        }
    };
}

/// A login name: 3-32 of a-z, 0-9 and '-', starting with a letter (so it is also a valid site
/// name, and never a number that could be mistaken for a user id in `/{user_id}/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);
string_newtype!(Username);
impl Username {
    pub fn parse(raw: &str) -> Result<Self> {
        name_rules("username", "a username", raw).map(Self)
    }
}

/// A site name, used in `/{slug}/` and `{slug}.{base_domain}`: the same rules as usernames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slug(String);
string_newtype!(Slug);
impl Slug {
    pub fn parse(raw: &str) -> Result<Self> {
        name_rules("slug", "a site name", raw).map(Self)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);
string_newtype!(Email);
impl Email {
    pub fn parse(raw: &str) -> Result<Self> {
        let s = raw.trim().to_ascii_lowercase();
        let err = || Err(Error::validation("email", "enter a valid email address, like name@example.com"));
        if s.is_empty() || s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return err();
        }
        let Some((local, domain)) = s.split_once('@') else { return err() };
        if local.is_empty() || local.len() > 64 || domain.contains('@') {
            return err();
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if labels.len() < 2 || !labels.iter().all(label_ok) {
            return err();
        }
        if local.starts_with('.')
            || local.ends_with('.')
            || local.contains("..")
            || !local.bytes().all(|b| b.is_ascii_graphic())
            || local.contains(['<', '>', '"', '(', ')', ',', ';', ':', '\\', '[', ']'])
        {
            return err();
        }
        if labels.last().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit())) {
            return err();
        }
        Ok(Self(s))
    }
}

/// A password meeting the rules (8-128 characters, not one repeated character). Debug is
/// redacted so it never lands in a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);
impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}
impl Password {
    pub fn parse(raw: &str) -> Result<Self> {
        Self::parse_field("password", raw)
    }

    pub fn parse_field(field: &'static str, raw: &str) -> Result<Self> {
        let n = raw.chars().count();
        if n < 8 {
            return Err(Error::validation(field, "the password must be at least 8 characters long"));
        }
        if n > 128 {
            return Err(Error::validation(field, "the password must be at most 128 characters long"));
        }
        let first = raw.chars().next().unwrap();
        if raw.chars().all(|c| c == first) {
            return Err(Error::validation(field, "the password cannot be one character repeated"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// One OpenSSH public key line (`type base64 [comment]`), checked: a known type, a body that
/// decodes and names the same type, an RSA modulus of at least 2048 bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshPublicKey {
    line: String,
    fingerprint: String,
    kind: String,
}

/// Key types accepted, each with the fields its body holds after the type name.
const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 16384;

/// Reads the SSH wire-format strings of a key body (RFC 4251 `string`s: a big-endian u32
/// length, then the bytes).
struct Wire<'a> {
    rest: &'a [u8],
}

impl<'a> Wire<'a> {
    fn string(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(self.rest.get(..4)?.try_into().ok()?) as usize;
        let v = self.rest.get(4..4usize.checked_add(len)?)?;
        self.rest = &self.rest[4 + len..];
        Some(v)
    }
}

/// Bits of a positive RFC 4251 mpint (None if it is negative or zero).
fn mpint_bits(m: &[u8]) -> Option<usize> {
    if m.first().is_some_and(|b| b & 0x80 != 0) {
        return None;
    }
    let digits: Vec<u8> = m.iter().copied().skip_while(|b| *b == 0).collect();
    let first = *digits.first()?;
    Some((digits.len() - 1) * 8 + (8 - first.leading_zeros() as usize))
}

/// Checks the body after the type name; the message says what is wrong.
fn check_key_body(kind: &str, w: &mut Wire) -> std::result::Result<(), &'static str> {
    const TRUNCATED: &str = "the key is truncated: was it copied whole?";
    match kind {
        "ssh-ed25519" | "sk-ssh-ed25519@openssh.com" => {
            if w.string().ok_or(TRUNCATED)?.len() != 32 {
                return Err("the ed25519 key has the wrong length");
            }
        }
        "ssh-rsa" => {
            let e = w.string().ok_or(TRUNCATED)?;
            let n = w.string().ok_or(TRUNCATED)?;
            mpint_bits(e).ok_or("the RSA key is malformed")?;
            let bits = mpint_bits(n).ok_or("the RSA key is malformed")?;
            if bits < MIN_RSA_BITS {
                return Err("RSA keys must have at least 2048 bits; ssh-ed25519 is recommended");
            }
            if bits > MAX_RSA_BITS {
                return Err("RSA keys may have at most 16384 bits");
            }
        }
        _ => {
            // ECDSA (plain or security key): the curve name, then an uncompressed point.
            let curve = kind.trim_start_matches("sk-").trim_start_matches("ecdsa-sha2-");
            let curve = curve.trim_end_matches("@openssh.com");
            let point_len = match curve {
                "nistp256" => 65,
                "nistp384" => 97,
                "nistp521" => 133,
                _ => return Err("unsupported key type"),
            };
            if w.string().ok_or(TRUNCATED)? != curve.as_bytes() {
                return Err("the key body names another curve than its type");
            }
            let q = w.string().ok_or(TRUNCATED)?;
            if q.len() != point_len || q[0] != 0x04 {
                return Err("the ECDSA key point is malformed");
            }
        }
    }
    if kind.starts_with("sk-") {
        // Security keys also carry the application they are bound to ("ssh:" by default).
        let app = w.string().ok_or(TRUNCATED)?;
        if app.is_empty() || std::str::from_utf8(app).is_err() {
            return Err("the security key's application is malformed");
        }
    }
    if !w.rest.is_empty() {
        return Err("the key body has extra data after the key: was it copied whole?");
    }
    Ok(())
}

impl SshPublicKey {
    pub fn parse(raw: &str) -> Result<Self> {
        let err = |m: &str| Err(Error::validation("public_key", m.to_owned()));
        let raw = raw.trim();
        if raw.is_empty() {
            return err("paste an OpenSSH public key (the contents of ~/.ssh/id_ed25519.pub)");
        }
        if raw.len() > 16 * 1024 || raw.contains('\n') || raw.contains('\r') {
            return err("paste exactly one public key line");
        }
        if raw.contains("PRIVATE KEY") {
            return err("that is a private key: paste the public key (the .pub file) and keep the private key secret");
        }
        let mut parts = raw.split_whitespace();
        let (Some(kind), Some(body)) = (parts.next(), parts.next()) else {
            return err("a public key looks like 'ssh-ed25519 AAAA... comment'");
        };
        if !KEY_TYPES.contains(&kind) {
            return err("unsupported key type; use ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa");
        }
        let words: Vec<&str> = parts.collect();
        if words.iter().any(|w| KEY_TYPES.contains(w)) {
            return err("paste one key at a time: this line holds more than one key");
        }
        let comment = words.join(" ");
        if comment.chars().any(char::is_control) || comment.len() > 256 {
            return err("the key comment contains characters that are not allowed");
        }
        let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(body) else {
            return err("the key body is not valid base64: was it copied whole?");
        };
        let mut wire = Wire { rest: &blob };
        if wire.string() != Some(kind.as_bytes()) {
            return err("the key body does not match its type: was it copied whole?");
        }
        if let Err(m) = check_key_body(kind, &mut wire) {
            return err(m);
        }
        // What `ssh-keygen -lf` prints: SHA-256 of the decoded body, base64 without padding.
        let digest = Sha256::digest(&blob);
        let fingerprint = format!("SHA256:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest));
        let line = if comment.is_empty() { format!("{kind} {body}") } else { format!("{kind} {body} {comment}") };
        Ok(Self { line, fingerprint, kind: kind.to_owned() })
    }

    /// The normalised line: `type base64 [comment]`, single spaces, no line breaks.
    pub fn line(&self) -> &str {
        &self.line
    }
    /// `SHA256:...`, exactly as `ssh-keygen -lf` shows it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
    pub fn kind(&self) -> &str {
        &self.kind
    }
    pub fn comment(&self) -> Option<&str> {
        self.line.splitn(3, ' ').nth(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(r: Result<impl std::fmt::Debug>) -> &'static str {
        match r {
            Err(Error::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn usernames_and_slugs_are_safe_path_segments() {
        assert_eq!(Username::parse("  Alice-2 ").unwrap().as_ref(), "alice-2");
        assert_eq!(Slug::parse("my-site-1").unwrap().as_ref(), "my-site-1");
        assert_eq!(Username::parse("abc").unwrap().as_ref(), "abc");
        assert_eq!(Username::parse(&"a".repeat(32)).unwrap().as_ref().len(), 32);
        for bad in ["ab", "a b", "1abc", "123", "-abc", "abc-", "a--b", "ab/c", "ab.c", "ab_c", "émile", "../x", &"a".repeat(33)] {
            assert_eq!(field_of(Username::parse(bad)), "username", "{bad}");
            assert_eq!(field_of(Slug::parse(bad)), "slug", "{bad}");
        }
    }

    #[test]
    fn reserved_names_are_refused_in_any_case() {
        for name in [
            "admin", "api", "login", "logout", "signup", "auth", "settings", "dashboard", "static", "pkg", "assets",
            "public", "health", "www", "root", "nginx", "system", "hostings", "host", "users", "docs", "openapi",
        ] {
            assert_eq!(field_of(Slug::parse(name)), "slug", "{name}");
            assert_eq!(field_of(Username::parse(&name.to_uppercase())), "username", "{name}");
        }
        // favicon.ico can never be a name (dots are not allowed).
        assert_eq!(field_of(Slug::parse("favicon.ico")), "slug");
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse(" Bob@Example.COM ").unwrap().as_ref(), "bob@example.com");
        assert_eq!(Email::parse("first.last+tag@mail.example.org").unwrap().as_ref(), "first.last+tag@mail.example.org");
        for bad in [
            "",
            "bob",
            "bob@",
            "@x.org",
            "bob@x",
            "a b@x.org",
            "bob@x..org",
            "bob@-x.org",
            "a@b@c.org",
            "<a>@x.org",
            ".bob@x.org",
            "bo..b@x.org",
            "bob@1.2.3.4",
            "bób@x.org",
            "bob@x.o\nrg",
            "bob\u{0}@x.org",
        ] {
            assert_eq!(field_of(Email::parse(bad)), "email", "{bad:?}");
        }
        let long = format!("{}@{}.org", "a".repeat(64), "b".repeat(190));
        assert_eq!(field_of(Email::parse(&long)), "email", "over 254 characters");
        assert_eq!(field_of(Email::parse(&format!("{}@x.org", "a".repeat(65)))), "email", "local part over 64");
    }

    #[test]
    fn passwords_have_a_minimum_and_are_never_printed() {
        assert_eq!(field_of(Password::parse("short")), "password");
        assert_eq!(field_of(Password::parse("aaaaaaaaaa")), "password");
        assert_eq!(field_of(Password::parse(&"ab".repeat(65))), "password");
        assert_eq!(field_of(Password::parse_field("new_password", "x")), "new_password");
        assert!(Password::parse(&"ab".repeat(64)).is_ok(), "128 characters is allowed");
        assert!(Password::parse("pässwörd").is_ok(), "8 characters, not 8 bytes");
        let p = Password::parse("correct horse").unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }

    fn b64(parts: &[&[u8]]) -> String {
        let mut blob = Vec::new();
        for p in parts {
            blob.extend_from_slice(&(p.len() as u32).to_be_bytes());
            blob.extend_from_slice(p);
        }
        base64::engine::general_purpose::STANDARD.encode(blob)
    }

    const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@laptop";

    #[test]
    fn ssh_keys_must_decode_and_match_their_type() {
        let k = SshPublicKey::parse(ED).unwrap();
        assert_eq!(k.kind(), "ssh-ed25519");
        assert!(k.fingerprint().starts_with("SHA256:"));
        assert_eq!(k.line(), ED);
        assert_eq!(k.comment(), Some("me@laptop"));
        let rsa_body = b64(&[b"ssh-rsa", &[1, 0, 1], &[0x00, 0xc1]]);
        for bad in [
            "",
            "ssh-ed25519",
            "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
            "ssh-ed25519 not*base64",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl a\nb",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl a\u{7}b",
            // authorized_keys options are not a key type (they could widen what the key may do).
            "command=\"sh\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
            &format!("ssh-rsa {rsa_body}"),
        ] {
            assert_eq!(field_of(SshPublicKey::parse(bad)), "public_key", "{bad:?}");
        }
    }

    #[test]
    fn ssh_key_bodies_are_checked_field_by_field() {
        let pk = [7u8; 32];
        let ok = |kind: &str, body: String| SshPublicKey::parse(&format!("{kind} {body}"));
        assert!(ok("ssh-ed25519", b64(&[b"ssh-ed25519", &pk])).is_ok());
        // Security keys carry an application after the key.
        let sk = ok("sk-ssh-ed25519@openssh.com", b64(&[b"sk-ssh-ed25519@openssh.com", &pk, b"ssh:"])).unwrap();
        assert_eq!(sk.kind(), "sk-ssh-ed25519@openssh.com");
        let mut p256 = vec![4u8];
        p256.extend([9u8; 64]);
        assert!(ok("ecdsa-sha2-nistp256", b64(&[b"ecdsa-sha2-nistp256", b"nistp256", &p256])).is_ok());
        assert!(ok("sk-ecdsa-sha2-nistp256@openssh.com", b64(&[b"sk-ecdsa-sha2-nistp256@openssh.com", b"nistp256", &p256, b"ssh:"])).is_ok());

        let bad: Vec<(&str, String)> = vec![
            ("ssh-ed25519", b64(&[b"ssh-ed25519", &pk[..31]])),
            ("ssh-ed25519", b64(&[b"ssh-ed25519", &pk, b"trailing"])),
            ("sk-ssh-ed25519@openssh.com", b64(&[b"sk-ssh-ed25519@openssh.com", &pk])),
            ("ecdsa-sha2-nistp256", b64(&[b"ecdsa-sha2-nistp256", b"nistp384", &p256])),
            ("ecdsa-sha2-nistp384", b64(&[b"ecdsa-sha2-nistp384", b"nistp384", &p256])),
            ("ecdsa-sha2-nistp256", b64(&[b"ecdsa-sha2-nistp256", b"nistp256", &p256[1..]])),
            // A length prefix that points past the end.
            ("ssh-ed25519", base64::engine::general_purpose::STANDARD.encode(b"\0\0\0\x0bssh-ed25519\xff\xff\xff\xff")),
        ];
        for (kind, body) in bad {
            assert_eq!(field_of(ok(kind, body.clone())), "public_key", "{kind} {body}");
        }
    }

    #[test]
    fn rsa_keys_are_measured_in_bits_not_bytes() {
        let key = |n: &[u8]| SshPublicKey::parse(&format!("ssh-rsa {}", b64(&[b"ssh-rsa", &[1, 0, 1], n])));
        // 2048 bits: 256 bytes with the top bit set, so the mpint carries a leading zero.
        let mut n2048 = vec![0u8, 0x80];
        n2048.extend([0x11u8; 255]);
        assert!(key(&n2048).is_ok());
        // 2047 bits also fills 256 bytes, but is too short.
        let mut n2047 = vec![0x40u8];
        n2047.extend([0x11u8; 255]);
        assert_eq!(field_of(key(&n2047)), "public_key");
        // A negative modulus is malformed.
        let mut neg = vec![0x80u8];
        neg.extend([0x11u8; 255]);
        assert_eq!(field_of(key(&neg)), "public_key");
        assert_eq!(mpint_bits(&[0x00, 0x80]), Some(8));
        assert_eq!(mpint_bits(&[0x01, 0x00]), Some(9));
        assert_eq!(mpint_bits(&[0x00]), None);
    }
}
