//! Accounts against a real database (SQLite by default, PostgreSQL with TEST_DATABASE_URL).
mod common;

use std::time::Duration;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use service::Error;
use service::accounts::{Accounts, Actor, NewUser};
use service::db::entity::{api_token, user};

fn new_user(email: &str, username: &str) -> NewUser {
    NewUser { email: email.into(), username: username.into(), password: "correct horse battery".into() }
}

#[tokio::test]
async fn the_first_account_is_admin_and_duplicates_are_refused_without_overwriting() {
    let db = common::TestDb::new().await;
    let acc = Accounts::new(db.conn());
    let ann = acc.register(new_user("Ann@Example.com", "ann")).await.unwrap();
    assert!(ann.is_admin);
    assert_eq!(ann.email, "ann@example.com", "emails are stored lowercase");
    let bob = acc.register(new_user("bob@example.com", "bob")).await.unwrap();
    assert!(!bob.is_admin);

    let same_email = acc
        .register(NewUser { email: "ANN@example.com".into(), username: "ann2".into(), password: "another password".into() })
        .await;
    assert!(matches!(same_email, Err(Error::Conflict { field: Some("email"), .. })), "{same_email:?}");
    let same_name = acc.register(new_user("ann3@example.com", "ann")).await;
    assert!(matches!(same_name, Err(Error::Conflict { field: Some("username"), .. })), "{same_name:?}");
    // Nothing was overwritten: Ann still logs in with her own password.
    let again = acc.authenticate("ann", "correct horse battery", None).await.unwrap();
    assert_eq!(again.id, ann.id);
    assert_eq!(user::Entity::find().all(&db.conn()).await.unwrap().len(), 2);

    assert!(!acc.email_available("ann@example.com").await.unwrap());
    assert!(acc.email_available("new@example.com").await.unwrap());
    assert!(matches!(acc.username_available("no").await, Err(Error::Validation { field: "username", .. })));
}

#[tokio::test]
async fn one_error_for_unknown_users_and_wrong_passwords_and_limits_per_account_and_address() {
    let db = common::TestDb::new().await;
    let acc = Accounts::new(db.conn());
    acc.register(new_user("cat@example.com", "cat")).await.unwrap();
    let unknown = acc.authenticate("nobody", "whatever123", None).await;
    let wrong = acc.authenticate("cat", "whatever123", None).await;
    assert!(matches!(unknown, Err(Error::InvalidCredentials)));
    assert!(matches!(wrong, Err(Error::InvalidCredentials)));
    // Five failures lock the account for a while, even with the right password.
    for _ in 0..4 {
        let _ = acc.authenticate("cat@example.com", "nope nope", None).await;
    }
    let locked = acc.authenticate("cat", "correct horse battery", None).await;
    assert!(matches!(locked, Err(Error::RateLimited { retry_after_secs }) if retry_after_secs > 0), "{locked:?}");

    // Twenty failures from one address block it for every account.
    let ip: std::net::IpAddr = "127.0.0.9".parse().unwrap();
    for i in 0..20 {
        let _ = acc.authenticate(&format!("someone{i}"), "nope nope", Some(ip)).await;
    }
    acc.register(new_user("dan@example.com", "dan")).await.unwrap();
    assert!(matches!(acc.authenticate("dan", "correct horse battery", Some(ip)).await, Err(Error::RateLimited { .. })));
    let other = acc.authenticate("dan", "correct horse battery", Some("127.0.0.10".parse().unwrap())).await;
    assert!(other.is_ok(), "{other:?}");
}

