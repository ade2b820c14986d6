use sea_orm::entity::prelude::*;

/// (node_id, port) is the primary key: two hostings can never hold the same port on a node.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "port_leases")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub node_id: i32,
    #[sea_orm(primary_key, auto_increment = false)]
    pub port: i32,
    pub hosting_id: i32,
    /// "http" | "ssh"
    pub purpose: String,
    pub created_at: i64,
    /// The address the forward binds (unique with the port: nodes sharing an address never clash).
    pub address: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
