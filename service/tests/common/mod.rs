//! A fresh database per test: a temporary SQLite file by default, or a new database on the
//! PostgreSQL server named by TEST_DATABASE_URL (dropped afterwards). Migrations always run,
//! so drift between migrations and entities fails a test.
//!
//!     ops/pg-test.sh start
//!     TEST_DATABASE_URL=$(ops/pg-test.sh url) cargo test -p service
#![allow(dead_code)]

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

pub struct TestDb {
    conn: DatabaseConnection,
    url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
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

impl TestDb {
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
                admin.close().await.unwrap();
                let url = with_database(&server, &name);
                let conn = service::db::connect_and_migrate(&url).await.unwrap();
                TestDb { conn, url, _dir: None, pg: Some((server, name)) }
            }
            Err(_) => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}/test.sqlite?mode=rwc", dir.path().display());
                let conn = service::db::connect_and_migrate(&url).await.unwrap();
                TestDb { conn, url, _dir: Some(dir), pg: None }
            }
        }
    }

    pub fn conn(&self) -> DatabaseConnection {
        self.conn.clone()
    }

    /// The URL of this test's own database (to hand to a server under test).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((server, name)) = self.pg.take() {
            // FORCE ends this test's own connections (their pool lives on the test's runtime,
            // which is blocked here, so closing them from this thread could deadlock).
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
