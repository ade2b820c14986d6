//! What can go wrong with certificates. `AcmeError` sorts the CA's answers by what the caller
//! does next (retry soon, wait, tell the owner to fix DNS...), and every message is one an
//! owner can read: no key material, no internal paths.
use std::path::PathBuf;
use std::time::Duration;

/// A certificate file, key or CA operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what} {}: {source}", .path.display())]
    Io {
        /// "creating", "writing", "reading", "removing"...
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Making a key, a certificate or a signing request failed.
    #[error("creating a key or certificate failed: {0}")]
    Key(#[source] rcgen::Error),
    /// A PEM or X.509 blob that is not a (usable) certificate.
    #[error("not a certificate: {detail}")]
    Parse {
        detail: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A certificate label outside `[a-z0-9-]{1,64}`.
    #[error("invalid certificate label {0:?} (a-z, 0-9 and '-', 1 to 64 characters)")]
    InvalidLabel(String),
    /// A name the local CA does not sign (not a DNS name or IP literal).
    #[error("invalid certificate name {0:?}")]
    InvalidName(String),
    #[error(transparent)]
    Acme(#[from] AcmeError),
}

/// An ACME issuance or account operation failed. The variant says how to back off.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// Network, TLS, directory or timeouts: retry soon.
    #[error("the certificate authority could not be reached: {detail}")]
    Unreachable {
        detail: String,
        #[source]
        source: Option<instant_acme::Error>,
    },
    /// The CA limits requests: wait (`retry_after` when it said how long).
    #[error("the certificate authority is rate limiting requests: {detail}")]
    RateLimited { retry_after: Option<Duration>, detail: String },
    /// The CA could not validate `name` (DNS wrong, challenge not served).
    #[error("the certificate authority could not validate {name}: {detail}")]
    Validation { name: String, detail: String },
    /// Any other ACME problem document (`problem_type` as the CA sent it).
    #[error("the certificate authority refused the request: {detail}")]
    Rejected { problem_type: String, detail: String },
    #[error("{detail}")]
    Other {
        detail: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl AcmeError {
    pub(crate) fn other(detail: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Other { detail: detail.into(), source: Some(source.into()) }
    }

    /// Sorts an instant-acme error. `name` is the identifier the failed step was about, if any.
    pub(crate) fn from_acme(err: instant_acme::Error, name: Option<&str>) -> Self {
        use instant_acme::Error as E;
        match err {
            E::Api(problem) => Self::from_problem(&problem, name),
            E::Timeout(_) => Self::Unreachable { detail: "no answer in time".into(), source: Some(err) },
            E::Hyper(_) | E::Http(_) | E::Other(_) => {
                Self::Unreachable { detail: "the request failed".into(), source: Some(err) }
            }
            E::InvalidUri(_) => Self::Unreachable { detail: "the directory URL is not valid".into(), source: Some(err) },
            E::Json(_) => Self::Unreachable { detail: "the answer was not an ACME document".into(), source: Some(err) },
            other => Self::Other { detail: "the ACME client failed".into(), source: Some(Box::new(other)) },
        }
    }

    /// Sorts an RFC 8555 problem document by its type.
    pub(crate) fn from_problem(problem: &instant_acme::Problem, name: Option<&str>) -> Self {
        let problem_type = problem.r#type.clone().unwrap_or_default();
        let short = problem_type.strip_prefix("urn:ietf:params:acme:error:").unwrap_or(&problem_type);
        let mut detail = problem.detail.clone().unwrap_or_else(|| short.to_string());
        for sub in &problem.subproblems {
            if let Some(d) = &sub.detail {
                detail.push_str("; ");
                detail.push_str(d);
            }
        }
        let sub_name = problem.subproblems.iter().find_map(|s| s.identifier.as_ref()).map(|i| i.authorized(false).to_string());
        match short {
            "rateLimited" => Self::RateLimited { retry_after: retry_after_in(&detail), detail },
            "connection" | "dns" | "incorrectResponse" | "unauthorized" | "tls" | "caa" => Self::Validation {
                name: sub_name.or_else(|| name.map(str::to_string)).unwrap_or_else(|| "the names".into()),
                detail,
            },
            "serverInternal" | "badNonce" => Self::Unreachable { detail, source: None },
            _ => Self::Rejected { problem_type, detail },
        }
    }
}

/// Let's Encrypt says when a rate limit ends in the detail: "..., retry after 2026-01-01
/// 00:00:00 UTC: see ...". The wait from now, when there is one.
fn retry_after_in(detail: &str) -> Option<Duration> {
    let at = detail.split("retry after ").nth(1)?;
    let stamp = at.get(..19)?;
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let when = time::PrimitiveDateTime::parse(stamp, format).ok()?.assume_utc();
    let wait = when - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(json: &str) -> instant_acme::Problem {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn problems_sort_by_what_the_caller_does_next() {
        let e = AcmeError::from_problem(
            &problem(r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many certificates, retry after 2999-01-01 00:00:00 UTC: see https://x"}"#),
            None,
        );
        match e {
            AcmeError::RateLimited { retry_after: Some(d), .. } => assert!(d > Duration::from_secs(3600)),
            other => panic!("{other:?}"),
        }
        let e = AcmeError::from_problem(&problem(r#"{"type":"urn:ietf:params:acme:error:connection","detail":"refused"}"#), Some("a.test"));
        assert!(matches!(&e, AcmeError::Validation { name, .. } if name == "a.test"), "{e:?}");
        assert_eq!(e.to_string(), "the certificate authority could not validate a.test: refused");
        let e = AcmeError::from_problem(&problem(r#"{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"no"}"#), None);
        assert!(matches!(e, AcmeError::Rejected { .. }));
        let e = AcmeError::from_problem(&problem(r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"slow down"}"#), None);
        assert!(matches!(e, AcmeError::RateLimited { retry_after: None, .. }));
    }
}
