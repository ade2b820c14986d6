//! Hosting transitions: an operation begins by a compare-and-set on the row (none running, a
//! state that allows it, the lease free) and hands out a [`Lease`]; every write of its work
//! names that lease, and the last one gives it back.
use std::sync::atomic::Ordering;

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait};

use super::leases::LEASE_TTL;
use super::{Capacity, HostingRow, Lease, Store};
use crate::db::entity::hosting;
use crate::db::now_ms;
use crate::{Error, Result};
use vmw_types::{CreateKind, HostingState, Operation, SpareTier};

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

    /// Hosting `lease`'s row re-homed on node `node_id` with `ports` (leased there by the
    /// caller): a site moved to another node. The ports it holds elsewhere stay leased until
    /// the caller releases them (a failed move re-homes it back on them).
    pub async fn rehome(&self, lease: &Lease, node_id: i32, ports: (u16, u16)) -> Result<HostingRow> {
        self.update_leased(lease, |u| {
            u.set(hosting::Column::NodeId, node_id);
            u.set(hosting::Column::HttpPort, Some(ports.0 as i32));
            u.set(hosting::Column::SshPort, Some(ports.1 as i32));
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

    /// Removes the row (its resources are gone).
    pub async fn delete(&self, lease: &Lease) -> Result<()> {
        let res = hosting::Entity::delete_many()
            .filter(hosting::Column::Id.eq(lease.id))
            .filter(hosting::Column::LeaseOwner.eq(lease.token.as_str()))
            .exec(self.db())
            .await;
        self.given_back(lease, res.map(|r| r.rows_affected))
    }
}

/// An `UPDATE hostings ...` being put together under a lease.
struct UpdateMany(Option<sea_orm::UpdateMany<hosting::Entity>>);

impl UpdateMany {
    fn set(&mut self, col: hosting::Column, v: impl Into<sea_orm::Value>) {
        self.0 = self.0.take().map(|u| u.col_expr(col, Expr::value(v)));
    }
}
