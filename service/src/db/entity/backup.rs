use sea_orm::entity::prelude::*;
use vmw_types::{BackupSource, BackupState, BackupTrigger};

/// A backup of a site in the backup repository (issue 31). `hosting_id` is NULL once the site
/// is deleted (`slug` and `user_id` keep it listed for its owner). `node_id` is the node that
/// made it. Only `store::backups` reads or writes these rows.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "backups")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub hosting_id: Option<i32>,
    pub slug: String,
    pub user_id: i32,
    pub node_id: i32,
    pub snapshot_id: Option<String>,
    pub base_id: Option<String>,
    pub captured_from: Option<BackupSource>,
    pub with_memory: bool,
    pub state: BackupState,
    pub trigger: BackupTrigger,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub bytes_added: Option<i64>,
    pub bytes_total: Option<i64>,
    pub error: Option<String>,
    /// When the scheduler first saw the site gone (its backups are forgotten some days later).
    pub orphaned_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
