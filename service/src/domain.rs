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
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") || local.contains(['<', '>', '"', '(', ')', ',', ';', ':', '\\', '[', ']']) {
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

const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

fn read_string(blob: &[u8], pos: &mut usize) -> Option<Vec<u8>> {
    let len = u32::from_be_bytes(blob.get(*pos..*pos + 4)?.try_into().ok()?) as usize;
    let v = blob.get(*pos + 4..*pos + 4 + len)?.to_vec();
    *pos += 4 + len;
    Some(v)
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
        let comment: String = parts.collect::<Vec<_>>().join(" ");
        if comment.chars().any(|c| c.is_control()) || comment.len() > 256 {
            return err("the key comment contains characters that are not allowed");
        }
        let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(body) else {
            return err("the key body is not valid base64: was it copied whole?");
        };
        let mut pos = 0;
        match read_string(&blob, &mut pos) {
            Some(t) if t == kind.as_bytes() => {}
            _ => return err("the key body does not match its type: was it copied whole?"),
        }
        if kind == "ssh-rsa" {
            let (Some(_e), Some(n)) = (read_string(&blob, &mut pos), read_string(&blob, &mut pos)) else {
                return err("the RSA key is truncated");
            };
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < 2048 {
                return err("RSA keys must have at least 2048 bits; ssh-ed25519 is recommended");
            }
        } else if read_string(&blob, &mut pos).is_none() {
            return err("the key is truncated");
        }
        let digest = Sha256::digest(&blob);
        let fingerprint = format!("SHA256:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest));
        let line = if comment.is_empty() { format!("{kind} {body}") } else { format!("{kind} {body} {comment}") };
        Ok(Self { line, fingerprint, kind: kind.to_owned() })
    }

    pub fn line(&self) -> &str {
        &self.line
    }
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
    pub fn kind(&self) -> &str {
        &self.kind
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
        for bad in ["ab", "a b", "1abc", "abc-", "a--b", "admin", "ab/c", "ab.c", "émile", &"a".repeat(33)] {
            assert_eq!(field_of(Username::parse(bad)), "username", "{bad}");
            assert_eq!(field_of(Slug::parse(bad)), "slug", "{bad}");
        }
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse(" Bob@Example.COM ").unwrap().as_ref(), "bob@example.com");
        for bad in ["", "bob", "bob@", "@x.org", "bob@x", "a b@x.org", "bob@x..org", "bob@-x.org", "a@b@c.org", "<a>@x.org"] {
            assert_eq!(field_of(Email::parse(bad)), "email", "{bad}");
        }
    }

    #[test]
    fn passwords_have_a_minimum_and_are_never_printed() {
        assert_eq!(field_of(Password::parse("short")), "password");
        assert_eq!(field_of(Password::parse("aaaaaaaaaa")), "password");
        let p = Password::parse("correct horse").unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }

    #[test]
    fn ssh_keys_must_decode_and_match_their_type() {
        let ed = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@laptop";
        let k = SshPublicKey::parse(ed).unwrap();
        assert_eq!(k.kind(), "ssh-ed25519");
        assert!(k.fingerprint().starts_with("SHA256:"));
        assert_eq!(k.line(), ed);
        for bad in [
            "",
            "ssh-ed25519",
            "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
            "ssh-ed25519 not*base64",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl a\nb",
        ] {
            assert_eq!(field_of(SshPublicKey::parse(bad)), "public_key", "{bad:?}");
        }
    }
}
