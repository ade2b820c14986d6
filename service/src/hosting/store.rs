//! The hosting rows: the only code that reads or writes the `hostings` table.
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};

use super::{HostingState, Operation};
use vmw_types::{CreateKind, SpareTier};
use crate::accounts::Actor;
use crate::db::entity::{hosting, node, user};
use crate::db::{is_unique_violation, now_ms};
use crate::{Error, Result};

pub use hosting::Model as HostingRow;

/// Locks the user's row for the rest of `txn` (per-user limits count under it). The first
/// statement writes: SQLite takes its write lock now (no read-then-write upgrade to fail),
/// PostgreSQL locks the row until commit.
pub(crate) async fn lock_user(txn: &impl ConnectionTrait, user_id: i32) -> Result<()> {
    user::Entity::update_many()
        .col_expr(user::Column::UpdatedAt, Expr::col(user::Column::UpdatedAt).into())
        .filter(user::Column::Id.eq(user_id))
        .exec(txn)
        .await?;
    Ok(())
}

/// How long a lease lasts without renewal, and how often a holder renews it.
pub const LEASE_TTL: Duration = Duration::from_secs(30);
const RENEW_EVERY: Duration = Duration::from_secs(10);

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

/// What a new user hosting starts with.
pub struct NewHosting<'a> {
    pub user_id: i32,
    pub slug: &'a str,
    pub plan: &'a str,
    pub keys_json: &'a str,
    /// Refused with `QuotaExceeded` when the user already has this many.
    pub max_per_user: u32,
    /// How its VM will be made when no spare is claimed (a clone or a cold boot).
    pub fresh: CreateKind,
    /// The node's limits and the size of every plan: a new VM (not a claimed spare, which is
    /// already counted) must fit, or the create is refused with `NodeFull`.
    pub capacity: &'a Capacity,
}

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
/// no QEMU process) that no operation (a wake) is taking back up; a snapshot of it copies files
/// and leaves it asleep.
pub fn holds_memory(state: HostingState, op: Option<Operation>) -> bool {
    !(state == HostingState::Sleeping && matches!(op, None | Some(Operation::Snapshot)))
}

/// Why a wake could not begin.
#[derive(Debug)]
pub enum WakeRefusal {
    /// Its memory does not fit on the node: why, and the running site to put to sleep first.
    NoRoom { why: String, victim: Option<i32> },
    Other(Refusal),
}

/// Why an operation could not begin.
#[derive(Debug)]
pub enum Refusal {
    /// Another operation runs on it.
    Busy(HostingRow),
    /// Its state does not allow the operation.
    WrongState(HostingRow),
    /// No operation runs, but someone holds a lease for a moment (a reconciliation look).
    Looked(HostingRow),
    Gone,
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

    /// A lease that nobody holds: none, expired, or left by an earlier boot of this instance.
    fn lease_free(&self, now: i64) -> Condition {
        let i = &self.inner;
        Condition::any()
            .add(hosting::Column::LeaseOwner.is_null())
            .add(hosting::Column::LeaseUntil.lt(now))
            .add(
                Condition::all()
                    .add(hosting::Column::LeaseOwner.like(format!("{}:%", i.instance)))
                    .add(hosting::Column::LeaseOwner.not_like(format!("{}:{}:%", i.instance, i.boot))),
            )
    }

    fn lease(&self, id: i32, token: String) -> Lease {
        Lease::new(self.clone(), id, token)
    }

    // ---- reads ----------------------------------------------------------------------------

    pub async fn get(&self, id: i32) -> Result<Option<HostingRow>> {
        Ok(hosting::Entity::find_by_id(id).one(self.db()).await?)
    }

    pub async fn require(&self, id: i32) -> Result<HostingRow> {
        self.get(id).await?.ok_or(Error::NotFound("hosting"))
    }

