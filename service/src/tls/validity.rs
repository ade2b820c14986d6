//! When a certificate is valid, when to renew it, where its OCSP responder is, and how long
//! to wait after failures.
use std::time::Duration;

use ::time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, Pem, X509Certificate};

use super::TlsError;

/// The DER of every certificate in a PEM chain, in order (leaf first).
pub fn chain_der(chain_pem: &str) -> Result<Vec<Vec<u8>>, TlsError> {
    let mut out = Vec::new();
    for pem in Pem::iter_from_buffer(chain_pem.as_bytes()) {
        let pem = pem.map_err(|e| TlsError::Parse { detail: "bad PEM".into(), source: Some(Box::new(e)) })?;
        if pem.label == "CERTIFICATE" {
            out.push(pem.contents);
        }
    }
    if out.is_empty() {
        return Err(TlsError::Parse { detail: "no CERTIFICATE block".into(), source: None });
    }
    Ok(out)
}

fn with_leaf<T>(chain_pem: &str, f: impl FnOnce(&X509Certificate<'_>) -> T) -> Result<T, TlsError> {
    let ders = chain_der(chain_pem)?;
    let (_, leaf) = X509Certificate::from_der(&ders[0])
        .map_err(|e| TlsError::Parse { detail: "bad X.509".into(), source: Some(Box::new(e)) })?;
    Ok(f(&leaf))
}

/// `(not_before, not_after)` of the leaf (the first certificate).
pub fn validity(chain_pem: &str) -> Result<(OffsetDateTime, OffsetDateTime), TlsError> {
    with_leaf(chain_pem, |c| (c.validity().not_before.to_datetime(), c.validity().not_after.to_datetime()))
}

/// The leaf's DNS and IP subject alternative names, as text ("a.test", "127.0.0.1").
pub fn names(chain_pem: &str) -> Result<Vec<String>, TlsError> {
    with_leaf(chain_pem, |c| {
        let mut out = Vec::new();
        if let Ok(Some(san)) = c.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    GeneralName::DNSName(d) => out.push(d.to_string()),
                    GeneralName::IPAddress(b) => match b.len() {
                        4 => out.push(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).unwrap()).to_string()),
                        16 => out.push(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).unwrap()).to_string()),
                        _ => {}
                    },
                    _ => {}
                }
            }
        }
        out
    })
}

/// The leaf's OCSP responder (Authority Information Access), which nginx staples from.
pub fn ocsp_url(chain_pem: &str) -> Option<String> {
    with_leaf(chain_pem, |c| {
        c.extensions().iter().find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityInfoAccess(aia) => aia.accessdescs.iter().find_map(|d| {
                match (d.access_method == x509_parser::oid_registry::OID_PKIX_ACCESS_DESCRIPTOR_OCSP, &d.access_location) {
                    (true, GeneralName::URI(u)) => Some(u.to_string()),
                    _ => None,
                }
            }),
            _ => None,
        })
    })
    .ok()
    .flatten()
}

/// When to renew: two thirds into the lifetime (day 60 of a 90 day certificate), as the CAs
/// recommend without ARI.
pub fn renew_at(not_before: OffsetDateTime, not_after: OffsetDateTime) -> OffsetDateTime {
    not_before + (not_after - not_before) * 2 / 3
}

/// How long to wait after `failures` failed attempts in a row: 1 min doubling, capped at 6 h,
/// plus up to 10 % jitter so many certificates failing together do not retry together.
pub fn backoff(failures: u32) -> Duration {
    let base = Duration::from_secs(60).saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let base = base.min(Duration::from_secs(6 * 3600));
    let jitter = base.mul_f64(rand::random::<f64>() * 0.1);
    base + jitter
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::time::macros::datetime;

    #[test]
    fn renewal_is_two_thirds_into_the_lifetime() {
        let nb = datetime!(2026-01-01 0:00 UTC);
        assert_eq!(renew_at(nb, nb + time::Duration::days(90)), nb + time::Duration::days(60));
    }

    #[test]
    fn backoff_doubles_from_a_minute_to_six_hours() {
        let within = |d: Duration, base: u64| d >= Duration::from_secs(base) && d <= Duration::from_secs(base + base / 10);
        assert!(within(backoff(0), 60));
        assert!(within(backoff(1), 60));
        assert!(within(backoff(2), 120));
        assert!(within(backoff(5), 960));
        assert!(within(backoff(12), 6 * 3600));
        assert!(within(backoff(u32::MAX), 6 * 3600));
    }

    #[test]
    fn text_that_is_not_a_certificate_is_a_parse_error() {
        assert!(matches!(validity("hello"), Err(TlsError::Parse { .. })));
        assert!(matches!(validity("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), Err(TlsError::Parse { .. })));
        assert_eq!(ocsp_url("hello"), None);
    }
}
