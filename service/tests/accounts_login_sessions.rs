//! Logged-in browser sessions as their owner sees them (issue #32, item 3): listed with when,
//! where from and which browser, the calling one marked; ended one by one or all but the
//! current, which deletes their tower-sessions records (the cookie fails next time); nobody
//! else's visible or endable; last seen written at most once a minute; orphans pruned; a
//! disabled or deleted account's sessions gone. SQLite, or PostgreSQL with TEST_DATABASE_URL.
use std::collections::HashMap;
use std::net::IpAddr;

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use service::Error;
use service::accounts::session_store::DbSessionStore;
use service::accounts::sessions::LOGIN_ID_KEY;
use service::accounts::{Accounts, Actor, AsActor, NewUser, UserView};
use service::db::entity::{login_session, session};
use time::{Duration, OffsetDateTime};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{ExpiredDeletion, SessionStore};
use vmw_test_support::TestDb;

const FIREFOX_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
const CHROME_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

async fn setup() -> (TestDb, Accounts, DbSessionStore) {
    let db = TestDb::new(service::db::connect_and_migrate).await;
    let (acc, store) = (Accounts::new(db.conn()), DbSessionStore::new(db.conn()));
    (db, acc, store)
}

async fn user(acc: &Accounts, name: &str) -> UserView {
    acc.register(NewUser { email: format!("{name}@example.com"), username: name.into(), password: "correct horse battery".into() })
        .await
        .unwrap()
}

/// A browser logging in: its login session and the tower-sessions record naming it.
async fn log_in(acc: &Accounts, store: &DbSessionStore, u: &UserView, from: &str, ua: &str) -> (String, Id) {
    let lsid = acc.start_session(u.id, ip(from), Some(ua)).await.unwrap();
    let mut data = HashMap::new();
    data.insert("uid".to_owned(), serde_json::json!(u.id));
    data.insert(LOGIN_ID_KEY.to_owned(), serde_json::json!(lsid));
    let mut rec = Record { id: Id::default(), data, expiry_date: OffsetDateTime::now_utc() + Duration::days(7) };
    store.create(&mut rec).await.unwrap();
    (lsid, rec.id)
}

#[tokio::test]
async fn sessions_are_listed_with_the_current_one_marked_and_one_ended_loses_its_record() {
    let (_db, acc, store) = setup().await;
    let ann = user(&acc, "ann").await;
    let bob = user(&acc, "bob").await;
    let (laptop, laptop_rec) = log_in(&acc, &store, &ann, "198.51.100.7", FIREFOX_LINUX).await;
    let (phone, phone_rec) = log_in(&acc, &store, &ann, "2001:db8::1", CHROME_MAC).await;

    let list = acc.list_sessions(&ann.actor(), Some(&laptop)).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|s| s.current).map(|s| s.id.as_str()).collect::<Vec<_>>(), vec![laptop.as_str()]);
    let l = list.iter().find(|s| s.id == laptop).unwrap();
    assert_eq!((l.browser.as_str(), l.client_ip.as_deref()), ("Firefox on Linux", Some("198.51.100.7")));
    let p = list.iter().find(|s| s.id == phone).unwrap();
    assert_eq!((p.browser.as_str(), p.client_ip.as_deref()), ("Chrome on Mac OSX", Some("2001:db8::1")));
    assert!(p.created_at > 0 && p.last_seen_at >= p.created_at);
    assert!(list.iter().all(|s| s.id != laptop_rec.to_string() && s.id != phone_rec.to_string()), "the cookie value is never shown");

    // Another account sees none of them and cannot end them.
    assert!(acc.list_sessions(&bob.actor(), None).await.unwrap().is_empty());
    assert!(matches!(acc.end_session(&bob.actor(), &phone).await, Err(Error::NotFound(_))));
    assert_eq!(acc.end_sessions(&bob.actor(), None).await.unwrap(), 0);
    assert!(store.load(&phone_rec).await.unwrap().is_some());

    acc.end_session(&ann.actor(), &phone).await.unwrap();
    assert_eq!(store.load(&phone_rec).await.unwrap(), None, "its cookie no longer loads a session");
    assert!(store.load(&laptop_rec).await.unwrap().is_some());
    let left = acc.list_sessions(&ann.actor(), Some(&laptop)).await.unwrap();
    assert_eq!(left.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), vec![laptop.as_str()]);
    assert!(matches!(acc.end_session(&ann.actor(), &phone).await, Err(Error::NotFound(_))), "ended once");
}

