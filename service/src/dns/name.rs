//! DNS names as this module takes them: ASCII labels of letters, digits, `-` and `_` (the
//! underscore for `_acme-challenge` and `_vmw-verify`), 1 to 63 bytes each, 253 in all. Anything
//! else (spaces, escapes, `*`, non-ASCII) is refused before it reaches a DNS message. Unicode
//! names arrive here already in their IDNA (`xn--`) form: the domains module converts them.

/// A name that is not a DNS name in the sense above.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not a DNS name: {problem}")]
pub struct NameError {
    pub name: String,
    pub problem: &'static str,
}

/// Lowercases `name` and drops one trailing dot, after checking it.
pub fn normalize(name: &str) -> Result<String, NameError> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    check(trimmed).map_err(|problem| NameError { name: name.to_owned(), problem })?;
    Ok(trimmed.to_ascii_lowercase())
}

/// Whether `name` (no trailing dot) is a DNS name in the sense above.
pub fn is_dns_name(name: &str) -> bool {
    check(name).is_ok()
}

fn check(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > 253 {
        return Err("it is longer than 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("it has an empty label");
        }
        if label.len() > 63 {
            return Err("a label is longer than 63 characters");
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err("only letters, digits, `-` and `_` may appear in a label");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label starts or ends with `-`");
        }
    }
    Ok(())
}

/// The hickory form of a checked name, fully qualified.
pub(crate) fn to_hickory(name: &str) -> Result<hickory_proto::rr::Name, NameError> {
    let norm = normalize(name)?;
    let mut n = hickory_proto::rr::Name::from_ascii(&norm).map_err(|_| NameError { name: name.to_owned(), problem: "hickory could not parse it" })?;
    n.set_fqdn(true);
    Ok(n)
}

/// A hickory name as this module hands names out: lowercase, no trailing dot.
pub(crate) fn from_hickory(name: &hickory_proto::rr::Name) -> String {
    let s = name.to_ascii();
    s.strip_suffix('.').unwrap_or(&s).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_service_labels_and_drops_the_root_dot() {
        assert_eq!(normalize("_ACME-challenge.WWW.example.test.").unwrap(), "_acme-challenge.www.example.test");
        assert_eq!(normalize("xn--bcher-kva.example").unwrap(), "xn--bcher-kva.example");
    }

    #[test]
    fn refuses_what_could_smuggle_anything() {
        for bad in ["", ".", "a..b", "a b.test", "*.example.test", "a\\.b", "a;b", "-a.test", "a-.test", "bücher.de", "a\n.test", &"a".repeat(64)] {
            assert!(normalize(bad).is_err(), "{bad:?} passed");
        }
        let long = vec!["a".repeat(60); 5].join(".");
        assert!(normalize(&long).is_err());
    }
}
