use sea_orm::entity::prelude::*;
use vmw_types::TokenKind;

/// Bearer tokens, stored only as SHA-256 hashes. `kind`: a login token (expires) or a named API token.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_tokens")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub user_id: i32,
    pub name: String,
    pub kind: TokenKind,
    #[sea_orm(unique)]
    pub token_hash: String,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