    /// A hosting the actor may see and act on (owner or admin), or NotFound: others' hostings
    /// and spares do not exist for them.
    pub async fn owned(&self, actor: &Actor, id: i32) -> Result<HostingRow> {
        let row = self.require(id).await?;
        match row.user_id {
            Some(owner) if owner == actor.user_id || actor.is_admin => Ok(row),
            _ => Err(Error::NotFound("hosting")),
        }
    }

    /// The user's hostings, oldest first.
    pub async fn list_for_user(&self, user_id: i32) -> Result<Vec<HostingRow>> {
        Ok(hosting::Entity::find()
            .filter(hosting::Column::UserId.eq(user_id))
            .order_by_asc(hosting::Column::Id)
            .all(self.db())
            .await?)
    }

    pub async fn first_for_user(&self, user_id: i32) -> Result<Option<HostingRow>> {
        Ok(hosting::Entity::find()
            .filter(hosting::Column::UserId.eq(user_id))
            .order_by_asc(hosting::Column::Id)
            .one(self.db())
            .await?)
    }

    /// The user's oldest hosting in one of `states` (who serves `/{user_id}/`).
    pub async fn first_for_user_in(&self, user_id: i32, states: &[HostingState]) -> Result<Option<HostingRow>> {
        Ok(hosting::Entity::find()
            .filter(hosting::Column::UserId.eq(user_id))
            .filter(hosting::Column::State.is_in(states.iter().copied()))
            .order_by_asc(hosting::Column::Id)
            .one(self.db())
            .await?)
    }

    /// Every user hosting with its owner's username (spares are not anyone's).
    pub async fn list_all_with_owner(&self) -> Result<Vec<(HostingRow, String)>> {
        let rows = hosting::Entity::find()
            .filter(hosting::Column::UserId.is_not_null())
            .order_by_asc(hosting::Column::Id)
            .find_also_related(user::Entity)
            .all(self.db())
            .await?;
        Ok(rows.into_iter().map(|(h, u)| (h, u.map(|u| u.username).unwrap_or_default())).collect())
    }

    pub async fn count_for_user(conn: &impl ConnectionTrait, user_id: i32) -> Result<u64> {
        Ok(hosting::Entity::find().filter(hosting::Column::UserId.eq(user_id)).count(conn).await?)
    }

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
    async fn lock_node(&self, txn: &impl ConnectionTrait) -> Result<()> {
        node::Entity::update_many()
            .col_expr(node::Column::CreatedAt, Expr::col(node::Column::CreatedAt).into())
            .filter(node::Column::Id.eq(self.node_id))
            .exec(txn)
            .await?;
        Ok(())
    }

    /// Begins a wake of a sleeping site if its memory fits on the node (under the node's lock:
    /// two wakes cannot both take the last room). When it does not: `NoRoom` with the reason and
    /// the running site to put to sleep first, if there is one (users' sites only, not always
    /// on, no operation running: the one whose last visit is oldest).
    pub async fn begin_wake(&self, id: i32, capacity: &Capacity) -> Result<std::result::Result<(HostingRow, Lease), WakeRefusal>> {
        let txn = self.db().begin().await?;
        self.lock_node(&txn).await?;
        let Some(row) = hosting::Entity::find_by_id(id).one(&txn).await? else {
            return Ok(Err(WakeRefusal::Other(Refusal::Gone)));
        };
        if row.state == HostingState::Sleeping && row.operation.is_none() {
            let committed = self.committed_in(&txn, capacity).await?;
            if let Some(why) = capacity.memory_refusal(committed, &row.plan) {
                let victim = self
                    .on_node()
                    .filter(hosting::Column::State.eq(HostingState::Running))
                    .filter(hosting::Column::Operation.is_null())
                    .filter(hosting::Column::UserId.is_not_null())
                    .filter(hosting::Column::AlwaysOn.eq(false))
                    .filter(hosting::Column::Id.ne(id))
                    .filter(self.lease_free(now_ms()))
                    .order_by_asc(Expr::cust("COALESCE(last_active_at, running_since, 0)"))
                    .order_by_asc(hosting::Column::Id)
                    .one(&txn)
                    .await?;
                return Ok(Err(WakeRefusal::NoRoom { why, victim: victim.map(|v| v.id) }));
            }
        }
        let begun = self.begin_in(&txn, id, Operation::Wake).await?;
        txn.commit().await?;
        Ok(begun.map_err(WakeRefusal::Other))
    }

