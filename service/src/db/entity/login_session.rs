use sea_orm::entity::prelude::*;

/// A logged-in browser session as its owner sees it (see accounts::sessions). `id` is opaque
/// and public; the tower-sessions record (`sessions.login_id`) is never exposed.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "login_sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: i32,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub client_ip: Option<String>,
    pub user_agent: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
