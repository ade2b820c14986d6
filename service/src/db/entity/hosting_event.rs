use sea_orm::entity::prelude::*;
use vmw_types::{EventKind, EventStatus, Step};

/// Audit trail and live progress feed. Kept after the hosting is gone.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "hosting_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub hosting_id: i32,
    pub user_id: i32,
    pub kind: EventKind,
    pub step: Option<Step>,
    pub status: EventStatus,
    #[sea_orm(column_type = "Text")]
    pub message: String,
    pub duration_ms: Option<i64>,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
