//! The database session store behind tower-sessions: a login survives a restart of the app (the
//! record is in the database), ends at its expiry, and logging out removes it.
use std::collections::HashMap;

use sea_orm::{EntityTrait, PaginatorTrait};
use service::accounts::session_store::DbSessionStore;
use service::db::entity::session;
use time::{Duration, OffsetDateTime};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{ExpiredDeletion, SessionStore};
use vmw_test_support::TestDb;

fn record(user_id: i64, expires_in: Duration) -> Record {
    let mut data = HashMap::new();
    data.insert("user_id".to_owned(), serde_json::json!(user_id));
    data.insert("auth_version".to_owned(), serde_json::json!(1));
    // Millisecond precision is what the store keeps.
    let expiry = OffsetDateTime::now_utc() + expires_in;
    let expiry_date = expiry.replace_nanosecond(expiry.millisecond() as u32 * 1_000_000).unwrap();
    Record { id: Id::default(), data, expiry_date }
}

async fn store() -> (TestDb, DbSessionStore) {
    let db = TestDb::new(service::db::connect_and_migrate).await;
    let store = DbSessionStore::new(db.conn());
    (db, store)
}

/// A new session of `user_id`, created through the store.
async fn stored(store: &DbSessionStore, user_id: i64, expires_in: Duration) -> Record {
    let mut rec = record(user_id, expires_in);
    store.create(&mut rec).await.unwrap();
    rec
}

#[tokio::test]
async fn a_session_is_stored_loaded_updated_and_deleted() {
    let (db, store) = store().await;
    let mut rec = stored(&store, 7, Duration::hours(1)).await;

    // Another store on the same database (another app instance, or after a restart) sees it.
    let other = DbSessionStore::new(db.conn());
    assert_eq!(other.load(&rec.id).await.unwrap(), Some(rec.clone()));

    rec.data.insert("flash".into(), serde_json::json!("Password changed."));
    rec.expiry_date += Duration::hours(1);
    store.save(&rec).await.unwrap();
    assert_eq!(other.load(&rec.id).await.unwrap(), Some(rec.clone()));

    store.delete(&rec.id).await.unwrap();
    assert_eq!(other.load(&rec.id).await.unwrap(), None, "logged out");
    store.delete(&rec.id).await.unwrap();
    assert_eq!(store.load(&Id::default()).await.unwrap(), None);

    // save() of a record that is gone (ended from another browser while its request ran):
    // it stays gone. (tower-sessions creates new and cycled records through create().)
    store.save(&rec).await.unwrap();
    assert_eq!(store.load(&rec.id).await.unwrap(), None, "an ended session is not brought back");
}

#[tokio::test]
async fn a_colliding_id_gets_a_new_one_and_leaves_the_old_session_alone() {
    let (_db, store) = store().await;
    let first = stored(&store, 1, Duration::hours(1)).await;
    let mut second = record(2, Duration::hours(1));
    second.id = first.id;
    store.create(&mut second).await.unwrap();
    assert_ne!(second.id, first.id);
    assert_eq!(store.load(&first.id).await.unwrap(), Some(first));
    assert_eq!(store.load(&second.id).await.unwrap(), Some(second));
}

#[tokio::test]
async fn expired_sessions_do_not_load_and_are_swept() {
    let (db, store) = store().await;
    let old = stored(&store, 1, Duration::seconds(-5)).await;
    let live = stored(&store, 2, Duration::hours(1)).await;
    assert_eq!(store.load(&old.id).await.unwrap(), None, "an expired login does not count");
    assert_eq!(session::Entity::find().count(&db.conn()).await.unwrap(), 2);

    store.delete_expired().await.unwrap();
    let left: Vec<String> = session::Entity::find().all(&db.conn()).await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(left, vec![live.id.to_string()]);
    assert_eq!(store.load(&live.id).await.unwrap(), Some(live));
}
