//! A fresh database per test: a temporary SQLite file by default, or a new database on the
//! PostgreSQL server named by TEST_DATABASE_URL (dropped afterwards).
//!
//!     url=$(ops/pg-test.sh start)
//!     TEST_DATABASE_URL=$url cargo nextest run -p service -p server -E 'kind(test)'
use std::fmt::Debug;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

/// An empty database of this test's own, not connected: hand [`EmptyDb::url`] to an application
/// that connects and migrates by itself. Removed when dropped.
pub struct EmptyDb {
    url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl EmptyDb {
    pub async fn new() -> Self {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(server) => {
                // An empty or non-PostgreSQL value is a mistake (say, `$(ops/pg-test.sh url)` when
                // the server is not running): fail rather than quietly test SQLite instead.
                assert!(
                    server.starts_with("postgres://") || server.starts_with("postgresql://"),
                    "TEST_DATABASE_URL must be a postgres:// URL (got {server:?}); unset it to test on SQLite"
                );
                let name = format!("test_{}", uuid::Uuid::new_v4().simple());
                let admin = Database::connect(&server).await.expect("connect to TEST_DATABASE_URL");
                admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
                let _ = admin.close().await;
                EmptyDb { url: with_database(&server, &name), _dir: None, pg: Some((server, name)) }
            }
            Err(_) => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}/test.sqlite?mode=rwc", dir.path().display());
                EmptyDb { url, _dir: Some(dir), pg: None }
            }
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }
}

impl Drop for EmptyDb {
    fn drop(&mut self) {
        if let Some((server, name)) = self.pg.take() {
            // FORCE ends this test's own connections (their pool lives on the test's runtime,
            // which is blocked here or shutting down, so closing them from this thread could
            // deadlock): drop the database from a runtime of our own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async {
                    if let Ok(admin) = Database::connect(&server).await {
                        let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                        let _ = admin.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// An [`EmptyDb`] connected and migrated by the production code path, so drift between the
/// migrations and the entities fails a test:
///
///     let db = TestDb::new(service::db::connect_and_migrate).await;
pub struct TestDb {
    conn: DatabaseConnection,
    // Dropped after `conn` (fields drop in order).
    db: EmptyDb,
}

impl TestDb {
    /// `connect` opens and migrates the database at the URL it is given.
    pub async fn new<E: Debug>(connect: impl AsyncFnOnce(&str) -> Result<DatabaseConnection, E>) -> Self {
        let db = EmptyDb::new().await;
        let conn = connect(db.url()).await.expect("connect to and migrate the test database");
        TestDb { conn, db }
    }

    pub fn conn(&self) -> DatabaseConnection {
        self.conn.clone()
    }

    /// The URL of this test's own database (to hand to a server under test).
    pub fn url(&self) -> &str {
        self.db.url()
    }

    pub fn is_postgres(&self) -> bool {
        self.db.is_postgres()
    }
}

/// The server URL with its database path replaced by `name` (the query string is kept).
pub fn with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (server, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).expect("TEST_DATABASE_URL is a postgres:// URL");
    let authority_end = base[scheme_end..].find('/').map(|i| scheme_end + i).unwrap_or(base.len());
    let mut url = format!("{}/{name}", &base[..authority_end]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn test_database_urls_keep_their_server_and_options() {
        assert_eq!(with_database("postgres://u@127.0.0.1:5/postgres", "t"), "postgres://u@127.0.0.1:5/t");
        assert_eq!(with_database("postgres://u@127.0.0.1:5", "t"), "postgres://u@127.0.0.1:5/t");
        assert_eq!(with_database("postgres://u:p@h/db?sslmode=disable", "t"), "postgres://u:p@h/t?sslmode=disable");
    }
}
