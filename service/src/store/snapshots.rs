//! The snapshot rows of users' sites (their files are `vm::snapshots`'), with the per-user
//! quota (count and bytes) checked under the user's row lock.
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set, TransactionTrait};

use super::Store;
use super::users::lock_user;
use crate::db::entity::snapshot;
use crate::db::now_ms;
use crate::{Error, Result};
use vmw_types::SnapshotState;

pub use snapshot::Model as SnapshotRow;

impl Store {
    /// Hosting `id`'s snapshots, oldest first.
    pub async fn snapshots_of(&self, id: i32) -> Result<Vec<SnapshotRow>> {
        Ok(snapshot::Entity::find()
            .filter(snapshot::Column::HostingId.eq(id))
            .order_by_asc(snapshot::Column::Id)
            .all(self.db())
            .await?)
    }

    /// Snapshot `sid` of hosting `id`.
    pub async fn snapshot_of(&self, id: i32, sid: i32) -> Result<Option<SnapshotRow>> {
        Ok(snapshot::Entity::find_by_id(sid).filter(snapshot::Column::HostingId.eq(id)).one(self.db()).await?)
    }

    /// Makes the `taking` row if the user's quota (at most `max_count` snapshots taking
    /// `max_disk_mib`, `estimate` bytes for this one) allows it. The user's row is locked for
    /// the count and the insert.
    pub async fn insert_snapshot(
        &self,
        id: i32,
        user_id: i32,
        name: &str,
        estimate: u64,
        max_count: u32,
        max_disk_mib: u64,
    ) -> Result<SnapshotRow> {
        let txn = self.db().begin().await?;
        lock_user(&txn, user_id).await?;
        let mine = snapshot::Entity::find().filter(snapshot::Column::UserId.eq(user_id)).all(&txn).await?;
        if mine.iter().any(|s| s.hosting_id == id && s.name == name) {
            return Err(Error::conflict(Some("name"), format!("this site already has a snapshot named '{name}'")));
        }
        if mine.len() as u64 >= u64::from(max_count) {
            return Err(Error::QuotaExceeded(format!("at most {max_count} snapshots per user; delete one first")));
        }
        let used: u64 = mine.iter().map(|s| s.size_bytes.max(0) as u64).sum();
        let limit = max_disk_mib.saturating_mul(1 << 20);
        if used.saturating_add(estimate) > limit {
            return Err(Error::QuotaExceeded(format!(
                "snapshots may take {} MiB per user; yours take {} MiB and this one needs about {} MiB; delete one first",
                max_disk_mib,
                used >> 20,
                estimate.div_ceil(1 << 20)
            )));
        }
        let m = snapshot::ActiveModel {
            hosting_id: Set(id),
            user_id: Set(user_id),
            name: Set(name.to_owned()),
            state: Set(SnapshotState::Taking),
            size_bytes: Set(estimate as i64),
            created_at: Set(now_ms()),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(m)
    }

    /// Snapshot `sid` is written and takes `bytes`: within its owner's quota (`limit_bytes`
    /// with their other snapshots) the row is `ready` with that size; over it the row is
    /// removed and the inner `Err` holds what the others take. Under the owner's row lock,
    /// like the check that made the row.
    pub async fn settle_snapshot_size(&self, sid: i32, bytes: u64, limit_bytes: u64) -> Result<std::result::Result<(), u64>> {
        // Its owner never changes: read before the transaction, which writes first (the user's
        // row lock), so SQLite waits for its lock instead of failing a read-then-write upgrade.
        let Some(me) = snapshot::Entity::find_by_id(sid).one(self.db()).await? else {
            return Err(Error::NotFound("snapshot"));
        };
        let txn = self.db().begin().await?;
        lock_user(&txn, me.user_id).await?;
        let others = snapshot::Entity::find()
            .filter(snapshot::Column::UserId.eq(me.user_id))
            .filter(snapshot::Column::Id.ne(sid))
            .all(&txn)
            .await?;
        let used: u64 = others.iter().map(|s| s.size_bytes.max(0) as u64).sum();
        if used.saturating_add(bytes) > limit_bytes {
            snapshot::Entity::delete_by_id(sid).exec(&txn).await?;
            txn.commit().await?;
            return Ok(Err(used));
        }
        snapshot::Entity::update_many()
            .col_expr(snapshot::Column::State, Expr::value(SnapshotState::Ready))
            .col_expr(snapshot::Column::SizeBytes, Expr::value(bytes as i64))
            .filter(snapshot::Column::Id.eq(sid))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(Ok(()))
    }

    pub async fn delete_snapshot(&self, sid: i32) -> Result<()> {
        snapshot::Entity::delete_by_id(sid).exec(self.db()).await?;
        Ok(())
    }

    /// Every snapshot row of hosting `id`.
    pub async fn delete_snapshots_of(&self, id: i32) -> Result<()> {
        snapshot::Entity::delete_many().filter(snapshot::Column::HostingId.eq(id)).exec(self.db()).await?;
        Ok(())
    }

    /// How many snapshots a user has.
    pub async fn snapshot_count(&self, user_id: i32) -> Result<u64> {
        Ok(snapshot::Entity::find().filter(snapshot::Column::UserId.eq(user_id)).count(self.db()).await?)
    }
}