    pub async fn slug_taken(&self, slug: &str) -> Result<bool> {
        Ok(hosting::Entity::find().filter(hosting::Column::Slug.eq(slug)).count(self.db()).await? > 0)
    }

    /// Queued hostings of the node ahead of `row` (for "n ahead of you").
    pub async fn queue_position(&self, row: &HostingRow) -> Result<u32> {
        Ok(hosting::Entity::find()
            .filter(hosting::Column::NodeId.eq(row.node_id))
            .filter(hosting::Column::State.eq(HostingState::Queued))
            .filter(hosting::Column::Id.lt(row.id))
            .count(self.db())
            .await? as u32)
    }

    /// Ids of every hosting row on this node (reconciliation).
    pub async fn ids_on_node(&self) -> Result<Vec<i32>> {
        Ok(self.on_node().all(self.db()).await?.into_iter().map(|r| r.id).collect())
    }

    pub async fn count_on_node(&self) -> Result<u64> {
        Ok(self.on_node().filter(hosting::Column::UserId.is_not_null()).count(self.db()).await?)
    }

    /// Users' hostings on this node in `state`.
    pub async fn count_on_node_in(&self, state: HostingState) -> Result<u64> {
        Ok(self
            .on_node()
            .filter(hosting::Column::UserId.is_not_null())
            .filter(hosting::Column::State.eq(state))
            .count(self.db())
            .await?)
    }

    /// Rows on this node in one of `states`.
    pub async fn on_node_in(&self, states: &[HostingState]) -> Result<Vec<HostingRow>> {
        Ok(self
            .on_node()
            .filter(hosting::Column::State.is_in(states.iter().copied()))
            .order_by_asc(hosting::Column::Id)
            .all(self.db())
            .await?)
    }

    /// How many rows on this node are in each state (spares included; states with none absent).
    pub async fn count_by_state(&self) -> Result<Vec<(HostingState, u64)>> {
        let rows: Vec<(HostingState, i64)> = self
            .on_node()
            .select_only()
            .column(hosting::Column::State)
            .column_as(hosting::Column::Id.count(), "n")
            .group_by(hosting::Column::State)
            .into_tuple()
            .all(self.db())
            .await?;
        Ok(rows.into_iter().map(|(s, n)| (s, n.max(0) as u64)).collect())
    }

    /// Spares on this node: all of them (also those being made), or the ready ones of a tier.
    pub async fn count_spares(&self, ready: Option<SpareTier>) -> Result<u64> {
        let mut q = self.on_node().filter(hosting::Column::State.eq(HostingState::Spare));
        if let Some(tier) = ready {
            q = q.filter(hosting::Column::Operation.is_null()).filter(hosting::Column::SpareTier.eq(tier));
        }
        Ok(q.count(self.db()).await?)
    }

    fn on_node(&self) -> sea_orm::Select<hosting::Entity> {
        hosting::Entity::find().filter(hosting::Column::NodeId.eq(self.node_id))
    }

    // ---- transitions that start work (compare-and-set, each returns a lease) --------------

