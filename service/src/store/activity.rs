//! The `account_events` table: an account's activity (see [`crate::accounts::activity`]). At
//! most [`ACTIVITY_KEPT`] rows per user are kept (older ones go at the next write), so failed
//! guesses cannot grow it.
use std::net::IpAddr;

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use vmw_types::{AccountEventKind, AccountEventView};

use crate::db::entity::account_event;
use crate::db::now_ms;
use crate::Result;

/// Entries kept per user.
pub const ACTIVITY_KEPT: u64 = 100;

impl From<account_event::Model> for AccountEventView {
    fn from(m: account_event::Model) -> Self {
        Self { id: m.id, kind: m.kind, client_ip: m.client_ip, detail: m.detail, created_at: m.created_at }
    }
}

/// Records one entry for `user_id` and drops the user's entries beyond the newest [`ACTIVITY_KEPT`].
pub async fn record(
    conn: &impl ConnectionTrait,
    user_id: i32,
    kind: AccountEventKind,
    client: Option<IpAddr>,
    detail: Option<String>,
) -> Result<()> {
    let row = account_event::ActiveModel {
        user_id: Set(user_id),
        kind: Set(kind),
        client_ip: Set(client.map(|ip| ip.to_canonical().to_string())),
        detail: Set(detail),
        created_at: Set(now_ms()),
        ..Default::default()
    };
    account_event::Entity::insert(row).exec(conn).await?;
    let oldest_kept: Option<i32> = account_event::Entity::find()
        .select_only()
        .column(account_event::Column::Id)
        .filter(account_event::Column::UserId.eq(user_id))
        .order_by_desc(account_event::Column::Id)
        .offset(ACTIVITY_KEPT - 1)
        .limit(1)
        .into_tuple()
        .one(conn)
        .await?;
    if let Some(id) = oldest_kept {
        account_event::Entity::delete_many()
            .filter(account_event::Column::UserId.eq(user_id))
            .filter(account_event::Column::Id.lt(id))
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// The newest `limit` entries of `user_id`, newest first.
pub async fn newest(conn: &impl ConnectionTrait, user_id: i32, limit: u64) -> Result<Vec<AccountEventView>> {
    Ok(account_event::Entity::find()
        .filter(account_event::Column::UserId.eq(user_id))
        .order_by_desc(account_event::Column::Id)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// Deletes entries older than `before` (ms since the epoch), with the hosting events' retention.
pub async fn prune_before(conn: &impl ConnectionTrait, before: i64) -> Result<u64> {
    Ok(account_event::Entity::delete_many()
        .filter(account_event::Column::CreatedAt.lt(before))
        .exec(conn)
        .await?
        .rows_affected)
}

/// Deletes every entry of the user (with the account).
pub async fn delete_for_user(conn: &impl ConnectionTrait, user_id: i32) -> Result<()> {
    account_event::Entity::delete_many().filter(account_event::Column::UserId.eq(user_id)).exec(conn).await?;
    Ok(())
}
