//! Validated input types. Each has a private field and a `parse` that returns a field-specific
//! validation error, so no unchecked string reaches the database, a VM seed or an nginx file.
use base64::Engine;

use crate::{Error, Result};

/// Names that can never be a username or a site name (the rule lives in `vmw_types`).
pub use vmw_types::RESERVED_NAMES;

/// The one name rule (`vmw_types::check_name`), as a validation error of `field`.
fn name_rules(field: &'static str, what: &str, raw: &str) -> Result<String> {
    vmw_types::check_name(what, raw).map_err(|m| Error::validation(field, m))
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
/// decodes (by the `ssh-key` crate) and names the same type, an RSA modulus of 2048-16384
/// bits, ECDSA points uncompressed (as OpenSSH writes them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshPublicKey {
    line: String,
    fingerprint: String,
    kind: String,
}

/// Key types accepted (DSA, which `ssh-key` also reads, is not: OpenSSH dropped it).
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

/// Bits of a positive RFC 4251 mpint (None if it is negative or zero).
fn mpint_bits(m: &[u8]) -> Option<usize> {
    if m.first().is_some_and(|b| b & 0x80 != 0) {
        return None;
    }
    let digits: Vec<u8> = m.iter().copied().skip_while(|b| *b == 0).collect();
    let first = *digits.first()?;
    Some((digits.len() - 1) * 8 + (8 - first.leading_zeros() as usize))
}

/// What the user is told when `ssh-key` refuses a body.
fn decode_problem(e: &ssh_key::Error) -> &'static str {
    match e {
        ssh_key::Error::AlgorithmUnknown | ssh_key::Error::AlgorithmUnsupported { .. } => {
            "the key body does not match its type: was it copied whole?"
        }
        ssh_key::Error::TrailingData { .. } => "the key body has extra data after the key: was it copied whole?",
        ssh_key::Error::Ecdsa(_) => "the ECDSA key point is malformed",
        _ => "the key is malformed or truncated: was it copied whole?",
    }
}

