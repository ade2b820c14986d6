//! Database access: sea-orm entities and connection set-up (SQLite or PostgreSQL).
pub mod entity;

use migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DbErr};
pub use sea_orm::DatabaseConnection;

/// Milliseconds since the unix epoch: the one timestamp format in the schema.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A unique constraint refused the write (a taken slug, email, port...).
pub fn is_unique_violation(e: &sea_orm::DbErr) -> bool {
    matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}

/// Connects and applies every pending migration. `sqlite://path?mode=rwc` creates the file.
pub async fn connect_and_migrate(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false);
    if url.starts_with("sqlite:") {
        // SQLite allows one writer; a small pool avoids "database is locked" storms.
        opts.max_connections(4);
    } else {
        opts.max_connections(16);
    }
    let db = Database::connect(opts).await?;
    if db.get_database_backend() == sea_orm::DatabaseBackend::Sqlite {
        use sea_orm::ConnectionTrait;
        db.execute_unprepared("PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;")
            .await?;
    }
    Migrator::up(&db, None).await?;
    Ok(db)
}
