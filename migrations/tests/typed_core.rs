//! The typed-core migration keeps what an existing install holds: its hostings (with their
//! ids and id sequence), and turns the `_warm_pool` account's spares into spares of no one,
//! giving "the first account is an admin" back to the first real account.
use migrations::{Migrator, MigratorTrait};
use sea_orm_migration::sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use vmw_test_support::EmptyDb;

async fn db() -> (DatabaseConnection, EmptyDb) {
    let empty = EmptyDb::new().await;
    let db = Database::connect(empty.url()).await.unwrap();
    if !empty.is_postgres() {
        db.execute_unprepared("PRAGMA foreign_keys=ON").await.unwrap();
    }
    (db, empty)
}

async fn one_i64(db: &DatabaseConnection, sql: &str) -> Option<i64> {
    // One integer type for both databases (PostgreSQL answers INT4 for an INTEGER column).
    let sql = format!("SELECT CAST(({sql}) AS BIGINT)");
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap()?;
    row.try_get_by_index::<Option<i64>>(0).unwrap()
}

#[tokio::test]
async fn existing_hostings_are_kept_and_spares_leave_the_pool_account() {
    let (db, _empty) = db().await;
    Migrator::up(&db, Some(1)).await.unwrap();
    for sql in [
        "INSERT INTO nodes (name, libvirt_uri, memory_mib, created_at) VALUES ('local', 'qemu:///system', 1024, 1)",
        "INSERT INTO users (email, username, password_hash, is_admin, auth_version, created_at, updated_at) \
         VALUES ('warm-pool@vm-webhoster.invalid', '_warm_pool', '!', FALSE, 1, 1, 1)",
        "INSERT INTO users (email, username, password_hash, is_admin, auth_version, created_at, updated_at) \
         VALUES ('ann@example.com', 'ann', 'x', FALSE, 1, 1, 1)",
        "INSERT INTO hostings (user_id, node_id, slug, plan, state, operation, ssh_keys, created_at, updated_at) \
         VALUES (1, 1, 'spare-1', 'small', 'spare', NULL, '[]', 1, 1)",
        "INSERT INTO hostings (user_id, node_id, slug, plan, state, operation, http_port, ssh_keys, created_at, updated_at) \
         VALUES (2, 1, 'ann', 'small', 'running', NULL, 20000, '[\"k\"]', 1, 1)",
        "INSERT INTO hostings (user_id, node_id, slug, plan, state, operation, ssh_keys, created_at, updated_at) \
         VALUES (2, 1, 'gone', 'small', 'stopped', NULL, '[]', 1, 1)",
        "DELETE FROM hostings WHERE slug = 'gone'",
    ] {
        db.execute_unprepared(sql).await.unwrap();
    }
    Migrator::up(&db, None).await.unwrap();

    assert_eq!(one_i64(&db, "SELECT COUNT(*) FROM hostings").await, Some(2));
    assert_eq!(one_i64(&db, "SELECT user_id FROM hostings WHERE slug = 'spare-1'").await, None, "a spare is no one's");
    assert_eq!(one_i64(&db, "SELECT user_id FROM hostings WHERE slug = 'ann'").await, Some(2));
    assert_eq!(one_i64(&db, "SELECT COUNT(*) FROM hostings WHERE slug = 'spare-1' AND spare_tier = 'saved'").await, Some(1), "spares of before were saved ones");
    assert_eq!(one_i64(&db, "SELECT COUNT(*) FROM hostings WHERE spare_tier IS NULL").await, Some(1));
    assert_eq!(one_i64(&db, "SELECT http_port FROM hostings WHERE slug = 'ann'").await, Some(20000));
    assert_eq!(one_i64(&db, "SELECT COUNT(*) FROM users WHERE username = '_warm_pool'").await, Some(0));
    assert_eq!(one_i64(&db, "SELECT COUNT(*) FROM users WHERE username = 'ann' AND is_admin = TRUE").await, Some(1));
    // A new hosting never gets the id of one that existed (ids name domains and event trails).
    db.execute_unprepared(
        "INSERT INTO hostings (user_id, node_id, slug, plan, state, ssh_keys, created_at, updated_at) \
         VALUES (2, 1, 'new', 'small', 'queued', '[]', 1, 1)",
    )
    .await
    .unwrap();
    assert_eq!(one_i64(&db, "SELECT id FROM hostings WHERE slug = 'new'").await, Some(4));
    // Leases exist and start free.
    assert_eq!(one_i64(&db, "SELECT COUNT(*) FROM hostings WHERE lease_owner IS NULL AND lease_until IS NULL").await, Some(3));
}