/// The checks `ssh-key` leaves to us: key sizes and encodings OpenSSH itself would write.
fn check_key_data(key: &ssh_key::public::KeyData) -> std::result::Result<(), &'static str> {
    use ssh_key::public::{EcdsaPublicKey, KeyData};
    let uncompressed = |p: &EcdsaPublicKey| p.as_sec1_bytes().first() == Some(&0x04);
    match key {
        KeyData::Rsa(rsa) => {
            mpint_bits(rsa.e.as_bytes()).ok_or("the RSA key is malformed")?;
            let bits = mpint_bits(rsa.n.as_bytes()).ok_or("the RSA key is malformed")?;
            if bits < MIN_RSA_BITS {
                return Err("RSA keys must have at least 2048 bits; ssh-ed25519 is recommended");
            }
            if bits > MAX_RSA_BITS {
                return Err("RSA keys may have at most 16384 bits");
            }
        }
        KeyData::Ecdsa(p) if !uncompressed(p) => return Err("the ECDSA key point is malformed"),
        KeyData::SkEcdsaSha2NistP256(sk) if sk.ec_point().as_bytes().first() != Some(&0x04) => {
            return Err("the ECDSA key point is malformed");
        }
        KeyData::SkEcdsaSha2NistP256(sk) if sk.application().is_empty() => {
            return Err("the security key's application is malformed");
        }
        KeyData::SkEd25519(sk) if sk.application().is_empty() => {
            return Err("the security key's application is malformed");
        }
        _ => {}
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
        if base64::engine::general_purpose::STANDARD.decode(body).is_err() {
            return err("the key body is not valid base64: was it copied whole?");
        }
        // The comment is ours (normalised above); ssh-key reads the type and the body, checks
        // that the body names the same type and that nothing follows the key.
        let key = match ssh_key::PublicKey::from_openssh(&format!("{kind} {body}")) {
            Ok(k) => k,
            Err(e) => return err(decode_problem(&e)),
        };
        if let Err(m) = check_key_data(key.key_data()) {
            return err(m);
        }
        // What `ssh-keygen -lf` prints: SHA-256 of the decoded body, base64 without padding.
        let fingerprint = key.fingerprint(ssh_key::HashAlg::Sha256).to_string();
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

    /// Real keys from `ssh-keygen`, with what `ssh-keygen -lf` printed for them.
    const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCpkjXDSKfAruK/KCCKj6qz47AQnLmTAXsxbyGznupqzEYXqc2X+JhAh3qCJ/JFX3GLYLCqK76Crabw5bUyxKuGbUZK0MqEbmjQ8IJ/+bEQMlEW2z56OxjXBs4fotIrCDv/ukM4tkSiijV8Ae2+phreysqHWBZfXFO+GRgLm6D/s6xElbyk4ZT4yqJswRtxNORLzmfsnUxJK9Exq40Euz7Jb3e3PsMzmymy+zC7SjeuW3eJQQtOSamILpuhLZKPstPlgXtdlIUqCrmSTSFbWExDMUO+q1Z+EI0wo8kC4DRaX8Je3N3DdAivVaPcfU0WQx3V5oCLX0lC0G9HwNq5Juq7 rsa key";
    const EC384: &str = "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBCkRd3dV8vsxTtSnYDfYekBgAIF4yGSA18jXzcS24GeKQuqaMZUX1VTrZywvaASpLOkuNNFI5D7ed1X7KSSQztQkwmX0bvffYQBJ6ZuHGHH5eMg+W7Or5abKvHixusmYVw== ec";

    fn message_of(r: Result<SshPublicKey>) -> String {
        match r {
            Err(Error::Validation { field: "public_key", message }) => message,
            other => panic!("expected a public_key validation error, got {other:?}"),
        }
    }

    #[test]
    fn real_keys_parse_with_the_fingerprint_ssh_keygen_shows() {
        let ed = SshPublicKey::parse(ED).unwrap();
        assert_eq!(ed.fingerprint(), "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU");
        let rsa = SshPublicKey::parse(&format!("  {}  ", RSA.replace(" rsa key", "   rsa   key"))).unwrap();
        assert_eq!(rsa.kind(), "ssh-rsa");
        assert_eq!(rsa.fingerprint(), "SHA256:KQ0N7ial7S8++dpVT12iEwSjzVRji/Br9XOXORPGqac");
        assert_eq!(rsa.line(), RSA, "whitespace is normalised");
        assert_eq!(rsa.comment(), Some("rsa key"));
        let ec = SshPublicKey::parse(EC384).unwrap();
        assert_eq!(ec.fingerprint(), "SHA256:/P1+y2RuIsioCDS71muZ1OjrviPmWcV+sIJBrVm5aR0");
        let bare = SshPublicKey::parse(ED.trim_end_matches(" me@laptop")).unwrap();
        assert_eq!(bare.comment(), None);
        assert_eq!(bare.fingerprint(), ed.fingerprint(), "the comment is not part of the key");
    }

    #[test]
    fn refused_keys_say_what_is_wrong() {
        assert!(message_of(SshPublicKey::parse("hello world, this is not a key")).contains("unsupported key type"));
        assert!(message_of(SshPublicKey::parse("ssh-ed25519 AAAA%%%%")).contains("not valid base64"));
        // A body of one type behind another type's name.
        let ed_body = ED.split(' ').nth(1).unwrap();
        assert!(message_of(SshPublicKey::parse(&format!("ssh-rsa {ed_body}"))).contains("does not match its type"));
        let ec_body = EC384.split(' ').nth(1).unwrap();
        assert!(message_of(SshPublicKey::parse(&format!("ecdsa-sha2-nistp256 {ec_body}"))).contains("does not match its type"));
        // Cut short (still valid base64).
        let rsa_body = RSA.split(' ').nth(1).unwrap();
        assert!(message_of(SshPublicKey::parse(&format!("ssh-rsa {}", &rsa_body[..200]))).contains("copied whole"));
        assert!(message_of(SshPublicKey::parse(&format!("{RSA} {ED}"))).contains("one key at a time"));
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
            // A compressed point (OpenSSH writes them uncompressed).
            ("ecdsa-sha2-nistp256", b64(&[b"ecdsa-sha2-nistp256", b"nistp256", &[&[2u8][..], &[9u8; 32]].concat()])),
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
