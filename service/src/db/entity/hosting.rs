use sea_orm::entity::prelude::*;
use vmw_types::{CreateKind, HostingState, Operation, SpareTier};

/// A user's site and its VM, or a warm spare (no owner yet). Domain, disk and nginx names derive
/// from `id`, never from `slug`. Only `store` reads or writes these rows.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "hostings")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// None for a warm spare: it belongs to no account until a create claims it.
    pub user_id: Option<i32>,
    pub node_id: i32,
    #[sea_orm(unique)]
    pub slug: String,
    pub plan: String,
    pub state: HostingState,
    #[sea_orm(column_type = "Text", nullable)]
    pub state_reason: Option<String>,
    /// The operation in progress, one at a time (held under the lease below).
    pub operation: Option<Operation>,
    pub http_port: Option<i32>,
    pub ssh_port: Option<i32>,
    /// JSON array of OpenSSH public key lines installed in the VM.
    #[sea_orm(column_type = "Text")]
    pub ssh_keys: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub running_since: Option<i64>,
    /// Who may change this row now (an app instance's lease token), and until when (ms). A
    /// lease whose time is past is free: its holder died.
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    /// How a ready spare waits (None for anything else).
    pub spare_tier: Option<SpareTier>,
    /// How a create made its VM (None until it began provisioning).
    pub created_as: Option<CreateKind>,
    /// The owner's "never put this site to sleep".
    pub always_on: bool,
    /// When a visit (HTTP through nginx, or an open SSH session) was last seen (ms).
    pub last_active_at: Option<i64>,
    /// The owner's HSTS switch for the site's HTTPS names (issue #30).
    pub hsts: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(belongs_to = "super::user::Entity", from = "Column::UserId", to = "super::user::Column::Id")]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
