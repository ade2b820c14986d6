use sea_orm::entity::prelude::*;
use vmw_types::AccountEventKind;

/// What happened to an account: logins, tokens, password changes, disable/enable. Its owner
/// reads it; at most `accounts::ACTIVITY_KEPT` rows per user are kept.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "account_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub user_id: i32,
    pub kind: AccountEventKind,
    pub client_ip: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub detail: Option<String>,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
