//! What the state backup loop asks of the backups' rows.
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::Store;
use crate::db::entity::backup;
use crate::Result;
use vmw_types::BackupState;

impl Store {
    /// When the newest successful site backup (of any node) finished, in ms since the epoch.
    pub async fn newest_backup_finished_at(&self) -> Result<Option<i64>> {
        let t: Option<Option<i64>> = backup::Entity::find()
            .select_only()
            .column(backup::Column::FinishedAt)
            .filter(backup::Column::State.eq(BackupState::Succeeded))
            .order_by_desc(backup::Column::FinishedAt)
            .into_tuple()
            .one(self.db())
            .await?;
        Ok(t.flatten())
    }
}
