//! tower-sessions records in our own database (one store for SQLite and PostgreSQL; the
//! sqlx-based store crates pin another sqlx than sea-orm's). Its rows: [`crate::store::sessions`].
use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};

use crate::db::{DatabaseConnection, now_ms};
use crate::store::sessions::{self, SessionRow};

#[derive(Clone, Debug)]
pub struct DbSessionStore {
    db: DatabaseConnection,
}

impl DbSessionStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

fn to_row(r: &Record) -> session_store::Result<SessionRow> {
    let data = serde_json::to_string(&r.data).map_err(|e| session_store::Error::Encode(e.to_string()))?;
    // The login session it belongs to, in a column of its own so ending that deletes this.
    let login_id = r.data.get(super::sessions::LOGIN_ID_KEY).and_then(|v| v.as_str()).map(str::to_owned);
    Ok(SessionRow { id: r.id.to_string(), data, expires_at: (r.expiry_date.unix_timestamp_nanos() / 1_000_000) as i64, login_id })
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // A fresh id on the (astronomically unlikely) collision.
        while sessions::exists(&self.db, &record.id.to_string()).await.map_err(backend)? {
            record.id = Id::default();
        }
        sessions::insert(&self.db, to_row(record)?).await.map_err(backend)
    }

    /// Updates only: a record ended while its request ran is not written back.
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        sessions::update(&self.db, to_row(record)?).await.map_err(backend)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let Some(row) = sessions::live(&self.db, &id.to_string(), now_ms()).await.map_err(backend)? else {
            return Ok(None);
        };
        let data = serde_json::from_str(&row.data).map_err(|e| session_store::Error::Decode(e.to_string()))?;
        let expiry_date = time::OffsetDateTime::from_unix_timestamp_nanos(row.expires_at as i128 * 1_000_000)
            .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        Ok(Some(Record { id: *id, data, expiry_date }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        sessions::delete(&self.db, &id.to_string()).await.map_err(backend)
    }
}

#[async_trait]
impl ExpiredDeletion for DbSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        sessions::delete_expired(&self.db, now_ms()).await.map_err(backend)?;
        super::sessions::prune_orphans(&self.db).await.map(drop).map_err(backend)
    }
}
