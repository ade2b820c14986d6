//! The rows of sites' backups in the backup repository (issue 31; the repository itself is
//! `crate::backup`'s). A deleted site's rows stay (the foreign key sets `hosting_id` to NULL):
//! `slug` and `user_id` keep them listed for the owner.
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::{HostingRow, Store};
use crate::db::entity::backup;
use crate::db::now_ms;
use crate::{Error, Result};
use vmw_types::{BackupSource, BackupState, BackupTrigger};

pub use backup::Model as BackupRow;

/// What a finished upload recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupDone {
    pub snapshot_id: String,
    pub bytes_added: u64,
    pub bytes_total: u64,
}

impl Store {
    /// A new `running` backup of `h` (its owner's, on its node).
    pub async fn insert_backup(&self, h: &HostingRow, user_id: i32, with_memory: bool, trigger: BackupTrigger) -> Result<BackupRow> {
        Ok(backup::ActiveModel {
            hosting_id: Set(Some(h.id)),
            slug: Set(h.slug.clone()),
            user_id: Set(user_id),
            node_id: Set(h.node_id),
            snapshot_id: Set(None),
            base_id: Set(None),
            captured_from: Set(None),
            with_memory: Set(with_memory),
            state: Set(BackupState::Running),
            trigger: Set(trigger),
            started_at: Set(now_ms()),
            finished_at: Set(None),
            bytes_added: Set(None),
            bytes_total: Set(None),
            error: Set(None),
            ..Default::default()
        }
        .insert(self.db())
        .await?)
    }

    /// Backup `bid` was captured: from which state, on which base, with or without memory.
    pub async fn backup_captured(&self, bid: i32, from: BackupSource, base_id: &str, with_memory: bool) -> Result<()> {
        backup::Entity::update_many()
            .col_expr(backup::Column::CapturedFrom, Expr::value(from))
            .col_expr(backup::Column::BaseId, Expr::value(base_id.to_owned()))
            .col_expr(backup::Column::WithMemory, Expr::value(with_memory))
            .filter(backup::Column::Id.eq(bid))
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// Backup `bid` is in the repository.
    pub async fn backup_succeeded(&self, bid: i32, done: &BackupDone) -> Result<BackupRow> {
        self.settle_backup(bid, BackupState::Succeeded, Some(done), None).await
    }

    /// Backup `bid` failed, for `reason` (shown to the owner).
    pub async fn backup_failed(&self, bid: i32, reason: &str) -> Result<BackupRow> {
        self.settle_backup(bid, BackupState::Failed, None, Some(reason)).await
    }

    async fn settle_backup(&self, bid: i32, state: BackupState, done: Option<&BackupDone>, reason: Option<&str>) -> Result<BackupRow> {
        let mut q = backup::Entity::update_many()
            .col_expr(backup::Column::State, Expr::value(state))
            .col_expr(backup::Column::FinishedAt, Expr::value(now_ms()))
            .col_expr(backup::Column::Error, Expr::value(reason.map(str::to_owned)));
        if let Some(d) = done {
            q = q
                .col_expr(backup::Column::SnapshotId, Expr::value(d.snapshot_id.clone()))
                .col_expr(backup::Column::BytesAdded, Expr::value(d.bytes_added as i64))
                .col_expr(backup::Column::BytesTotal, Expr::value(d.bytes_total as i64));
        }
        q.filter(backup::Column::Id.eq(bid)).exec(self.db()).await?;
        self.backup(bid).await?.ok_or(Error::NotFound("backup"))
    }

    pub async fn backup(&self, bid: i32) -> Result<Option<BackupRow>> {
        Ok(backup::Entity::find_by_id(bid).one(self.db()).await?)
    }

    /// Hosting `id`'s backups, newest first.
    pub async fn backups_of(&self, id: i32) -> Result<Vec<BackupRow>> {
        Ok(backup::Entity::find()
            .filter(backup::Column::HostingId.eq(id))
            .order_by_desc(backup::Column::StartedAt)
            .order_by_desc(backup::Column::Id)
            .all(self.db())
            .await?)
    }

    /// User `user_id`'s backups, of every site (deleted ones too), newest first.
    pub async fn backups_of_user(&self, user_id: i32) -> Result<Vec<BackupRow>> {
        Ok(backup::Entity::find()
            .filter(backup::Column::UserId.eq(user_id))
            .order_by_desc(backup::Column::StartedAt)
            .order_by_desc(backup::Column::Id)
            .all(self.db())
            .await?)
    }

    /// Hosting `id`'s newest successful backup.
    pub async fn last_successful_backup(&self, id: i32) -> Result<Option<BackupRow>> {
        Ok(backup::Entity::find()
            .filter(backup::Column::HostingId.eq(id))
            .filter(backup::Column::State.eq(BackupState::Succeeded))
            .order_by_desc(backup::Column::FinishedAt)
            .order_by_desc(backup::Column::Id)
            .one(self.db())
            .await?)
    }

    /// Hosting `id`'s backups still `running`, marked failed for `reason`; their ids. Called by
    /// the holder of the site's operation (so none of them is being made: a crash left them).
    pub async fn fail_running_backups_of(&self, id: i32, reason: &str) -> Result<Vec<i32>> {
        let stale: Vec<i32> = backup::Entity::find()
            .filter(backup::Column::HostingId.eq(id))
            .filter(backup::Column::State.eq(BackupState::Running))
            .all(self.db())
            .await?
            .into_iter()
            .map(|b| b.id)
            .collect();
        if stale.is_empty() {
            return Ok(stale);
        }
        backup::Entity::update_many()
            .col_expr(backup::Column::State, Expr::value(BackupState::Failed))
            .col_expr(backup::Column::FinishedAt, Expr::value(now_ms()))
            .col_expr(backup::Column::Error, Expr::value(reason.to_owned()))
            .filter(backup::Column::Id.is_in(stale.clone()))
            .exec(self.db())
            .await?;
        Ok(stale)
    }
}
