//! The service's own state through the backup repository: the database (SQLite with
//! `VACUUM INTO`, or PostgreSQL with pg_dump/pg_restore when TEST_DATABASE_URL is set) and the
//! `tls` folder backed up with real restic into a local repository, then restored into an
//! empty database and a fresh data dir, where the account logs in with its old password.
use std::os::unix::fs::PermissionsExt;

use service::accounts::{Accounts, NewUser};
use service::backup::{RepoSettings, Restic};
use service::state_backup::{back_up_state, latest_state_snapshot, restore_state, Database, StateError};
use vmw_test_support::{EmptyDb, TestDb};

mod support;
use support::backups::restic_installed;

async fn repository(dir: &std::path::Path) -> Restic {
    let pw = dir.join("password");
    std::fs::write(&pw, "state backup test password").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let restic = Restic::new(RepoSettings::new(dir.join("repo").display().to_string(), pw, dir.join("cache"))).unwrap();
    restic.init_if_missing().await.unwrap();
    restic
}

#[tokio::test]
async fn a_restored_state_brings_back_accounts_and_secrets() {
    if !restic_installed("a_restored_state_brings_back_accounts_and_secrets") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let restic = repository(work.path()).await;

    // The live node: an account, a secret in its tls folder.
    let src = TestDb::new(service::db::connect_and_migrate).await;
    let accounts = Accounts::new(src.conn());
    let password = "correct horse battery";
    accounts
        .register(NewUser { email: "ada@example.com".into(), username: "ada".into(), password: password.into() })
        .await
        .unwrap();
    let data = work.path().join("data");
    std::fs::create_dir_all(data.join("tls/local-ca")).unwrap();
    std::fs::write(data.join("tls/local-ca/key.pem"), "PRIVATE KEY").unwrap();
    std::fs::set_permissions(data.join("tls/local-ca/key.pem"), std::fs::Permissions::from_mode(0o600)).unwrap();

    let database = Database::parse(src.url()).unwrap();
    let sum = back_up_state(&restic, &src.conn(), &database, &data, "node-1").await.unwrap();
    let newest = latest_state_snapshot(&restic).await.unwrap().expect("a state snapshot");
    assert!(newest.id.starts_with(&sum.snapshot_id), "{} {}", newest.id, sum.snapshot_id);
    assert!(std::fs::read_dir(data.join("backups/staging")).unwrap().next().is_none(), "the staging folder is removed");

    // A fresh node: an empty database, an empty data dir.
    let dst = EmptyDb::new().await;
    let fresh = work.path().join("fresh");
    let target = Database::parse(dst.url()).unwrap();
    let restored = restore_state(&restic, None, &target, false, &fresh, false).await.unwrap();
    assert_eq!(restored.snapshot.id, newest.id);
    let key = fresh.join("tls/local-ca/key.pem");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "PRIVATE KEY");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600, "a secret keeps its mode");

    let conn = service::db::connect_and_migrate(dst.url()).await.unwrap();
    let user = Accounts::new(conn.clone()).authenticate("ada", password, None).await.expect("the old password logs in");
    assert_eq!(user.username, "ada");

    // A database that holds accounts is not overwritten (unless forced).
    assert!(Database::holds_accounts(&conn).await);
    let again = restore_state(&restic, None, &target, true, &fresh, false).await;
    assert!(matches!(again, Err(StateError::NotEmpty(_))), "{again:?}");
}
