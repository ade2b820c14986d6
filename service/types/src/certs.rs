//! The certificates an instance keeps (issue #30), as the admin page and
//! `GET /api/v1/admin/certificates` show them.
use serde::{Deserialize, Serialize};

use crate::CertSource;

/// One certificate: the dashboard's (`dashboard`), the sites' wildcard (`sites`), a site's own
/// (`site-{id}`, local CA) or a custom domain's (`domain-{id}`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CertificateView {
    pub label: String,
    /// The names it certifies.
    pub names: Vec<String>,
    pub source: CertSource,
    /// Validity (ms since the epoch); None: none issued yet.
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    /// Failed issuances or renewals in a row (0: the last one worked).
    pub failures: i32,
    pub last_error: Option<String>,
    /// When it is renewed or tried again (ms since the epoch).
    pub next_try_at: Option<i64>,
    /// It could not be renewed and expires within 14 days (or has expired), or was never issued.
    pub trouble: bool,
}

/// The instance's certificates, and what an operator should know about its HTTPS set-up.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TlsOverview {
    /// Troubled ones first, then by label.
    pub certificates: Vec<CertificateView>,
    /// Plain sentences: which names are served over HTTP only, and why.
    pub notes: Vec<String>,
}