    /// A new hosting for a user, queued for its create, if the user's quota allows it. The
    /// quota holds across processes: the user's row is locked for the count and the insert.
    /// Claims a ready spare of the plan instead when `warm` and one is there.
    pub async fn insert_for_user(&self, new: NewHosting<'_>, warm: bool) -> Result<(HostingRow, Lease, bool)> {
        let txn = self.db().begin().await?;
        lock_user(&txn, new.user_id).await?;
        let count = Self::count_for_user(&txn, new.user_id).await?;
        if count >= new.max_per_user as u64 {
            return Err(Error::QuotaExceeded(format!(
                "you already have {count} hosting(s); the limit is {}",
                new.max_per_user
            )));
        }
        if hosting::Entity::find().filter(hosting::Column::Slug.eq(new.slug)).count(&txn).await? > 0 {
            return Err(slug_taken(new.slug));
        }
        let now = now_ms();
        let token = self.token();
        if warm {
            if let Some(id) = self.claim_spare_in(&txn, &new, &token, now).await? {
                txn.commit().await?;
                let row = self.require(id).await?;
                return Ok((row, self.lease(id, token), true));
            }
        }
        // A new VM: the node's row is locked (the second write of the transaction, always
        // after the user's: no lock-order inversion), so two creates cannot both take the last room.
        self.lock_node(&txn).await?;
        let committed = self.committed_in(&txn, new.capacity).await?;
        if let Some(why) = new.capacity.refusal(committed, new.plan) {
            return Err(Error::NodeFull(why));
        }
        let row = hosting::ActiveModel {
            user_id: Set(Some(new.user_id)),
            node_id: Set(self.node_id),
            slug: Set(new.slug.to_owned()),
            plan: Set(new.plan.to_owned()),
            state: Set(HostingState::Queued),
            state_reason: Set(None),
            operation: Set(Some(Operation::Create)),
            http_port: Set(None),
            ssh_port: Set(None),
            ssh_keys: Set(new.keys_json.to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
            running_since: Set(None),
            lease_owner: Set(Some(token.clone())),
            lease_until: Set(Some(now + LEASE_TTL.as_millis() as i64)),
            created_as: Set(Some(new.fresh)),
            ..Default::default()
        };
        let row = match row.insert(&txn).await {
            Ok(r) => r,
            Err(e) if is_unique_violation(&e) => return Err(slug_taken(new.slug)),
            Err(e) => return Err(e.into()),
        };
        txn.commit().await?;
        let id = row.id;
        Ok((row, self.lease(id, token), false))
    }

    /// Hands the oldest ready spare of the plan to the user inside `txn`.
    async fn claim_spare_in(
        &self,
        txn: &impl ConnectionTrait,
        new: &NewHosting<'_>,
        token: &str,
        now: i64,
    ) -> Result<Option<i32>> {
        for _ in 0..5 {
            // The fastest first: a paused spare resumes in ~0.02 s, a saved one restores in ~0.4 s.
            let mut cand = None;
            for tier in [SpareTier::Paused, SpareTier::Saved] {
                cand = self
                    .on_node()
                    .filter(hosting::Column::State.eq(HostingState::Spare))
                    .filter(hosting::Column::SpareTier.eq(tier))
                    .filter(hosting::Column::Operation.is_null())
                    .filter(hosting::Column::Plan.eq(new.plan))
                    .filter(self.lease_free(now))
                    .order_by_asc(hosting::Column::Id)
                    .one(txn)
                    .await?;
                if cand.is_some() {
                    break;
                }
            }
            let Some(cand) = cand else {
                return Ok(None);
            };
            let res = hosting::Entity::update_many()
                .col_expr(hosting::Column::UserId, Expr::value(new.user_id))
                .col_expr(hosting::Column::Slug, Expr::value(new.slug))
                .col_expr(hosting::Column::SshKeys, Expr::value(new.keys_json))
                .col_expr(hosting::Column::State, Expr::value(HostingState::Queued))
                .col_expr(hosting::Column::SpareTier, Expr::value(Option::<SpareTier>::None))
                .col_expr(hosting::Column::CreatedAs, Expr::value(CreateKind::Warm))
                .col_expr(hosting::Column::Operation, Expr::value(Operation::Create))
                .col_expr(hosting::Column::CreatedAt, Expr::value(now))
                .col_expr(hosting::Column::UpdatedAt, Expr::value(now))
                .col_expr(hosting::Column::LeaseOwner, Expr::value(token))
                .col_expr(hosting::Column::LeaseUntil, Expr::value(now + LEASE_TTL.as_millis() as i64))
                .filter(hosting::Column::Id.eq(cand.id))
                .filter(hosting::Column::State.eq(HostingState::Spare))
                .filter(hosting::Column::Operation.is_null())
                .filter(self.lease_free(now))
                .exec(txn)
                .await
                .map_err(|e| if is_unique_violation(&e) { slug_taken(new.slug) } else { e.into() })?;
            if res.rows_affected == 1 {
                return Ok(Some(cand.id));
            }
        }
        Ok(None)
    }

    /// A new spare on this node, being made (operation create) under a lease.
    pub async fn insert_spare(&self, slug: &str, plan: &str, capacity: &Capacity) -> Result<(HostingRow, Lease)> {
        // A spare commits its plan like any VM: it must fit (under the node's lock, as a create).
        let txn = self.db().begin().await?;
        self.lock_node(&txn).await?;
        let committed = self.committed_in(&txn, capacity).await?;
        if let Some(why) = capacity.refusal(committed, plan) {
            return Err(Error::NodeFull(why));
        }
        let now = now_ms();
        let token = self.token();
        let row = hosting::ActiveModel {
            user_id: Set(None),
            node_id: Set(self.node_id),
            slug: Set(slug.to_owned()),
            plan: Set(plan.to_owned()),
            state: Set(HostingState::Spare),
            state_reason: Set(None),
            operation: Set(Some(Operation::Create)),
            http_port: Set(None),
            ssh_port: Set(None),
            ssh_keys: Set("[]".into()),
            created_at: Set(now),
            updated_at: Set(now),
            running_since: Set(None),
            lease_owner: Set(Some(token.clone())),
            lease_until: Set(Some(now + LEASE_TTL.as_millis() as i64)),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        let id = row.id;
        Ok((row, self.lease(id, token)))
    }

    /// Begins `op` on a hosting: sets the operation (and `deleting` for a delete) if none runs,
    /// the state allows it and nobody holds the lease.
    pub async fn begin(&self, id: i32, op: Operation) -> Result<std::result::Result<(HostingRow, Lease), Refusal>> {
        self.begin_in(self.db(), id, op).await
    }

    async fn begin_in(&self, conn: &impl ConnectionTrait, id: i32, op: Operation) -> Result<std::result::Result<(HostingRow, Lease), Refusal>> {
        let now = now_ms();
        let token = self.token();
        let mut upd = hosting::Entity::update_many()
            .col_expr(hosting::Column::Operation, Expr::value(op))
            .col_expr(hosting::Column::UpdatedAt, Expr::value(now))
            .col_expr(hosting::Column::LeaseOwner, Expr::value(token.as_str()))
            .col_expr(hosting::Column::LeaseUntil, Expr::value(now + LEASE_TTL.as_millis() as i64))
            .filter(hosting::Column::Id.eq(id))
            .filter(hosting::Column::Operation.is_null())
            .filter(hosting::Column::State.is_in(op.allowed_from().iter().copied()))
            .filter(self.lease_free(now));
        if op == Operation::Delete {
            upd = upd.col_expr(hosting::Column::State, Expr::value(HostingState::Deleting));
        }
        if upd.exec(conn).await?.rows_affected == 1 {
            let row = hosting::Entity::find_by_id(id).one(conn).await?.ok_or(Error::NotFound("hosting"))?;
            return Ok(Ok((row, self.lease(id, token))));
        }
        let Some(row) = hosting::Entity::find_by_id(id).one(conn).await? else {
            return Ok(Err(Refusal::Gone));
        };
        Ok(Err(if row.operation.is_some() {
            Refusal::Busy(row)
        } else if !op.allowed_from().contains(&row.state) {
            Refusal::WrongState(row)
        } else {
            Refusal::Looked(row)
        }))
    }

    /// Leases a hosting for a look (reconciliation) when nobody holds it, whatever its state.
    /// Returns the row as it is under the lease.
    pub async fn look(&self, id: i32) -> Result<Option<(HostingRow, Lease)>> {
        let now = now_ms();
        let token = self.token();
        let res = hosting::Entity::update_many()
            .col_expr(hosting::Column::LeaseOwner, Expr::value(token.as_str()))
            .col_expr(hosting::Column::LeaseUntil, Expr::value(now + LEASE_TTL.as_millis() as i64))
            .filter(hosting::Column::Id.eq(id))
            .filter(self.lease_free(now))
            .exec(self.db())
            .await?;
        if res.rows_affected != 1 {
            return Ok(None);
        }
        Ok(self.get(id).await?.map(|row| (row, self.lease(id, token))))
    }

    /// Crash tests: leaves the hosting as a process that died in the middle of `operation`
    /// would have (that state and operation, its lease gone).
    #[doc(hidden)]
    pub async fn pretend_abandoned(&self, id: i32, state: HostingState, operation: Option<Operation>) -> Result<()> {
        hosting::Entity::update_many()
            .col_expr(hosting::Column::State, Expr::value(state))
            .col_expr(hosting::Column::Operation, Expr::value(operation))
            .col_expr(hosting::Column::LeaseOwner, Expr::value(Option::<String>::None))
            .col_expr(hosting::Column::LeaseUntil, Expr::value(Option::<i64>::None))
            .filter(hosting::Column::Id.eq(id))
            .exec(self.db())
            .await?;
        Ok(())
    }

    // ---- observations and the owner's settings (no lease: they start no work) -------------

    /// Notes a visit seen at `at` (ms); never moves the time back.
    pub async fn mark_active(&self, id: i32, at: i64) -> Result<()> {
        hosting::Entity::update_many()
            .col_expr(hosting::Column::LastActiveAt, Expr::value(at))
            .filter(hosting::Column::Id.eq(id))
            .filter(Condition::any().add(hosting::Column::LastActiveAt.is_null()).add(hosting::Column::LastActiveAt.lt(at)))
            .exec(self.db())
            .await?;
        Ok(())
    }

    pub async fn set_always_on(&self, id: i32, on: bool) -> Result<HostingRow> {
        hosting::Entity::update_many()
            .col_expr(hosting::Column::AlwaysOn, Expr::value(on))
            .filter(hosting::Column::Id.eq(id))
            .exec(self.db())
            .await?;
        self.require(id).await
    }

    /// Turns "always on" on unless `user_id` already has `limit` such sites. The user's row is
    /// locked for the count and the update (as for the hosting quota), so two requests at once
    /// cannot both pass the count. None when refused.
    pub async fn set_always_on_within(&self, id: i32, user_id: i32, limit: u32) -> Result<Option<HostingRow>> {
        let txn = self.db().begin().await?;
        lock_user(&txn, user_id).await?;
        let on = hosting::Entity::find()
            .filter(hosting::Column::UserId.eq(user_id))
            .filter(hosting::Column::AlwaysOn.eq(true))
            .filter(hosting::Column::Id.ne(id))
            .count(&txn)
            .await?;
        if on >= limit as u64 {
            return Ok(None);
        }
        hosting::Entity::update_many()
            .col_expr(hosting::Column::AlwaysOn, Expr::value(true))
            .filter(hosting::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(Some(self.require(id).await?))
    }

    // ---- writes under a lease -------------------------------------------------------------

    /// Applies `f` to the row if `lease` still holds it. Err(LeaseLost) otherwise.
    async fn update_leased(&self, lease: &Lease, f: impl FnOnce(&mut UpdateMany)) -> Result<HostingRow> {
        let mut upd = UpdateMany(Some(
            hosting::Entity::update_many()
                .col_expr(hosting::Column::UpdatedAt, Expr::value(now_ms()))
                .filter(hosting::Column::Id.eq(lease.id))
                .filter(hosting::Column::LeaseOwner.eq(lease.token.as_str())),
        ));
        f(&mut upd);
        let upd = upd.0.expect("an update is always there");
        if upd.exec(self.db()).await?.rows_affected != 1 {
            return Err(Error::LeaseLost { hosting_id: lease.id });
        }
        self.require(lease.id).await
    }

    /// A create begins provisioning, as `kind`.
    pub async fn begin_provisioning(&self, lease: &Lease, kind: CreateKind) -> Result<HostingRow> {
        self.update_leased(lease, |u| {
            u.set(hosting::Column::State, HostingState::Provisioning);
            u.set(hosting::Column::CreatedAs, kind);
        })
        .await
    }

    /// Marks a create started over (after a crash): queued again, no ports.
    pub async fn requeue(&self, lease: &Lease) -> Result<HostingRow> {
        self.update_leased(lease, |u| {
            u.set(hosting::Column::State, HostingState::Queued);
            u.set(hosting::Column::Operation, Operation::Create);
            u.set(hosting::Column::HttpPort, Option::<i32>::None);
            u.set(hosting::Column::SshPort, Option::<i32>::None);
        })
        .await
    }

    /// Records an operation taken over from a holder that died (reconciliation finishing it).
    pub async fn set_operation(&self, lease: &Lease, op: Operation) -> Result<HostingRow> {
        self.update_leased(lease, |u| u.set(hosting::Column::Operation, op)).await
    }

    pub async fn set_ports(&self, lease: &Lease, ports: Option<(u16, u16)>) -> Result<HostingRow> {
        self.update_leased(lease, |u| {
            u.set(hosting::Column::HttpPort, ports.map(|p| p.0 as i32));
            u.set(hosting::Column::SshPort, ports.map(|p| p.1 as i32));
        })
        .await
    }

    /// Ends the work under `lease`: the hosting settles in `state` (with the reason shown to
    /// its owner), no operation, no lease. A failed hosting keeps no ports.
    pub async fn finish(&self, lease: &Lease, state: HostingState, reason: Option<String>) -> Result<HostingRow> {
        self.finish_as(lease, state, reason, None).await
    }

    /// A spare made, waiting in `tier`.
    pub async fn finish_spare(&self, lease: &Lease, tier: SpareTier) -> Result<HostingRow> {
        self.finish_as(lease, HostingState::Spare, None, Some(tier)).await
    }

    async fn finish_as(&self, lease: &Lease, state: HostingState, reason: Option<String>, tier: Option<SpareTier>) -> Result<HostingRow> {
        let running = state == HostingState::Running;
        let row = self
            .update_leased(lease, |u| {
                u.set(hosting::Column::SpareTier, tier);
                u.set(hosting::Column::State, state);
                u.set(hosting::Column::StateReason, reason);
                u.set(hosting::Column::Operation, Option::<Operation>::None);
                u.set(hosting::Column::LeaseOwner, Option::<String>::None);
                u.set(hosting::Column::LeaseUntil, Option::<i64>::None);
                u.set(hosting::Column::RunningSince, running.then(now_ms));
                if state == HostingState::Failed {
                    u.set(hosting::Column::HttpPort, Option::<i32>::None);
                    u.set(hosting::Column::SshPort, Option::<i32>::None);
                }
            })
            .await?;
        lease.released.store(true, Ordering::Relaxed);
        Ok(row)
    }

    /// Lets go of a look without changing the hosting.
    pub async fn release(&self, lease: &Lease) -> Result<()> {
        let res = clear_lease(lease.id, &lease.token).exec(self.db()).await;
        self.given_back(lease, res.map(|r| r.rows_affected))
    }

    /// Removes the row (its resources are gone).
    pub async fn delete(&self, lease: &Lease) -> Result<()> {
        let res = hosting::Entity::delete_many()
            .filter(hosting::Column::Id.eq(lease.id))
            .filter(hosting::Column::LeaseOwner.eq(lease.token.as_str()))
            .exec(self.db())
            .await;
        self.given_back(lease, res.map(|r| r.rows_affected))
    }

    /// The lease is given back by a write that touched `rows` (one, or it was lost).
    fn given_back(&self, lease: &Lease, rows: std::result::Result<u64, sea_orm::DbErr>) -> Result<()> {
        lease.released.store(true, Ordering::Relaxed);
        match rows? {
            1 => Ok(()),
            _ => Err(Error::LeaseLost { hosting_id: lease.id }),
        }
    }

    async fn renew(&self, id: i32, token: &str) -> Result<bool> {
        let now = now_ms();
        let res = hosting::Entity::update_many()
            .col_expr(hosting::Column::LeaseUntil, Expr::value(now + LEASE_TTL.as_millis() as i64))
            .filter(hosting::Column::Id.eq(id))
            .filter(hosting::Column::LeaseOwner.eq(token))
            .exec(self.db())
            .await?;
        Ok(res.rows_affected == 1)
    }
}

/// An `UPDATE hostings ...` being put together under a lease.
struct UpdateMany(Option<sea_orm::UpdateMany<hosting::Entity>>);

impl UpdateMany {
    fn set(&mut self, col: hosting::Column, v: impl Into<sea_orm::Value>) {
        self.0 = self.0.take().map(|u| u.col_expr(col, Expr::value(v)));
    }
}

/// The right to change one hosting, held while its work runs: renewed in the background, and
/// given back by [`Store::finish`], [`Store::release`] or [`Store::delete`]. Dropped without
/// that (an error path, a panic), it is let go, so reconciliation can settle the hosting.
pub struct Lease {
    store: Store,
    id: i32,
    token: String,
    released: AtomicBool,
    /// Set by the renewer when the lease is gone (taken over, or not renewed within its TTL):
    /// the work under it must stop, and must not undo anything (the new holder owns that).
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl Lease {
    fn new(store: Store, id: i32, token: String) -> Self {
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = {
            let (store, token, lost) = (store.clone(), token.clone(), lost.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(RENEW_EVERY);
                tick.tick().await;
                let mut renewed = tokio::time::Instant::now();
                loop {
                    tick.tick().await;
                    match store.renew(id, &token).await {
                        Ok(true) => renewed = tokio::time::Instant::now(),
                        Ok(false) => {
                            // Given back (the work is done) or taken over.
                            lost.store(true, Ordering::SeqCst);
                            break;
                        }
                        Err(err) => {
                            tracing::warn!(hosting_id = id, %err, "could not renew a hosting lease");
                            if renewed.elapsed() >= LEASE_TTL {
                                lost.store(true, Ordering::SeqCst);
                                break;
                            }
                        }
                    }
                }
            })
        };
        Self { store, id, token, released: AtomicBool::new(false), lost, renewer }
    }

    pub fn hosting_id(&self) -> i32 {
        self.id
    }

    /// The lease may have passed to someone else: stop, and leave the cleaning to them.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("hosting_id", &self.id).field("token", &self.token).finish()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
        if self.released.load(Ordering::Relaxed) {
            return;
        }
        let (store, id, token) = (self.store.clone(), self.id, std::mem::take(&mut self.token));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = clear_lease(id, &token).exec(store.db()).await;
            });
        }
    }
}

/// `UPDATE` that gives hosting `id`'s lease back if `token` still holds it.
fn clear_lease(id: i32, token: &str) -> sea_orm::UpdateMany<hosting::Entity> {
    hosting::Entity::update_many()
        .col_expr(hosting::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(hosting::Column::LeaseUntil, Expr::value(Option::<i64>::None))
        .filter(hosting::Column::Id.eq(id))
        .filter(hosting::Column::LeaseOwner.eq(token))
}

fn slug_taken(slug: &str) -> Error {
    Error::conflict(Some("slug"), format!("the site name '{slug}' is taken"))
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
