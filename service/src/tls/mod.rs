//! Certificates: a local certificate authority for loopback and IP names, ACME (RFC 8555) for
//! DNS names, and the files nginx reads. The challenges are published through the traits
//! below (HTTP-01 by the app, DNS-01 by an RFC 2136 update: `crate::dns`).
use std::time::Duration;

use time::OffsetDateTime;

/// A certificate as issued: its chain (leaf first) and private key, PEM.
#[derive(Clone)]
pub struct IssuedCert {
    pub chain_pem: String,
    pub key_pem: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never reaches a log.
        f.debug_struct("IssuedCert").field("not_before", &self.not_before).field("not_after", &self.not_after).finish_non_exhaustive()
    }
}

/// A challenge could not be published or withdrawn.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct PublishError {
    pub what: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Serves `/.well-known/acme-challenge/{token}` for every name (HTTP-01).
#[async_trait::async_trait]
pub trait Http01Publisher: Send + Sync {
    async fn publish(&self, token: &str, key_authorization: &str) -> Result<(), PublishError>;
    async fn withdraw(&self, token: &str);
}

/// Publishes `_acme-challenge.{name}` TXT records (DNS-01).
#[async_trait::async_trait]
pub trait Dns01Publisher: Send + Sync {
    /// `fqdn` is `_acme-challenge.{name}` without the trailing dot. Returns once the record is
    /// on the authoritative server.
    async fn publish(&self, fqdn: &str, value: &str) -> Result<(), PublishError>;
    async fn withdraw(&self, fqdn: &str, value: &str);
    /// How long to wait after publishing before asking the CA to look (secondary servers).
    fn propagation(&self) -> Duration {
        Duration::ZERO
    }
}

mod acme;
mod error;
mod files;
mod local_ca;
pub mod validity;

pub use acme::{Acme, AcmeSettings, Challenge, DEFAULT_DEADLINE};
pub use error::{AcmeError, TlsError};
pub use files::{CertStore, validate_label};
pub use local_ca::{LEAF_DAYS, LocalCa};
