//! The `sessions` table: tower-sessions records (see [`crate::accounts::session_store`]), each
//! its id, its data as JSON, its expiry in ms since the epoch and the login session
//! ([`super::login_sessions`]) it belongs to.
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Set};

use crate::db::entity::session;
use crate::Result;

/// One stored session.
pub struct SessionRow {
    pub id: String,
    pub data: String,
    pub expires_at: i64,
    /// The login session it belongs to (its data's `lsid`), if logged in.
    pub login_id: Option<String>,
}

fn active(r: SessionRow) -> session::ActiveModel {
    session::ActiveModel { id: Set(r.id), data: Set(r.data), expires_at: Set(r.expires_at), login_id: Set(r.login_id) }
}

/// Whether a session with this id is stored (expired or not).
pub async fn exists(conn: &impl ConnectionTrait, id: &str) -> Result<bool> {
    Ok(session::Entity::find_by_id(id).one(conn).await?.is_some())
}

pub async fn insert(conn: &impl ConnectionTrait, row: SessionRow) -> Result<()> {
    session::Entity::insert(active(row)).exec(conn).await?;
    Ok(())
}

/// Replaces the data, expiry and login of the session with its id. A session that is gone
/// (ended from another browser, or logged out, while this request ran) stays gone: an
/// update, never an insert, so a late save cannot bring an ended session back.
pub async fn update(conn: &impl ConnectionTrait, row: SessionRow) -> Result<()> {
    session::Entity::update_many()
        .col_expr(session::Column::Data, row.data.into())
        .col_expr(session::Column::ExpiresAt, row.expires_at.into())
        .col_expr(session::Column::LoginId, row.login_id.into())
        .filter(session::Column::Id.eq(row.id))
        .exec(conn)
        .await?;
    Ok(())
}

/// The session with this id unless it expired by `now`.
pub async fn live(conn: &impl ConnectionTrait, id: &str, now: i64) -> Result<Option<SessionRow>> {
    Ok(session::Entity::find_by_id(id)
        .filter(session::Column::ExpiresAt.gt(now))
        .one(conn)
        .await?
        .map(|s| SessionRow { id: s.id, data: s.data, expires_at: s.expires_at, login_id: s.login_id }))
}

/// Of these login ids, those with a session record that has not expired by `now`.
pub async fn live_login_ids(conn: &impl ConnectionTrait, login_ids: Vec<String>, now: i64) -> Result<Vec<String>> {
    if login_ids.is_empty() {
        return Ok(Vec::new());
    }
    let found: Vec<Option<String>> = session::Entity::find()
        .select_only()
        .column(session::Column::LoginId)
        .filter(session::Column::LoginId.is_in(login_ids))
        .filter(session::Column::ExpiresAt.gt(now))
        .into_tuple()
        .all(conn)
        .await?;
    Ok(found.into_iter().flatten().collect())
}

pub async fn delete(conn: &impl ConnectionTrait, id: &str) -> Result<()> {
    session::Entity::delete_by_id(id).exec(conn).await?;
    Ok(())
}

/// Deletes the session records of these login sessions (their cookies stop working).
pub async fn delete_for_logins(conn: &impl ConnectionTrait, login_ids: Vec<String>) -> Result<()> {
    if login_ids.is_empty() {
        return Ok(());
    }
    session::Entity::delete_many().filter(session::Column::LoginId.is_in(login_ids)).exec(conn).await?;
    Ok(())
}

/// Deletes the sessions that expired by `now`.
pub async fn delete_expired(conn: &impl ConnectionTrait, now: i64) -> Result<()> {
    session::Entity::delete_many().filter(session::Column::ExpiresAt.lte(now)).exec(conn).await?;
    Ok(())
}
