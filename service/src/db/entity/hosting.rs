use sea_orm::entity::prelude::*;

/// A user's site and its VM. Domain, disk and nginx names derive from `id`, never from `slug`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "hostings")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub user_id: i32,
    pub node_id: i32,
    #[sea_orm(unique)]
    pub slug: String,
    pub plan: String,
    /// queued | provisioning | running | stopped | failed | deleting (see hosting::state)
    pub state: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub state_reason: Option<String>,
    /// The operation in progress (create/start/stop/restart/delete), one at a time.
    pub operation: Option<String>,
    pub http_port: Option<i32>,
    pub ssh_port: Option<i32>,
    /// JSON array of OpenSSH public key lines installed in the VM.
    #[sea_orm(column_type = "Text")]
    pub ssh_keys: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub running_since: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
