//! The tables, one file per resource, all `impl Store`: the only code that reads or writes
//! them (omicron's datastore shape). The hosting side's: `hostings` ([`hostings`], its
//! compare-and-set [`transitions`] and [`leases`], the node's [`capacity`]), `port_leases`
//! ([`ports`]), `snapshots` ([`snapshots`]), `nodes` ([`nodes`]) and `hosting_events`
//! ([`events`]). The accounts' side: [`users`], [`tokens`], [`ssh_keys`], [`activity`],
//! [`sessions`] and [`login_sessions`] (free functions over a connection: accounts are not a node's).
//!
//! Every change of a hosting is a typed transition, and every transition that starts work is a
//! compare-and-set `UPDATE ... WHERE id = ? AND <expected state> AND <lease free>`, so one
//! operation at a time holds across processes (omicron's datastore shape: a generation check in
//! the WHERE clause, `rows_affected` tells who won). Whoever wins holds a [`Lease`]: a token and
//! an expiry in the row, renewed while the work runs. Writes made under a lease name the token,
//! so a holder that lost its lease (it stalled past the expiry and someone else took over)
//! cannot write any more. A crashed process's leases simply expire; a restarted instance also
//! treats its own previous boot's leases as dead at once.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sea_orm::DatabaseConnection;

use crate::{Error, Result};

pub mod acme_challenges;
pub mod activity;
pub mod backups;
pub mod backup_schedules;
pub mod capacity;
pub mod certificates;
pub mod domains;
pub mod events;
pub mod hostings;
pub mod leases;
pub mod login_sessions;
pub mod nodes;
pub mod ports;
pub mod sessions;
pub mod snapshots;
pub mod state_backups;
pub mod ssh_keys;
pub mod tokens;
pub mod transitions;
pub mod users;

pub use backups::{BackupDone, BackupRow};
pub use backup_schedules::ScheduleRow;
pub use capacity::{Capacity, Committed, holds_memory};
pub use certificates::{CertificateRow, domain_cert_label};
pub use domains::DomainRow;
pub use hostings::{HostingRow, NewHosting};
pub use leases::{LEASE_TTL, Lease};
pub use nodes::NodeRow;
pub use snapshots::SnapshotRow;
pub use transitions::{Refusal, WakeRefusal};

/// The owner of the hosting rows of one node, for one app instance.
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
    node_id: i32,
}

/// Shared by the stores of every node of one app instance (one boot, one token counter: a
/// lease of this boot is never taken for a dead one's).
struct StoreInner {
    db: DatabaseConnection,
    /// A stable name of this app instance (replicas need distinct ones).
    instance: String,
    /// This process's start: `{instance}:{boot}:` prefixes every lease token it hands out.
    boot: String,
    next: AtomicU64,
}

impl Store {
    pub fn new(db: DatabaseConnection, node_id: i32, instance: &str) -> Result<Self> {
        if instance.is_empty()
            || instance.len() > 64
            || !instance.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Err(Error::validation("instance_id", format!("instance id '{instance}' must be 1-64 of a-z, 0-9, '-' and '.'")));
        }
        Ok(Self {
            inner: Arc::new(StoreInner {
                db,
                instance: instance.to_owned(),
                boot: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
                next: AtomicU64::new(1),
            }),
            node_id,
        })
    }

    /// The store of another node, of the same app instance (same boot: its leases are ours).
    pub fn for_node(&self, node_id: i32) -> Store {
        Store { inner: self.inner.clone(), node_id }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// This replica's name in leases and notes: `{instance}:{boot}`.
    pub fn replica(&self) -> String {
        format!("{}:{}", self.inner.instance, self.inner.boot)
    }

    fn token(&self) -> String {
        let n = self.inner.next.fetch_add(1, Ordering::Relaxed);
        format!("{}:{}:{n}", self.inner.instance, self.inner.boot)
    }
}
