//! What the hostings of a node commit (memory and disk, by their plans) next to its limits,
//! and the node row's lock under which room is counted and taken.
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use super::Store;
use crate::db::entity::{hosting, node};
use crate::Result;
use vmw_types::{HostingState, Operation};

/// What the hostings of one node may commit (its size times the overcommit ratios), and the
/// sizes of the plans their rows name.
#[derive(Clone, Debug)]
pub struct Capacity {
    pub memory_limit_mib: u64,
    pub disk_limit_gib: u64,
    /// (plan name, memory MiB, disk GiB). A row of an unknown (removed) plan counts as the largest.
    pub plans: Vec<(String, u64, u64)>,
}

/// Memory and disk committed on a node next to its limits (the admin page).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Committed {
    pub memory_mib: u64,
    pub disk_gib: u64,
}

impl Capacity {
    /// No limit (tools and tests that insert rows directly).
    pub fn unlimited() -> Self {
        Capacity { memory_limit_mib: u64::MAX, disk_limit_gib: u64::MAX, plans: Vec::new() }
    }

    fn size_of(&self, plan: &str) -> (u64, u64) {
        self.plans.iter().find(|p| p.0 == plan).map(|p| (p.1, p.2)).unwrap_or_else(|| {
            (self.plans.iter().map(|p| p.1).max().unwrap_or(0), self.plans.iter().map(|p| p.2).max().unwrap_or(0))
        })
    }

    /// The sum of the plans of `rows` (every hosting of the node: users' and spares), each
    /// with whether it holds memory: a sleeping site (saved to disk, no QEMU) counts only its
    /// disk, until a wake takes its memory back ([`Store::begin_wake`]).
    pub fn committed<'s>(&self, rows: impl IntoIterator<Item = (&'s str, bool)>) -> Committed {
        rows.into_iter().fold(Committed::default(), |c, (p, holds_memory)| {
            let (m, d) = self.size_of(p);
            Committed { memory_mib: c.memory_mib + if holds_memory { m } else { 0 }, disk_gib: c.disk_gib + d }
        })
    }

    /// None when the memory of a VM of `plan` fits next to `now` (a wake: its disk is counted).
    pub fn memory_refusal(&self, now: Committed, plan: &str) -> Option<String> {
        let (m, _) = self.size_of(plan);
        (now.memory_mib.saturating_add(m) > self.memory_limit_mib).then(|| {
            format!(
                "this server's memory is full: {} MiB is committed to running sites and the limit is {} MiB (this site needs {m} MiB), and no other site can be put to sleep to make room; try again later",
                now.memory_mib, self.memory_limit_mib
            )
        })
    }

    /// None when a VM of `plan` fits next to `now`; else why not (for the user).
    pub fn refusal(&self, now: Committed, plan: &str) -> Option<String> {
        let (m, d) = self.size_of(plan);
        if now.memory_mib.saturating_add(m) > self.memory_limit_mib {
            return Some(format!(
                "this server is full: {} MiB of memory is committed and the limit is {} MiB (a '{plan}' site needs {m} MiB more); try a smaller plan or later",
                now.memory_mib, self.memory_limit_mib
            ));
        }
        if now.disk_gib.saturating_add(d) > self.disk_limit_gib {
            return Some(format!(
                "this server is full: {} GiB of disk is committed and the limit is {} GiB (a '{plan}' site needs {d} GiB more); try a smaller plan or later",
                now.disk_gib, self.disk_limit_gib
            ));
        }
        None
    }
}

/// Whether a hosting in `state` holds its plan's memory: all but a sleeping one (saved to disk,
/// no QEMU process) that no operation (a wake) is taking back up; a snapshot or a backup of it
/// copies files and leaves it asleep.
pub fn holds_memory(state: HostingState, op: Option<Operation>) -> bool {
    !(state == HostingState::Sleeping && matches!(op, None | Some(Operation::Snapshot | Operation::Backup)))
}

impl Store {
    /// What the node's hostings (users' and spares, in any state) commit: every one its disk,
    /// every one but the sleeping ones (no operation on them) its memory.
    pub async fn committed_in(&self, conn: &impl ConnectionTrait, capacity: &Capacity) -> Result<Committed> {
        let rows: Vec<(String, HostingState, Option<Operation>)> = hosting::Entity::find()
            .select_only()
            .column(hosting::Column::Plan)
            .column(hosting::Column::State)
            .column(hosting::Column::Operation)
            .filter(hosting::Column::NodeId.eq(self.node_id))
            .into_tuple()
            .all(conn)
            .await?;
        Ok(capacity.committed(rows.iter().map(|(p, s, op)| (p.as_str(), holds_memory(*s, *op)))))
    }

    /// Locks the node's row for the rest of `txn`: whatever commits memory or disk on the node
    /// (a create, a new spare, a wake) counts and takes its room under it, one at a time.
    pub(super) async fn lock_node(&self, txn: &impl ConnectionTrait) -> Result<()> {
        node::Entity::update_many()
            .col_expr(node::Column::CreatedAt, Expr::col(node::Column::CreatedAt).into())
            .filter(node::Column::Id.eq(self.node_id))
            .exec(txn)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sleeping_site_holds_memory_only_while_it_is_taken_back_up() {
        assert!(!holds_memory(HostingState::Sleeping, None));
        assert!(!holds_memory(HostingState::Sleeping, Some(Operation::Snapshot)), "a snapshot of it copies files");
        for op in [Operation::Wake, Operation::Start, Operation::RestoreSnapshot] {
            assert!(holds_memory(HostingState::Sleeping, Some(op)), "{op:?} brings it back up");
        }
        assert!(holds_memory(HostingState::Running, None));
    }
}
