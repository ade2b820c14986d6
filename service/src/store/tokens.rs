//! The `api_tokens` table: login tokens and named API tokens, stored by the SHA-256 of their
//! secret (the secret itself is never stored).
use sea_orm::{ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set};
use vmw_types::{ApiTokenView, TokenKind};

use crate::db::entity::api_token;
use crate::db::now_ms;
use crate::Result;

pub use api_token::Model as TokenRow;

impl From<TokenRow> for ApiTokenView {
    fn from(t: TokenRow) -> Self {
        Self { id: t.id, name: t.name, kind: t.kind, created_at: t.created_at, expires_at: t.expires_at, last_used_at: t.last_used_at }
    }
}

/// A token to store: `token_hash` is the SHA-256 (hex) of its secret.
pub struct NewToken {
    pub user_id: i32,
    pub name: String,
    pub kind: TokenKind,
    pub token_hash: String,
    pub expires_at: Option<i64>,
}

pub async fn insert(conn: &impl ConnectionTrait, new: NewToken) -> Result<TokenRow> {
    Ok(api_token::ActiveModel {
        user_id: Set(new.user_id),
        name: Set(new.name),
        kind: Set(new.kind),
        token_hash: Set(new.token_hash),
        expires_at: Set(new.expires_at),
        last_used_at: Set(None),
        created_at: Set(now_ms()),
        ..Default::default()
    }
    .insert(conn)
    .await?)
}

/// Deletes the login tokens that expired before `now`.
pub async fn delete_expired_logins(conn: &impl ConnectionTrait, now: i64) -> Result<()> {
    api_token::Entity::delete_many()
        .filter(api_token::Column::Kind.eq(TokenKind::Login))
        .filter(api_token::Column::ExpiresAt.lt(now))
        .exec(conn)
        .await?;
    Ok(())
}

/// How many named API tokens the user has.
pub async fn count_api(conn: &impl ConnectionTrait, user_id: i32) -> Result<u64> {
    Ok(api_token::Entity::find()
        .filter(api_token::Column::UserId.eq(user_id))
        .filter(api_token::Column::Kind.eq(TokenKind::Api))
        .count(conn)
        .await?)
}

/// The user's named API tokens, oldest first.
pub async fn list_api(conn: &impl ConnectionTrait, user_id: i32) -> Result<Vec<ApiTokenView>> {
    Ok(api_token::Entity::find()
        .filter(api_token::Column::UserId.eq(user_id))
        .filter(api_token::Column::Kind.eq(TokenKind::Api))
        .order_by_asc(api_token::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(ApiTokenView::from)
        .collect())
}

/// The user's named API token `token_id`, if it is theirs.
pub async fn find_api(conn: &impl ConnectionTrait, user_id: i32, token_id: i32) -> Result<Option<TokenRow>> {
    Ok(api_token::Entity::find()
        .filter(api_token::Column::Id.eq(token_id))
        .filter(api_token::Column::UserId.eq(user_id))
        .filter(api_token::Column::Kind.eq(TokenKind::Api))
        .one(conn)
        .await?)
}

/// Deletes the user's token `token_id`; how many rows went (0 or 1).
pub async fn delete(conn: &impl ConnectionTrait, user_id: i32, token_id: i32) -> Result<u64> {
    Ok(api_token::Entity::delete_many()
        .filter(api_token::Column::Id.eq(token_id))
        .filter(api_token::Column::UserId.eq(user_id))
        .exec(conn)
        .await?
        .rows_affected)
}

/// Deletes every token of the user, login and API alike; how many went.
pub async fn delete_for_user(conn: &impl ConnectionTrait, user_id: i32) -> Result<u64> {
    Ok(api_token::Entity::delete_many().filter(api_token::Column::UserId.eq(user_id)).exec(conn).await?.rows_affected)
}

/// The token whose secret hashes to `token_hash`.
pub async fn by_hash(conn: &impl ConnectionTrait, token_hash: &str) -> Result<Option<TokenRow>> {
    Ok(api_token::Entity::find().filter(api_token::Column::TokenHash.eq(token_hash)).one(conn).await?)
}

/// Sets the token's `last_used_at` to `now` unless it was set less than `every_ms` ago. The
/// condition is in the UPDATE, so simultaneous requests write once between them.
pub async fn touch(conn: &impl ConnectionTrait, token_id: i32, now: i64, every_ms: i64) -> Result<()> {
    api_token::Entity::update_many()
        .col_expr(api_token::Column::LastUsedAt, sea_orm::sea_query::Expr::value(now))
        .filter(api_token::Column::Id.eq(token_id))
        .filter(
            Condition::any()
                .add(api_token::Column::LastUsedAt.is_null())
                .add(api_token::Column::LastUsedAt.lte(now - every_ms)),
        )
        .exec(conn)
        .await?;
    Ok(())
}