#[tokio::test]
async fn all_others_keeps_the_current_one_and_all_ends_every_one() {
    let (_db, acc, store) = setup().await;
    let ann = user(&acc, "ann").await;
    let bob = user(&acc, "bob").await;
    let (here, here_rec) = log_in(&acc, &store, &ann, "127.0.0.1", FIREFOX_LINUX).await;
    let (_, a) = log_in(&acc, &store, &ann, "127.0.0.1", CHROME_MAC).await;
    let (_, b) = log_in(&acc, &store, &ann, "127.0.0.1", CHROME_MAC).await;
    let (_, bobs) = log_in(&acc, &store, &bob, "127.0.0.1", CHROME_MAC).await;

    assert_eq!(acc.end_sessions(&ann.actor(), Some(&here)).await.unwrap(), 2);
    assert_eq!(store.load(&a).await.unwrap(), None);
    assert_eq!(store.load(&b).await.unwrap(), None);
    assert!(store.load(&here_rec).await.unwrap().is_some());
    assert_eq!(acc.list_sessions(&ann.actor(), Some(&here)).await.unwrap().len(), 1);

    assert_eq!(acc.end_sessions(&ann.actor(), None).await.unwrap(), 1, "a bearer-token caller has no current one: all");
    assert_eq!(store.load(&here_rec).await.unwrap(), None);
    assert!(acc.list_sessions(&ann.actor(), None).await.unwrap().is_empty());
    assert!(store.load(&bobs).await.unwrap().is_some(), "another account's sessions are untouched");
}

#[tokio::test]
async fn last_seen_is_written_at_most_once_a_minute() {
    let (db, acc, store) = setup().await;
    let ann = user(&acc, "ann").await;
    let (lsid, _) = log_in(&acc, &store, &ann, "198.51.100.7", FIREFOX_LINUX).await;
    assert!(!acc.session_seen(&lsid, ip("198.51.100.8")).await.unwrap(), "seen just now: no write");
    let row = || async { login_session::Entity::find_by_id(lsid.clone()).one(&db.conn()).await.unwrap().unwrap() };
    let before = row().await;
    assert_eq!(before.client_ip.as_deref(), Some("198.51.100.7"));

    let now = service::db::now_ms();
    let store_conn = db.conn();
    use service::store::login_sessions::seen;
    assert!(!seen(&store_conn, &lsid, Some("198.51.100.8".into()), now + 59_000, 60_000).await.unwrap());
    assert!(seen(&store_conn, &lsid, Some("198.51.100.8".into()), now + 61_000, 60_000).await.unwrap(), "a minute later: written");
    let after = row().await;
    assert_eq!((after.last_seen_at, after.client_ip.as_deref()), (now + 61_000, Some("198.51.100.8")));
    assert_eq!(after.created_at, before.created_at);
    assert!(!seen(&store_conn, &lsid, None, now + 62_000, 60_000).await.unwrap(), "and not again for a minute");
}

#[tokio::test]
async fn expired_and_logged_out_sessions_are_not_listed_and_are_pruned() {
    let (db, acc, store) = setup().await;
    let ann = user(&acc, "ann").await;
    let (live, _) = log_in(&acc, &store, &ann, "127.0.0.1", FIREFOX_LINUX).await;
    let (gone, gone_rec) = log_in(&acc, &store, &ann, "127.0.0.1", FIREFOX_LINUX).await;
    // Logged out as tower-sessions does it (the record only), and one about to be written.
    store.delete(&gone_rec).await.unwrap();
    let fresh = acc.start_session(ann.id, None, None).await.unwrap();
    let ids = |v: Vec<service::accounts::SessionView>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(acc.list_sessions(&ann.actor(), None).await.unwrap()), vec![live.clone()]);

    // Old enough to be past the grace a login gets for writing its record.
    login_session::Entity::update_many()
        .col_expr(login_session::Column::CreatedAt, sea_orm::sea_query::Expr::value(1_000i64))
        .filter(login_session::Column::Id.is_in([live.clone(), gone.clone()]))
        .exec(&db.conn())
        .await
        .unwrap();
    store.delete_expired().await.unwrap();
    let mut left: Vec<String> = login_session::Entity::find().all(&db.conn()).await.unwrap().into_iter().map(|r| r.id).collect();
    left.sort();
    let mut want = vec![live, fresh];
    want.sort();
    assert_eq!(left, want, "the orphan is pruned; the live one and the one being written stay");
}

#[tokio::test]
async fn a_disabled_or_deleted_account_loses_its_sessions() {
    let (db, acc, store) = setup().await;
    let ann = user(&acc, "ann").await;
    let bob = user(&acc, "bob").await;
    let (_, ann_rec) = log_in(&acc, &store, &ann, "127.0.0.1", FIREFOX_LINUX).await;
    let (_, bob_rec) = log_in(&acc, &store, &bob, "127.0.0.1", FIREFOX_LINUX).await;
    let admin = Actor { user_id: -1, is_admin: true };
    acc.set_disabled(&admin, ann.id, true).await.unwrap();
    assert_eq!(store.load(&ann_rec).await.unwrap(), None);
    assert!(acc.list_sessions(&ann.actor(), None).await.unwrap().is_empty());

    acc.delete_user(&bob.actor(), "correct horse battery").await.unwrap();
    assert_eq!(store.load(&bob_rec).await.unwrap(), None);
    let rows = login_session::Entity::find().filter(login_session::Column::UserId.eq(bob.id)).count(&db.conn()).await.unwrap();
    assert_eq!(rows, 0);
    assert_eq!(session::Entity::find().count(&db.conn()).await.unwrap(), 0);
}
