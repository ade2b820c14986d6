//! DNS: RFC 2136 dynamic updates (TSIG-signed) for ACME DNS-01 challenges, and the lookups that
//! prove a custom domain's ownership (CNAME to the site, or a TXT token).
//!
//! - [`tsig_key`]: the key an operator hands over, read from BIND's or Knot's key file.
//! - [`update`]: [`Rfc2136`], which adds and deletes TXT records on the authoritative server
//!   (the [`crate::tls::Dns01Publisher`] for wildcard certificates).
//! - [`lookup`]: [`Lookup`], CNAME and TXT lookups and [`Lookup::verify`] for custom domains.
//! - [`name`]: the DNS names these accept.
pub mod lookup;
pub mod name;
pub mod tsig_key;
pub mod update;

pub use lookup::{Lookup, LookupError, Ownership, VerifyError};
pub use name::NameError;
pub use tsig_key::{TsigAlgorithm, TsigKey, TsigKeyError};
pub use update::{Rfc2136, UpdateError};
