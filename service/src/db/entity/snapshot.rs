use sea_orm::entity::prelude::*;
use vmw_types::SnapshotState;

/// A user snapshot of a hosting (disk and memory). Its files are in
/// `{data_dir}/vms/{hosting_id}/snapshots/{id}/`; `name` is display text only. Only
/// `hosting::snapshots` reads or writes these rows.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "snapshots")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub hosting_id: i32,
    pub user_id: i32,
    pub name: String,
    pub state: SnapshotState,
    pub size_bytes: i64,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