#[tokio::test]
async fn tokens_are_stored_hashed_and_die_with_revocation_or_a_password_change() {
    let db = common::TestDb::new().await;
    let acc = Accounts::new(db.conn());
    let eve = acc.register(new_user("eve@example.com", "eve")).await.unwrap();
    let actor = eve.actor();
    let (login, _) = acc.issue_login_token(eve.id, Duration::from_secs(3600)).await.unwrap();
    let (api, view) = acc.create_api_token(&actor, "ci").await.unwrap();
    assert!(api.starts_with("vmw_"));
    let rows = api_token::Entity::find().all(&db.conn()).await.unwrap();
    assert!(rows.iter().all(|r| r.token_hash != api && r.token_hash != login && r.token_hash.len() == 64), "only hashes at rest");
    assert_eq!(acc.user_for_token(&api).await.unwrap().id, eve.id);
    assert_eq!(acc.list_api_tokens(&actor).await.unwrap().len(), 1);

    // Another user cannot revoke it; its owner can.
    let fred = acc.register(new_user("fred@example.com", "fred")).await.unwrap();
    assert!(matches!(acc.revoke_api_token(&fred.actor(), view.id).await, Err(Error::NotFound(_))));
    assert!(acc.list_api_tokens(&fred.actor()).await.unwrap().is_empty());
    acc.revoke_api_token(&actor, view.id).await.unwrap();
    assert!(matches!(acc.user_for_token(&api).await, Err(Error::Unauthorized)));

    // A password change ends login tokens and bumps the session version.
    let v1 = acc.auth_version(eve.id).await.unwrap();
    assert!(matches!(
        acc.change_password(&actor, "wrong current", "a new password").await,
        Err(Error::Validation { field: "current_password", .. })
    ));
    acc.change_password(&actor, "correct horse battery", "a new password").await.unwrap();
    assert!(acc.auth_version(eve.id).await.unwrap() > v1);
    assert!(matches!(acc.user_for_token(&login).await, Err(Error::Unauthorized)));
    assert!(acc.authenticate("eve", "a new password", None).await.is_ok());
    // Expired login tokens are refused.
    let (short, _) = acc.issue_login_token(eve.id, Duration::from_millis(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(matches!(acc.user_for_token(&short).await, Err(Error::Unauthorized)));
    assert!(matches!(acc.user_for_token("vmw_forged").await, Err(Error::Unauthorized)));
}

#[tokio::test]
async fn ssh_keys_have_the_fingerprint_ssh_keygen_shows_and_belong_to_their_owner() {
    let db = common::TestDb::new().await;
    let acc = Accounts::new(db.conn());
    let gil = acc.register(new_user("gil@example.com", "gil")).await.unwrap().actor();
    let hal = acc.register(new_user("hal@example.com", "hal")).await.unwrap().actor();
    let dir = tempfile::tempdir().unwrap();
    for (t, extra) in [("ed25519", vec![]), ("rsa", vec!["-b", "3072"]), ("ecdsa", vec![])] {
        let path = dir.path().join(format!("id_{t}"));
        let st = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", t, "-N", "", "-C", "gil@laptop", "-f"])
            .arg(&path)
            .args(extra)
            .status()
            .unwrap();
        assert!(st.success());
        let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        let lf = std::process::Command::new("ssh-keygen").arg("-lf").arg(path.with_extension("pub")).output().unwrap();
        let expected = String::from_utf8(lf.stdout).unwrap().split_whitespace().nth(1).unwrap().to_owned();
        let k = acc.add_ssh_key(&gil, t, &public).await.unwrap();
        assert_eq!(k.fingerprint, expected, "{t}");
        let dup = acc.add_ssh_key(&gil, "again", &public).await;
        assert!(matches!(dup, Err(Error::Conflict { field: Some("public_key"), .. })), "{dup:?}");
        // The same key may be someone else's too.
        acc.add_ssh_key(&hal, t, &public).await.unwrap();
    }
    let keys = acc.list_ssh_keys(&gil).await.unwrap();
    assert_eq!(keys.len(), 3);
    let ids: Vec<i32> = keys.iter().map(|k| k.id).collect();
    assert!(matches!(acc.ssh_keys_by_ids(&hal, &ids).await, Err(Error::NotFound(_))), "not hal's keys");
    assert!(matches!(acc.delete_ssh_key(&hal, ids[0]).await, Err(Error::NotFound(_))));
    acc.delete_ssh_key(&gil, ids[0]).await.unwrap();
    assert_eq!(acc.list_ssh_keys(&gil).await.unwrap().len(), 2);
    let bad = acc.add_ssh_key(&gil, "x", "ssh-ed25519 AAAA").await;
    assert!(matches!(bad, Err(Error::Validation { field: "public_key", .. })), "{bad:?}");
}

#[tokio::test]
async fn deleting_an_account_needs_the_password_and_no_hostings_left() {
    let db = common::TestDb::new().await;
    let acc = Accounts::new(db.conn());
    let ivy = acc.register(new_user("ivy@example.com", "ivy")).await.unwrap();
    let actor = Actor { user_id: ivy.id, is_admin: ivy.is_admin };
    assert!(matches!(acc.delete_user(&actor, "wrong").await, Err(Error::Validation { field: "password", .. })));
    acc.add_ssh_key(&actor, "k", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl").await.unwrap();
    acc.delete_user(&actor, "correct horse battery").await.unwrap();
    assert!(user::Entity::find().filter(user::Column::Id.eq(ivy.id)).one(&db.conn()).await.unwrap().is_none());
    assert!(matches!(acc.authenticate("ivy", "correct horse battery", None).await, Err(Error::InvalidCredentials)));
}
