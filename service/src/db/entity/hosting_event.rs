use sea_orm::entity::prelude::*;

/// Audit trail and live progress feed. Kept after the hosting is gone.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "hosting_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub hosting_id: i32,
    pub user_id: i32,
    /// "step" (a provisioning/undo step), "state" (state change), "action" (user action)
    pub kind: String,
    pub step: Option<String>,
    /// started | succeeded | failed | undone | info
    pub status: String,
    #[sea_orm(column_type = "Text")]
    pub message: String,
    pub duration_ms: Option<i64>,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
