//! A fresh database per test: a temporary SQLite file by default, or a new database on the
//! PostgreSQL server named by TEST_DATABASE_URL (dropped afterwards). Migrations always run,
//! so drift between migrations and entities fails a test.
#![allow(dead_code)]

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

pub struct TestDb {
    conn: DatabaseConnection,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn new() -> Self {
        match std::env::var("TEST_DATABASE_URL").ok().filter(|u| u.starts_with("postgres")) {
            Some(server) => {
                let name = format!("test_{}", uuid::Uuid::new_v4().simple());
                let admin = Database::connect(&server).await.expect("connect to TEST_DATABASE_URL");
                admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
                let url = match server.rsplit_once('/') {
                    Some((base, _)) => format!("{base}/{name}"),
                    None => panic!("TEST_DATABASE_URL needs a database path"),
                };
                let conn = service::db::connect_and_migrate(&url).await.unwrap();
                TestDb { conn, _dir: None, pg: Some((server, name)) }
            }
            None => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}/test.sqlite?mode=rwc", dir.path().display());
                let conn = service::db::connect_and_migrate(&url).await.unwrap();
                TestDb { conn, _dir: Some(dir), pg: None }
            }
        }
    }

    pub fn conn(&self) -> DatabaseConnection {
        self.conn.clone()
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
                    }
                });
            })
            .join();
        }
    }
}
