use sea_orm::entity::prelude::*;
use vmw_types::{BackupFrequency, Weekday};

/// A site's backup schedule, retention and the scheduler's state for it (issue 31; see the
/// migration `m20261208_000050_backup_schedules`). Only `store::backup_schedules` reads or
/// writes these rows.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "backup_schedules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub hosting_id: i32,
    pub frequency: BackupFrequency,
    pub weekday: Option<Weekday>,
    pub hour: i32,
    pub minute: i32,
    pub keep_daily: i32,
    pub keep_weekly: i32,
    pub keep_monthly: i32,
    pub with_memory: bool,
    pub updated_at: i64,
    pub anchor_at: i64,
    pub pending_backup_id: Option<i32>,
    pub attempts: i32,
    pub retry_at: Option<i64>,
    pub usage_bytes: Option<i64>,
    pub usage_at: Option<i64>,
    pub forgot_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(belongs_to = "super::hosting::Entity", from = "Column::HostingId", to = "super::hosting::Column::Id")]
    Hosting,
}

impl Related<super::hosting::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Hosting.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
