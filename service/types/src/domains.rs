//! Custom domains of a site (issue #30): their states, how ownership was proven, where a
//! certificate came from, and what the owner sees of each.
use serde::{Deserialize, Serialize};

string_enum! {
    /// `waiting_dns` until the owner's DNS record (CNAME or TXT) is seen, `verified` (it routes
    /// over HTTP; a certificate is next), `issuing` (ACME at work), `active` (HTTPS with its
    /// certificate), `renewing` (still HTTPS with the current one), `failed` (the last check
    /// or issuance failed: `last_error` says why; it is tried again at `next_check_at`).
    pub enum DomainState {
        WaitingDns => "Waiting for DNS",
        Verified => "DNS verified",
        Issuing => "Issuing certificate",
        Active,
        Renewing => "Renewing certificate",
        Failed,
    }
}

impl DomainState {
    /// A state in which nginx routes the name to its site (its ownership is proven).
    pub fn is_routed(self) -> bool {
        matches!(self, Self::Verified | Self::Issuing | Self::Active | Self::Renewing)
    }

    /// The states nginx routes ([`Self::is_routed`]), for queries.
    pub const ROUTED: &'static [DomainState] = &[Self::Verified, Self::Issuing, Self::Active, Self::Renewing];
}

string_enum! {
    /// How the owner proved the name is theirs: a CNAME to the site's `{slug}.{base_domain}`, or
    /// a TXT record `_vmw-verify.{name}` holding the domain's token.
    pub enum DomainMethod {
        Cname => "CNAME record",
        Txt => "TXT record",
    }
}

string_enum! {
    /// Where a certificate came from: the app's local CA (loopback and IP names), an ACME CA,
    /// or files the operator provided.
    pub enum CertSource {
        LocalCa => "Local CA",
        Acme => "ACME",
        Operator,
    }
}

/// The DNS records the owner creates to prove a name is theirs (either one).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DomainVerification {
    /// `{name} CNAME {cname_target}`: the site's own name, `{slug}.{base_domain}`.
    pub cname_target: String,
    /// `{txt_name} TXT "{txt_value}"` (for a name that cannot be a CNAME, such as a zone apex).
    pub txt_name: String,
    pub txt_value: String,
}

/// A custom domain of a site, as its owner sees it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DomainView {
    pub id: i32,
    pub hosting_id: i32,
    /// The name as DNS and certificates write it: ASCII, lowercase (IDNA: `xn--bcher-kva.example`).
    pub name: String,
    /// The name as people read it (Unicode for an internationalised name: `bücher.example`).
    pub display_name: String,
    pub state: DomainState,
    /// How ownership was proven (once it was).
    pub method: Option<DomainMethod>,
    /// Why the last check or issuance failed, for the owner.
    pub last_error: Option<String>,
    /// When it is checked (or its certificate tried) next (ms since the epoch).
    pub next_check_at: Option<i64>,
    /// When its certificate expires (ms since the epoch).
    pub cert_not_after: Option<i64>,
    /// When its ownership was first proven (ms since the epoch).
    pub verified_at: Option<i64>,
    pub created_at: i64,
    pub verification: DomainVerification,
}

/// Add a custom domain to a site.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewDomain {
    /// A DNS name you control: `www.example.com`, `bücher.example` (Unicode is converted).
    #[cfg_attr(feature = "openapi", schema(example = "www.example.com"))]
    pub name: String,
}

/// The owner's HSTS switch of a site.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HstsSetting {
    pub enabled: bool,
}
