use sea_orm::entity::prelude::*;

/// A hypervisor, reached by its libvirt URI; a hosting always belongs to one.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "nodes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(unique)]
    pub name: String,
    pub libvirt_uri: String,
    pub memory_mib: i64,
    pub created_at: i64,
    /// The IP nginx reaches the node's VM forwards on; None: the app's `forward_bind`.
    pub address: Option<String>,
    /// Disk capacity in GiB; None: from the settings (the node of the app's own settings).
    pub disk_gib: Option<i64>,
    /// Takes no new sites.
    pub drained: bool,
    /// Added by an administrator (not the node of the app's own settings).
    pub added: bool,
    /// The node's libvirt daemon (`VmManager::identity`); None: not read yet.
    pub identity: Option<String>,
    /// Prefix of the node's domain names; None: the app's `domain_prefix`.
    pub domain_prefix: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
