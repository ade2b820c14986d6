//! The hosting rows: reads, counts, new rows (a user's hosting, a spare, a claimed spare) and
//! the owner's settings. Transitions that start work are in [`super::transitions`].
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};

use super::leases::LEASE_TTL;
use super::{Capacity, Lease, Store};
use crate::identity::Actor;
use crate::db::entity::{hosting, user};
use crate::db::{is_unique_violation, now_ms};
use crate::{Error, Result};
use vmw_types::{CreateKind, HostingState, Operation, SpareTier};

pub use hosting::Model as HostingRow;

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

impl Store {
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
        if actor.may_see_owned(row.user_id) { Ok(row) } else { Err(Error::NotFound("hosting")) }
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

    /// Every row on this node, users' and spares, in any state.
    pub async fn count_all_on_node(&self) -> Result<u64> {
        Ok(self.on_node().count(self.db()).await?)
    }

    /// Users' hostings on this node, oldest first (spares are not anyone's).
    pub async fn users_on_node(&self) -> Result<Vec<HostingRow>> {
        Ok(self
            .on_node()
            .filter(hosting::Column::UserId.is_not_null())
            .order_by_asc(hosting::Column::Id)
            .all(self.db())
            .await?)
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

    pub(super) fn on_node(&self) -> sea_orm::Select<hosting::Entity> {
        hosting::Entity::find().filter(hosting::Column::NodeId.eq(self.node_id))
    }

    // ---- new rows (each under a lease, for the create that makes it) ----------------------

    /// A new hosting for a user, queued for its create, if the user's quota allows it. The
    /// quota holds across processes: the user's row is locked for the count and the insert.
    /// Claims a ready spare of the plan instead when `warm` and one is there.
    pub async fn insert_for_user(&self, new: NewHosting<'_>, warm: bool) -> Result<(HostingRow, Lease, bool)> {
        let txn = self.db().begin().await?;
        super::users::lock_user(&txn, new.user_id).await?;
        let count = super::users::hosting_count(&txn, new.user_id).await?;
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
        super::users::lock_user(&txn, user_id).await?;
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
}

fn slug_taken(slug: &str) -> Error {
    Error::conflict(Some("slug"), format!("the site name '{slug}' is taken"))
}
