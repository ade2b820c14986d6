//! The `login_sessions` table: one row per logged-in browser session (see
//! [`crate::accounts::sessions`]). A row is live while a session record of
//! [`super::sessions`] names it; ending one deletes both in one transaction.
use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set, TransactionTrait};

use super::sessions;
use crate::db::entity::{login_session, session};
use crate::Result;

pub use login_session::Model as LoginSessionRow;

pub async fn insert(conn: &impl ConnectionTrait, row: LoginSessionRow) -> Result<()> {
    let row = login_session::ActiveModel {
        id: Set(row.id),
        user_id: Set(row.user_id),
        created_at: Set(row.created_at),
        last_seen_at: Set(row.last_seen_at),
        client_ip: Set(row.client_ip),
        user_agent: Set(row.user_agent),
    };
    login_session::Entity::insert(row).exec(conn).await?;
    Ok(())
}

/// Sets last seen (and the address it was seen from) unless it was set less than `every_ms`
/// ago: one write a minute per session at most, however many requests it makes.
pub async fn seen(conn: &impl ConnectionTrait, id: &str, client_ip: Option<String>, now: i64, every_ms: i64) -> Result<bool> {
    let r = login_session::Entity::update_many()
        .col_expr(login_session::Column::LastSeenAt, now.into())
        .col_expr(login_session::Column::ClientIp, client_ip.into())
        .filter(login_session::Column::Id.eq(id))
        .filter(login_session::Column::LastSeenAt.lte(now - every_ms))
        .exec(conn)
        .await?;
    Ok(r.rows_affected > 0)
}

/// The user's login sessions that still have a live session record at `now`, newest first.
pub async fn live_for_user(conn: &impl ConnectionTrait, user_id: i32, now: i64) -> Result<Vec<LoginSessionRow>> {
    let rows = login_session::Entity::find()
        .filter(login_session::Column::UserId.eq(user_id))
        .order_by_desc(login_session::Column::CreatedAt)
        .all(conn)
        .await?;
    let live = sessions::live_login_ids(conn, rows.iter().map(|r| r.id.clone()).collect(), now).await?;
    Ok(rows.into_iter().filter(|r| live.contains(&r.id)).collect())
}

/// Ends the user's login session `id`: deletes it and its session record. False: the user has
/// no such session.
pub async fn end(db: &DatabaseConnection, user_id: i32, id: &str) -> Result<bool> {
    let txn = db.begin().await?;
    let r = login_session::Entity::delete_many()
        .filter(login_session::Column::UserId.eq(user_id))
        .filter(login_session::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    if r.rows_affected == 0 {
        return Ok(false);
    }
    sessions::delete_for_logins(&txn, vec![id.to_owned()]).await?;
    txn.commit().await?;
    Ok(true)
}

/// Ends every login session of the user but `except`; how many there were.
pub async fn end_all(db: &DatabaseConnection, user_id: i32, except: Option<&str>) -> Result<u64> {
    let txn = db.begin().await?;
    let mut q = login_session::Entity::find().filter(login_session::Column::UserId.eq(user_id));
    if let Some(keep) = except {
        q = q.filter(login_session::Column::Id.ne(keep));
    }
    let ids: Vec<String> = q.all(&txn).await?.into_iter().map(|r| r.id).collect();
    if ids.is_empty() {
        return Ok(0);
    }
    sessions::delete_for_logins(&txn, ids.clone()).await?;
    let n = login_session::Entity::delete_many().filter(login_session::Column::Id.is_in(ids)).exec(&txn).await?.rows_affected;
    txn.commit().await?;
    Ok(n)
}

/// Deletes login sessions created before `created_before` that no session record names any
/// more (expired, or logged out elsewhere). The age guard spares a login whose record is
/// written at the end of its request.
pub async fn prune_orphans(conn: &impl ConnectionTrait, created_before: i64) -> Result<u64> {
    let named = Query::select()
        .column(session::Column::LoginId)
        .from(session::Entity)
        .and_where(session::Column::LoginId.is_not_null())
        .to_owned();
    Ok(login_session::Entity::delete_many()
        .filter(login_session::Column::CreatedAt.lt(created_before))
        .filter(login_session::Column::Id.not_in_subquery(named))
        .exec(conn)
        .await?
        .rows_affected)
}

/// Deletes every login session of the user and their records (with the account).
pub async fn delete_for_user(conn: &impl ConnectionTrait, user_id: i32) -> Result<()> {
    let ids: Vec<String> = login_session::Entity::find()
        .filter(login_session::Column::UserId.eq(user_id))
        .all(conn)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    sessions::delete_for_logins(conn, ids).await?;
    login_session::Entity::delete_many().filter(login_session::Column::UserId.eq(user_id)).exec(conn).await?;
    Ok(())
}
