//! The `sessions` table: tower-sessions records (see [`crate::accounts::session_store`]), each
//! its id, its data as JSON and its expiry in ms since the epoch.
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use crate::db::entity::session;
use crate::Result;

/// One stored session.
pub struct SessionRow {
    pub id: String,
    pub data: String,
    pub expires_at: i64,
}

fn active(r: SessionRow) -> session::ActiveModel {
    session::ActiveModel { id: Set(r.id), data: Set(r.data), expires_at: Set(r.expires_at) }
}

/// Whether a session with this id is stored (expired or not).
pub async fn exists(conn: &impl ConnectionTrait, id: &str) -> Result<bool> {
    Ok(session::Entity::find_by_id(id).one(conn).await?.is_some())
}

pub async fn insert(conn: &impl ConnectionTrait, row: SessionRow) -> Result<()> {
    session::Entity::insert(active(row)).exec(conn).await?;
    Ok(())
}

/// Inserts the session, or replaces the data and expiry of the one with its id.
pub async fn upsert(conn: &impl ConnectionTrait, row: SessionRow) -> Result<()> {
    session::Entity::insert(active(row))
        .on_conflict(
            OnConflict::column(session::Column::Id)
                .update_columns([session::Column::Data, session::Column::ExpiresAt])
                .to_owned(),
        )
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
        .map(|s| SessionRow { id: s.id, data: s.data, expires_at: s.expires_at }))
}

pub async fn delete(conn: &impl ConnectionTrait, id: &str) -> Result<()> {
    session::Entity::delete_by_id(id).exec(conn).await?;
    Ok(())
}

/// Deletes the sessions that expired by `now`.
pub async fn delete_expired(conn: &impl ConnectionTrait, now: i64) -> Result<()> {
    session::Entity::delete_many().filter(session::Column::ExpiresAt.lte(now)).exec(conn).await?;
    Ok(())
}
