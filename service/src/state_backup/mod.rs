//! The service's own state in the backup repository (issue 31, item 2): its database and the
//! folder of its secrets and certificates (`{data_dir}/tls`: the local CA, the ACME account,
//! the certificates' keys, the domain verification secret), as one restic snapshot tagged
//! `kind-state`. With the repository's password, that snapshot and the sites' own backups are
//! all `vm-webhoster restore-node` needs to rebuild a node: accounts (with their password
//! hashes), sites, domains and certificates come back as they were.
//!
//! - The database is copied consistently while the service runs: SQLite with `VACUUM INTO` (a
//!   transaction-consistent copy, no lock held on the live file beyond a read), PostgreSQL with
//!   `pg_dump --format=custom` (one snapshot-isolated transaction).
//! - A state backup follows every site backup shortly (so the database that is restored knows
//!   that backup and the site's rows), and runs daily when the repository is off the node
//!   (`background::state_backup`).
//! - Restoring (`restore`) refuses to overwrite a database that holds accounts, and moves an
//!   existing `tls` folder aside rather than deleting it.
mod database;
mod error;
mod restore;
mod take;

pub use database::Database;
pub use error::StateError;
pub use restore::{restore_state, RestoredState};
pub use take::{back_up_state, latest_state_snapshot};

/// The tag of every state snapshot.
pub const STATE_TAG: &str = "kind-state";
