//! The front door's certificates: the dashboard's, the sites' `{slug}.{base_domain}` (one
//! wildcard, or one per site from the local CA), and each custom domain's; issued when missing,
//! renewed at two thirds of their lifetime on the leader, their state in the `certificates`
//! table, their expiry a metric. Where each comes from: [`sources`].
pub(crate) mod http01;
pub(crate) mod sources;
