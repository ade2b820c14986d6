//! The `acme_challenges` table: HTTP-01 answers while an ACME order is validated. Any replica
//! may be asked (nginx picks one), so they live here, not in one process.
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use crate::Result;
use crate::db::entity::acme_challenge;
use crate::db::now_ms;

/// Serves `key_authorization` at `/.well-known/acme-challenge/{token}` from now on.
pub async fn publish(conn: &impl ConnectionTrait, token: &str, key_authorization: &str) -> Result<()> {
    let row = acme_challenge::ActiveModel {
        token: Set(token.to_owned()),
        key_authorization: Set(key_authorization.to_owned()),
        created_at: Set(now_ms()),
    };
    acme_challenge::Entity::insert(row)
        .on_conflict(
            OnConflict::column(acme_challenge::Column::Token)
                .update_columns([acme_challenge::Column::KeyAuthorization, acme_challenge::Column::CreatedAt])
                .to_owned(),
        )
        .exec(conn)
        .await?;
    Ok(())
}

/// The answer for `token`, if an order is waiting for it. Answers older than an hour are
/// gone (an order that took longer failed long ago).
pub async fn key_authorization(conn: &impl ConnectionTrait, token: &str) -> Result<Option<String>> {
    let row = acme_challenge::Entity::find_by_id(token.to_owned()).one(conn).await?;
    Ok(row.filter(|r| now_ms() - r.created_at < 3_600_000).map(|r| r.key_authorization))
}

pub async fn withdraw(conn: &impl ConnectionTrait, token: &str) -> Result<()> {
    acme_challenge::Entity::delete_by_id(token.to_owned()).exec(conn).await?;
    Ok(())
}

/// Drops answers older than an hour (an order that crashed mid-way left them).
pub async fn prune(conn: &impl ConnectionTrait) -> Result<u64> {
    let cutoff = now_ms() - 3_600_000;
    let res = acme_challenge::Entity::delete_many().filter(acme_challenge::Column::CreatedAt.lt(cutoff)).exec(conn).await?;
    Ok(res.rows_affected)
}
