//! Accounts as a person meets them: sign-up, log-in, limits on guessing, password change,
//! account deletion and administrators. On a real database: a temporary SQLite file, or a
//! fresh PostgreSQL database when TEST_DATABASE_URL is set.
use std::net::IpAddr;

use sea_orm::{ActiveModelTrait, EntityTrait, PaginatorTrait, Set};
use service::Error;
use service::accounts::AsActor;
use service::accounts::{Accounts, Limits, NewUser, Options, Rate, UserView};
use service::db::entity::{api_token, node, ssh_key, user};
use vmw_test_support::TestDb;

const PASSWORD: &str = "correct horse battery";
const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@laptop";

fn new_user(email: &str, username: &str) -> NewUser {
    NewUser { email: email.into(), username: username.into(), password: PASSWORD.into() }
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

async fn setup() -> (TestDb, Accounts) {
    let db = TestDb::new(service::db::connect_and_migrate).await;
    let acc = Accounts::new(db.conn());
    (db, acc)
}

async fn user_count(db: &TestDb) -> u64 {
    user::Entity::find().count(&db.conn()).await.unwrap()
}

#[tokio::test]
async fn sign_up_stores_a_normalised_account_and_nobody_becomes_admin_by_being_first() {
    let (db, acc) = setup().await;
    assert!(!acc.any_admin().await.unwrap());
    let ann = acc.register(new_user("  Ann@Example.COM ", "Ann")).await.unwrap();
    assert_eq!((ann.email.as_str(), ann.username.as_str()), ("ann@example.com", "ann"));
    assert!(!ann.is_admin, "whoever reaches a fresh instance first does not own it");
    let bob = acc.register(new_user("bob@example.com", "bob")).await.unwrap();
    assert!(!bob.is_admin);
    assert!(!acc.any_admin().await.unwrap(), "grant-admin makes the first administrator");
    assert_eq!(acc.get_user(ann.id).await.unwrap(), ann);
    assert!(matches!(acc.get_user(bob.id + 100).await, Err(Error::NotFound(_))));

    // Only an Argon2id hash is at rest, never the password.
    let row = user::Entity::find_by_id(ann.id).one(&db.conn()).await.unwrap().unwrap();
    assert!(row.password_hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", row.password_hash);
    assert!(!row.password_hash.contains(PASSWORD));
}

#[tokio::test]
async fn a_second_sign_up_with_a_taken_email_or_username_is_refused_and_changes_nothing() {
    let (db, acc) = setup().await;
    let ann = acc.register(new_user("ann@example.com", "ann")).await.unwrap();
    let before = user::Entity::find_by_id(ann.id).one(&db.conn()).await.unwrap();

    let same_email = acc
        .register(NewUser { email: "ANN@example.com".into(), username: "ann2".into(), password: "another password".into() })
        .await;
    assert!(matches!(same_email, Err(Error::Conflict { field: Some("email"), .. })), "{same_email:?}");
    let same_name = acc
        .register(NewUser { email: "ann2@example.com".into(), username: "ANN".into(), password: "another password".into() })
        .await;
    assert!(matches!(same_name, Err(Error::Conflict { field: Some("username"), .. })), "{same_name:?}");

    assert_eq!(user_count(&db).await, 1);
    assert_eq!(user::Entity::find_by_id(ann.id).one(&db.conn()).await.unwrap(), before, "Ann's row is untouched");
    assert_eq!(acc.authenticate("ann", PASSWORD, None).await.unwrap().id, ann.id);
    assert!(matches!(acc.authenticate("ann", "another password", None).await, Err(Error::InvalidCredentials)));
}

#[tokio::test]
async fn simultaneous_sign_ups_with_one_email_end_with_one_account_and_a_conflict() {
    let (db, acc) = setup().await;
    for round in 0..3 {
        let email = format!("race{round}@example.com");
        let (a, b) = tokio::join!(
            acc.register(new_user(&email, &format!("first{round}"))),
            acc.register(new_user(&email, &format!("second{round}"))),
        );
        let (ok, err) = match (a, b) {
            (Ok(u), Err(e)) | (Err(e), Ok(u)) => (u, e),
            other => panic!("expected one account and one refusal, got {other:?}"),
        };
        assert_eq!(ok.email, email);
        assert!(matches!(err, Error::Conflict { field: Some("email"), .. }), "{err:?}");
    }
    assert_eq!(user_count(&db).await, 3);
}

#[tokio::test]
async fn with_first_user_admin_simultaneous_first_sign_ups_make_exactly_one_administrator() {
    let db = TestDb::new(service::db::connect_and_migrate).await;
    let acc = Accounts::with_options(db.conn(), Options { first_user_admin: true, ..Options::default() });
    let (a, b, c) = tokio::join!(
        acc.register(new_user("a@example.com", "amy")),
        acc.register(new_user("b@example.com", "ben")),
        acc.register(new_user("c@example.com", "cid")),
    );
    let mut users = vec![a.unwrap(), b.unwrap(), c.unwrap()];
    users.sort_by_key(|u| u.id);
    let admins: Vec<bool> = users.iter().map(|u| u.is_admin).collect();
    assert_eq!(admins, vec![true, false, false], "the earliest account, and only it");
    for u in &users {
        assert_eq!(acc.get_user(u.id).await.unwrap().is_admin, u.is_admin);
    }
}

#[tokio::test]
async fn the_first_invalid_field_is_the_one_reported_and_nothing_is_stored() {
    let (db, acc) = setup().await;
    let field = |r: Result<UserView, Error>| match r {
        Err(Error::Validation { field, .. }) => field,
        other => panic!("expected a validation error, got {other:?}"),
    };
    let reg = |e: &str, u: &str, p: &str| acc.register(NewUser { email: e.into(), username: u.into(), password: p.into() });
    assert_eq!(field(reg("not-an-email", "x", "short").await), "email");
    assert_eq!(field(reg("a@example.com", "x", "short").await), "username");
    assert_eq!(field(reg("a@example.com", "admin", PASSWORD).await), "username", "reserved");
    assert_eq!(field(reg("a@example.com", "alice", "short").await), "password");
    assert_eq!(field(reg("a@example.com", "alice", "zzzzzzzzzz").await), "password");
    assert_eq!(field(reg("a@example.com", "alicealice", "AliceAlice").await), "password", "the username as password");
    assert_eq!(field(reg("al@example.com", "alice", "AL@example.com").await), "password", "the email as password");
    assert_eq!(user_count(&db).await, 0);

    assert!(matches!(acc.email_available("nope").await, Err(Error::Validation { field: "email", .. })));
    assert!(matches!(acc.username_available("no").await, Err(Error::Validation { field: "username", .. })));
    acc.register(new_user("a@example.com", "alice")).await.unwrap();
    assert!(!acc.email_available(" A@Example.com").await.unwrap());
    assert!(!acc.username_available("Alice").await.unwrap());
    assert!(acc.email_available("b@example.com").await.unwrap());
    assert!(acc.username_available("bob").await.unwrap());
}

#[tokio::test]
async fn login_by_email_or_username_and_one_answer_for_unknown_accounts_and_wrong_passwords() {
    let (_db, acc) = setup().await;
    let cat = acc.register(new_user("cat@example.com", "cat")).await.unwrap();
    assert_eq!(acc.authenticate("cat", PASSWORD, None).await.unwrap(), cat);
    assert_eq!(acc.authenticate(" CAT@example.com ", PASSWORD, None).await.unwrap(), cat);
    assert!(matches!(acc.authenticate("cat", "Correct horse battery", None).await, Err(Error::InvalidCredentials)));
    assert!(matches!(acc.authenticate("nobody", PASSWORD, None).await, Err(Error::InvalidCredentials)));
    // An unknown account is checked against a dummy hash; its password never logs anyone in.
    assert!(matches!(
        acc.authenticate("nobody", "an unguessable dummy password", None).await,
        Err(Error::InvalidCredentials)
    ));
    assert!(matches!(acc.authenticate(&"x".repeat(300), PASSWORD, None).await, Err(Error::InvalidCredentials)));
    assert!(matches!(acc.authenticate("", PASSWORD, None).await, Err(Error::Validation { field: "login", .. })));
    assert!(matches!(acc.authenticate("cat", "", None).await, Err(Error::Validation { field: "password", .. })));
}

#[tokio::test]
async fn five_failed_logins_lock_the_account_even_for_the_right_password() {
    let (_db, acc) = setup().await;
    acc.register(new_user("cat@example.com", "cat")).await.unwrap();
    let dog = acc.register(new_user("dog@example.com", "dog")).await.unwrap();
    // Failures count per account, whether it was named by email or by username, from any address.
    for (i, login) in ["cat", "cat@example.com", "CAT", "cat", "cat@example.com"].iter().enumerate() {
        let r = acc.authenticate(login, "wrong password", ip(&format!("127.0.1.{i}"))).await;
        assert!(matches!(r, Err(Error::InvalidCredentials)), "attempt {i}: {r:?}");
    }
    let locked = acc.authenticate("cat", PASSWORD, ip("127.0.2.1")).await;
    match locked {
        Err(Error::RateLimited { retry_after_secs }) => assert!((1..=15 * 60).contains(&retry_after_secs), "{retry_after_secs}"),
        other => panic!("expected a lock-out, got {other:?}"),
    }
    assert_eq!(acc.authenticate("dog", PASSWORD, ip("127.0.1.0")).await.unwrap(), dog, "others are unaffected");
}

#[tokio::test]
async fn a_successful_login_clears_the_account_counter() {
    let (_db, acc) = setup().await;
    acc.register(new_user("eve@example.com", "eve")).await.unwrap();
    for _ in 0..3 {
        for _ in 0..4 {
            let _ = acc.authenticate("eve", "wrong password", None).await;
        }
        acc.authenticate("eve", PASSWORD, None).await.expect("four misses, then the right password");
    }
}

#[tokio::test]
async fn twenty_failures_from_one_address_block_that_address_for_every_account() {
    let (_db, acc) = setup().await;
    acc.register(new_user("dan@example.com", "dan")).await.unwrap();
    let attacker = ip("127.0.0.9");
    for i in 0..20 {
        let r = acc.authenticate(&format!("someone{i}"), "wrong password", attacker).await;
        assert!(matches!(r, Err(Error::InvalidCredentials)), "attempt {i}: {r:?}");
    }
    assert!(matches!(acc.authenticate("dan", PASSWORD, attacker).await, Err(Error::RateLimited { .. })));
    assert!(acc.authenticate("dan", PASSWORD, ip("127.0.0.10")).await.is_ok(), "other addresses still log in");
    assert!(acc.authenticate("dan", PASSWORD, None).await.is_ok());

    // An IPv6 client holds a whole /64: changing the last bits does not reset the count.
    for i in 0..20 {
        let _ = acc.authenticate(&format!("someone{i}"), "wrong password", ip(&format!("fd00:1:2:3::{i:x}"))).await;
    }
    assert!(matches!(acc.authenticate("dan", PASSWORD, ip("fd00:1:2:3::beef")).await, Err(Error::RateLimited { .. })));
    assert!(acc.authenticate("dan", PASSWORD, ip("fd00:1:2:4::1")).await.is_ok());
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_bumps_the_auth_version() {
    let (_db, acc) = setup().await;
    let fay = acc.register(new_user("fay@example.com", "fay")).await.unwrap();
    let actor = fay.actor();
    let v1 = acc.auth_version(fay.id).await.unwrap();

    let wrong = acc.change_password(&actor, "not my password", "a new password").await;
    assert!(matches!(wrong, Err(Error::Validation { field: "current_password", .. })), "{wrong:?}");
    let short = acc.change_password(&actor, PASSWORD, "short").await;
    assert!(matches!(short, Err(Error::Validation { field: "new_password", .. })), "{short:?}");
    let own_name = acc.change_password(&actor, PASSWORD, "fay@example.com").await;
    assert!(matches!(own_name, Err(Error::Validation { field: "new_password", .. })), "{own_name:?}");
    assert_eq!(acc.auth_version(fay.id).await.unwrap(), v1, "refused changes change nothing");
    assert!(acc.authenticate("fay", PASSWORD, None).await.is_ok());

    acc.change_password(&actor, PASSWORD, "a new password").await.unwrap();
    assert!(acc.auth_version(fay.id).await.unwrap() > v1, "older sessions are void");
    assert!(matches!(acc.authenticate("fay", PASSWORD, None).await, Err(Error::InvalidCredentials)));
    assert!(acc.authenticate("fay", "a new password", None).await.is_ok());
}

#[tokio::test]
async fn deleting_an_account_needs_the_password_and_no_hostings_left() {
    let (db, acc) = setup().await;
    let ivy = acc.register(new_user("ivy@example.com", "ivy")).await.unwrap();
    let actor = ivy.actor();
    acc.add_ssh_key(&actor, "laptop", KEY).await.unwrap();
    let (token, _) = acc.create_api_token(&actor, "ci", PASSWORD, None).await.unwrap();

    let wrong = acc.delete_user(&actor, "not my password").await;
    assert!(matches!(wrong, Err(Error::Validation { field: "password", .. })), "{wrong:?}");

    // A hosting row left behind keeps the account.
    let now = service::db::now_ms();
    let n = node::ActiveModel {
        name: Set("test-node".into()),
        libvirt_uri: Set("test:///default".into()),
        memory_mib: Set(1024),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(&db.conn())
    .await
    .unwrap();
    let store = service::hosting::Store::new(db.conn(), n.id, "test").unwrap();
    let new = service::hosting::store::NewHosting {
        user_id: ivy.id,
        slug: "ivy-site",
        plan: "small",
        keys_json: "[]",
        max_per_user: 3,
        fresh: service::hosting::CreateKind::Cold,
        capacity: &service::hosting::store::Capacity::unlimited(),
    };
    let (_h, lease, _) = store.insert_for_user(new, false).await.unwrap();
    let blocked = acc.delete_user(&actor, PASSWORD).await;
    assert!(matches!(blocked, Err(Error::Conflict { .. })), "{blocked:?}");
    assert!(acc.authenticate("ivy", PASSWORD, None).await.is_ok(), "the account is still there");
    assert_eq!(acc.list_ssh_keys(&actor).await.unwrap().len(), 1, "and its keys");

    store.delete(&lease).await.unwrap();
    acc.delete_user(&actor, PASSWORD).await.unwrap();
    assert!(matches!(acc.authenticate("ivy", PASSWORD, None).await, Err(Error::InvalidCredentials)));
    assert!(matches!(acc.user_for_token(&token).await, Err(Error::Unauthorized)));
    assert!(matches!(acc.get_user(ivy.id).await, Err(Error::NotFound(_))));
    assert_eq!(ssh_key::Entity::find().count(&db.conn()).await.unwrap(), 0);
    assert_eq!(api_token::Entity::find().count(&db.conn()).await.unwrap(), 0);
    assert!(acc.email_available("ivy@example.com").await.unwrap(), "the address can sign up again");
}

#[tokio::test]
async fn only_administrators_list_users_and_grant_admin_finds_accounts_by_email_or_username() {
    let (_db, acc) = setup().await;
    acc.register(new_user("root@example.com", "boss")).await.unwrap();
    let bob = acc.register(new_user("bob@example.com", "bob")).await.unwrap();
    let root = acc.set_admin("boss", true).await.unwrap();
    assert!(matches!(acc.list_users(&bob.actor()).await, Err(Error::Forbidden)));
    let all = acc.list_users(&root.actor()).await.unwrap();
    assert_eq!(all.iter().map(|u| u.id).collect::<Vec<_>>(), vec![root.id, bob.id]);

    assert!(acc.any_admin().await.unwrap());
    let promoted = acc.set_admin("BOB@example.com", true).await.unwrap();
    assert!(promoted.is_admin);
    assert!(acc.get_user(bob.id).await.unwrap().is_admin);
    assert_eq!(acc.list_users(&promoted.actor()).await.unwrap().len(), 2);
    assert!(!acc.set_admin("bob", false).await.unwrap().is_admin);
    assert!(matches!(acc.set_admin("nobody", true).await, Err(Error::NotFound(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_parallel_wrong_guesses_get_at_most_five_password_checks() {
    let (_db, acc) = setup().await;
    acc.register(new_user("gus@example.com", "gus")).await.unwrap();
    let checks_before = acc.hasher().checks_started();
    let guesses = (0..30).map(|i| {
        let acc = acc.clone();
        tokio::spawn(async move { acc.authenticate("gus", &format!("guess number {i}"), ip("198.51.100.20")).await })
    });
    let mut wrong = 0;
    let mut limited = 0;
    for g in guesses.collect::<Vec<_>>() {
        match g.await.unwrap() {
            Err(Error::InvalidCredentials) => wrong += 1,
            Err(Error::RateLimited { .. }) => limited += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(wrong <= 5, "{wrong} guesses were checked against the password (the limit is 5)");
    assert_eq!(wrong + limited, 30);
    assert!(acc.hasher().checks_started() - checks_before <= 5, "refused guesses cost no hash");
}

#[tokio::test]
async fn guesses_from_elsewhere_do_not_lock_the_owner_out_of_an_address_they_logged_in_from() {
    let (_db, acc) = setup().await;
    let hal = acc.register(new_user("hal@example.com", "hal")).await.unwrap();
    let home = ip("203.0.113.5");
    assert_eq!(acc.authenticate("hal", PASSWORD, home).await.unwrap().id, hal.id);
    // An attacker spreads guesses over many addresses until the account is locked for them.
    for i in 0..10 {
        let _ = acc.authenticate("hal", "wrong password", ip(&format!("192.0.2.{i}"))).await;
    }
    assert!(matches!(acc.authenticate("hal", PASSWORD, ip("192.0.2.99")).await, Err(Error::RateLimited { .. })), "locked for new addresses");
    // Hal, from home, still gets in: that address has an allowance of its own.
    assert_eq!(acc.authenticate("hal", PASSWORD, home).await.unwrap().id, hal.id);
    // And that allowance is limited too: five misses from home lock home.
    for _ in 0..5 {
        assert!(matches!(acc.authenticate("hal", "wrong password", home).await, Err(Error::InvalidCredentials)));
    }
    assert!(matches!(acc.authenticate("hal", PASSWORD, home).await, Err(Error::RateLimited { .. })));
}

#[tokio::test]
async fn sign_ups_are_limited_per_address_and_overall_but_refused_ones_do_not_count() {
    let db = TestDb::new(service::db::connect_and_migrate).await;
    let hour = std::time::Duration::from_secs(3600);
    let limits = Limits { signup_per_client: Rate::new(2, hour), signup_overall: Rate::new(4, hour), ..Limits::default() };
    let acc = Accounts::with_options(db.conn(), Options { limits, ..Options::default() });
    let a = ip("198.51.100.1");
    // A typo does not use up the allowance.
    let typo = acc.sign_up(NewUser { email: "nope".into(), username: "x1".into(), password: PASSWORD.into() }, a).await;
    assert!(matches!(typo, Err(Error::Validation { .. })), "{typo:?}");
    acc.sign_up(new_user("a1@example.com", "user-a1"), a).await.unwrap();
    acc.sign_up(new_user("a2@example.com", "user-a2"), a).await.unwrap();
    let third = acc.sign_up(new_user("a3@example.com", "user-a3"), a).await;
    assert!(matches!(third, Err(Error::RateLimited { retry_after_secs }) if retry_after_secs > 0), "{third:?}");
    assert!(acc.email_available("a3@example.com").await.unwrap(), "nothing was stored");
    // Another address has its own allowance, until the instance's is used up.
    acc.sign_up(new_user("b1@example.com", "user-b1"), ip("198.51.100.2")).await.unwrap();
    acc.sign_up(new_user("c1@example.com", "user-c1"), ip("198.51.100.3")).await.unwrap();
    let fifth = acc.sign_up(new_user("d1@example.com", "user-d1"), ip("198.51.100.4")).await;
    assert!(matches!(fifth, Err(Error::RateLimited { .. })), "the instance's limit: {fifth:?}");
}

#[tokio::test]
async fn a_disabled_account_cannot_log_in_or_use_its_tokens_until_enabled_and_only_admins_switch_it() {
    let (_db, acc) = setup().await;
    acc.register(new_user("root@example.com", "boss")).await.unwrap();
    let bob = acc.register(new_user("bob@example.com", "bob")).await.unwrap();
    let root = acc.set_admin("boss", true).await.unwrap();
    let (token, _) = acc.create_api_token(&bob.actor(), "ci", PASSWORD, None).await.unwrap();
    let version = acc.auth_version(bob.id).await.unwrap();

    assert!(matches!(acc.set_disabled(&bob.actor(), root.id, true).await, Err(Error::Forbidden)), "not by a plain user");
    assert!(
        matches!(acc.set_disabled(&root.actor(), root.id, true).await, Err(Error::Conflict { .. })),
        "an administrator cannot lock themselves out"
    );
    assert!(matches!(acc.set_disabled(&root.actor(), bob.id + 100, true).await, Err(Error::NotFound(_))));

    let off = acc.set_disabled(&root.actor(), bob.id, true).await.unwrap();
    assert!(off.disabled_at.is_some());
    assert!(acc.list_users(&root.actor()).await.unwrap().iter().any(|u| u.id == bob.id && u.disabled_at.is_some()));
    assert!(matches!(acc.authenticate("bob", PASSWORD, ip("192.0.2.1")).await, Err(Error::AccountDisabled)));
    assert!(
        matches!(acc.authenticate("bob", "a wrong guess!", ip("192.0.2.1")).await, Err(Error::InvalidCredentials)),
        "a wrong password learns nothing about the account"
    );
    assert!(matches!(acc.user_for_token(&token).await, Err(Error::Unauthorized)), "its token stops at once");
    assert_ne!(acc.auth_version(bob.id).await.unwrap(), version, "its sessions are void");

    let on = acc.set_disabled(&root.actor(), bob.id, false).await.unwrap();
    assert_eq!(on.disabled_at, None);
    assert_eq!(acc.authenticate("bob", PASSWORD, None).await.unwrap().id, bob.id, "enabled: logs in again");
    assert!(matches!(acc.user_for_token(&token).await, Err(Error::Unauthorized)), "old tokens stay revoked");
    let kinds: Vec<_> = acc.activity(&bob.actor(), 50).await.unwrap().into_iter().map(|e| e.kind).collect();
    use service::accounts::AccountEventKind as K;
    assert_eq!(kinds[..3], [K::LoginSucceeded, K::Enabled, K::LoginFailed], "{kinds:?}");
    assert!(kinds.contains(&K::Disabled));
}

#[tokio::test]
async fn account_activity_lists_logins_with_their_address_tokens_and_password_changes_to_its_owner_only() {
    use service::accounts::AccountEventKind as K;
    let (_db, acc) = setup().await;
    let ann = acc.register(new_user("ann@example.com", "ann")).await.unwrap();
    let bob = acc.register(new_user("bob@example.com", "bob")).await.unwrap();
    assert!(acc.authenticate("ann", "not the password", ip("198.51.100.7")).await.is_err());
    acc.authenticate("ann@example.com", PASSWORD, ip("::ffff:203.0.113.9")).await.unwrap();
    acc.authenticate("bob", PASSWORD, ip("192.0.2.44")).await.unwrap();
    let (_, t) = acc.create_api_token(&ann.actor(), "deploy", PASSWORD, None).await.unwrap();
    acc.revoke_api_token(&ann.actor(), t.id).await.unwrap();
    acc.change_password(&ann.actor(), PASSWORD, "a brand new password").await.unwrap();

    let mine = acc.activity(&ann.actor(), 50).await.unwrap();
    let summary: Vec<_> = mine.iter().map(|e| (e.kind, e.client_ip.as_deref(), e.detail.as_deref())).collect();
    assert_eq!(
        summary,
        vec![
            (K::PasswordChanged, None, None),
            (K::TokenRevoked, None, Some("deploy")),
            (K::TokenCreated, None, Some("deploy")),
            (K::LoginSucceeded, Some("203.0.113.9"), None),
            (K::LoginFailed, Some("198.51.100.7"), Some("wrong password")),
        ],
        "newest first"
    );
    assert!(mine.windows(2).all(|w| w[0].created_at >= w[1].created_at));
    let bobs = acc.activity(&bob.actor(), 50).await.unwrap();
    assert_eq!(bobs.iter().map(|e| (e.kind, e.client_ip.as_deref())).collect::<Vec<_>>(), vec![(K::LoginSucceeded, Some("192.0.2.44"))]);
    assert_eq!(acc.activity(&ann.actor(), 2).await.unwrap().len(), 2, "bounded");
    // A login guessed at an unknown account is nobody's activity.
    assert!(acc.authenticate("nobody", PASSWORD, ip("198.51.100.8")).await.is_err());
    assert_eq!(acc.activity(&bob.actor(), 50).await.unwrap().len(), 1);
}

#[tokio::test]
async fn account_activity_keeps_only_the_newest_entries_per_user() {
    let (db, acc) = setup().await;
    let ann = acc.register(new_user("ann@example.com", "ann")).await.unwrap();
    let keep = service::accounts::activity::ACTIVITY_KEPT;
    for _ in 0..keep + 5 {
        service::accounts::activity::record(&db.conn(), ann.id, service::accounts::AccountEventKind::LoginFailed, None, None).await.unwrap();
    }
    assert_eq!(service::db::entity::account_event::Entity::find().count(&db.conn()).await.unwrap(), keep);
    assert_eq!(acc.activity(&ann.actor(), 1000).await.unwrap().len() as u64, keep);
}
