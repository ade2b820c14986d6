//! Bearer tokens and SSH keys: what their owner sees, what others cannot touch, what is kept at
//! rest. SSH fingerprints are compared with `ssh-keygen -lf` on keys made by `ssh-keygen`.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sea_orm::EntityTrait;
use service::Error;
use service::accounts::AsActor;
use service::accounts::{Accounts, Actor, Limits, NewUser, Rate, UserView};
use service::db::entity::api_token;
use vmw_test_support::TestDb;

const PASSWORD: &str = "correct horse battery";

async fn setup() -> (TestDb, Accounts) {
    let db = TestDb::new(service::db::connect_and_migrate).await;
    let acc = Accounts::new(db.conn());
    (db, acc)
}

async fn user(acc: &Accounts, name: &str) -> UserView {
    acc.register(NewUser { email: format!("{name}@example.com"), username: name.into(), password: PASSWORD.into() })
        .await
        .unwrap()
}

fn unauthorized<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
    matches!(r, Err(Error::Unauthorized))
}

// ---- tokens ----

#[tokio::test]
async fn tokens_work_once_issued_and_only_their_hash_is_stored() {
    let (db, acc) = setup().await;
    let eve = user(&acc, "eve").await;
    let (login, expires) = acc.issue_login_token(eve.id, Duration::from_secs(3600)).await.unwrap();
    assert!(expires > service::db::now_ms());
    let (api, view) = acc.create_api_token(&eve.actor(), " ci deploy ", PASSWORD, None).await.unwrap();
    assert_eq!((view.name.as_str(), view.kind.as_str()), ("ci deploy", "api"));
    assert_eq!(view.expires_at, None);
    for t in [&login, &api] {
        assert!(t.starts_with("vmw_") && t.len() == 4 + 43, "{t}");
        assert_eq!(acc.user_for_token(t).await.unwrap(), eve);
    }
    assert_ne!(login, api);

    // Nothing in the table would let someone who reads it use a token.
    let rows = api_token::Entity::find().all(&db.conn()).await.unwrap();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        let dump = format!("{r:?}");
        for t in [&login, &api] {
            assert!(!dump.contains(t.as_str()) && !dump.contains(&t[4..]), "token at rest: {dump}");
        }
        assert_eq!(r.token_hash.len(), 64);
    }

    for forged in ["", "vmw_", "vmw_forged", &format!("{api}x"), &api[..api.len() - 1], &"vmw_a".repeat(100)] {
        assert!(unauthorized(acc.user_for_token(forged).await), "{forged}");
    }
}

#[tokio::test]
async fn api_tokens_are_listed_and_revoked_only_by_their_owner() {
    let (_db, acc) = setup().await;
    let eve = user(&acc, "eve").await.actor();
    let fred = user(&acc, "fred").await.actor();
    let (token, view) = acc.create_api_token(&eve, "ci", PASSWORD, None).await.unwrap();
    acc.issue_login_token(eve.user_id, Duration::from_secs(600)).await.unwrap();

    let listed = acc.list_api_tokens(&eve).await.unwrap();
    assert_eq!(listed, vec![view.clone()], "login tokens are not API tokens");
    assert!(acc.list_api_tokens(&fred).await.unwrap().is_empty(), "Fred sees none of Eve's tokens");
    assert!(matches!(acc.revoke_api_token(&fred, view.id).await, Err(Error::NotFound("token"))));
    assert_eq!(acc.user_for_token(&token).await.unwrap().id, eve.user_id, "still works after Fred's attempt");

    acc.revoke_api_token(&eve, view.id).await.unwrap();
    assert!(unauthorized(acc.user_for_token(&token).await));
    assert!(acc.list_api_tokens(&eve).await.unwrap().is_empty());
    assert!(matches!(acc.revoke_api_token(&eve, view.id).await, Err(Error::NotFound("token"))));
}

#[tokio::test]
async fn login_tokens_expire_and_every_token_dies_with_a_password_change() {
    let (db, acc) = setup().await;
    let eve = user(&acc, "eve").await;
    let (login, _) = acc.issue_login_token(eve.id, Duration::from_secs(3600)).await.unwrap();
    let (api, _) = acc.create_api_token(&eve.actor(), "ci", PASSWORD, None).await.unwrap();
    let (short, _) = acc.issue_login_token(eve.id, Duration::from_millis(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(unauthorized(acc.user_for_token(&short).await), "expired");

    // A login token is not revocable as an API token (it ends with its expiry or the password).
    let login_row = api_token::Entity::find().all(&db.conn()).await.unwrap().into_iter().find(|r| r.kind == service::accounts::TokenKind::Login).unwrap();
    assert!(matches!(acc.revoke_api_token(&eve.actor(), login_row.id).await, Err(Error::NotFound(_))));

    acc.change_password(&eve.actor(), PASSWORD, "a new password").await.unwrap();
    assert!(unauthorized(acc.user_for_token(&login).await), "login tokens end with the old password");
    assert!(unauthorized(acc.user_for_token(&api).await), "so do named API tokens: whoever had the old password may have minted one");
    assert!(acc.list_api_tokens(&eve.actor()).await.unwrap().is_empty());
    let (fresh, _) = acc.issue_login_token(eve.id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(acc.user_for_token(&fresh).await.unwrap().id, eve.id);
}

#[tokio::test]
async fn an_api_token_needs_the_current_password() {
    let (_db, acc) = setup().await;
    let eve = user(&acc, "eve").await.actor();
    for wrong in ["", "not my password", &"x".repeat(2000)] {
        let r = acc.create_api_token(&eve, "ci", wrong, None).await;
        assert!(matches!(r, Err(Error::WrongPassword { field: "password" })), "{wrong:?}: {r:?}");
    }
    let e = Error::WrongPassword { field: "password" };
    assert_eq!(e.code(), "wrong_password");
    assert!(acc.list_api_tokens(&eve).await.unwrap().is_empty(), "no token was made");
    acc.create_api_token(&eve, "ci", PASSWORD, None).await.expect("the right password mints one");
}

#[tokio::test]
async fn an_api_token_may_expire_and_is_refused_afterwards() {
    let (db, acc) = setup().await;
    let eve = user(&acc, "eve").await.actor();
    for bad in [0, service::accounts::MAX_TOKEN_DAYS + 1] {
        let r = acc.create_api_token(&eve, "ci", PASSWORD, Some(bad)).await;
        assert!(matches!(r, Err(Error::Validation { field: "expires_in_days", .. })), "{bad}: {r:?}");
    }
    let before = service::db::now_ms();
    let (token, view) = acc.create_api_token(&eve, "a week", PASSWORD, Some(7)).await.unwrap();
    let expires = view.expires_at.expect("the view shows the expiry");
    assert!((before + 7 * 86_400_000..=service::db::now_ms() + 7 * 86_400_000).contains(&expires));
    assert_eq!(acc.list_api_tokens(&eve).await.unwrap()[0].expires_at, Some(expires));
    assert_eq!(acc.user_for_token(&token).await.unwrap().id, eve.user_id);
    // A week later (the clock moved by setting the expiry into the past).
    let mut row: api_token::ActiveModel = api_token::Entity::find_by_id(view.id).one(&db.conn()).await.unwrap().unwrap().into();
    row.expires_at = sea_orm::Set(Some(service::db::now_ms() - 1));
    sea_orm::ActiveModelTrait::update(row, &db.conn()).await.unwrap();
    assert!(unauthorized(acc.user_for_token(&token).await), "an expired token is refused like an unknown one");
}

#[tokio::test]
async fn using_a_token_shows_when_it_was_last_used() {
    let (_db, acc) = setup().await;
    let eve = user(&acc, "eve").await.actor();
    let (token, view) = acc.create_api_token(&eve, "ci", PASSWORD, None).await.unwrap();
    assert_eq!(view.last_used_at, None);
    let before = service::db::now_ms();
    acc.user_for_token(&token).await.unwrap();
    let used = acc.list_api_tokens(&eve).await.unwrap()[0].last_used_at.expect("marked as used");
    assert!(used >= before);
    // Within the minute, more use writes nothing more (no write storm from a busy script).
    for _ in 0..5 {
        acc.user_for_token(&token).await.unwrap();
    }
    assert_eq!(acc.list_api_tokens(&eve).await.unwrap()[0].last_used_at, Some(used));
}

#[tokio::test]
async fn api_tokens_need_a_short_printable_name_and_are_limited_to_twenty() {
    let db = TestDb::new(service::db::connect_and_migrate).await;
    // The hourly creation limit (accounts_limits.rs) is lifted to reach the total.
    let limits = Limits { token_creation: Rate::new(100, Duration::from_secs(3600)), ..Limits::default() };
    let acc = Accounts::with_limits(db.conn(), limits);
    let eve = user(&acc, "eve").await.actor();
    for bad in ["", "   ", &"n".repeat(65), "tab\there", "line\nbreak"] {
        let r = acc.create_api_token(&eve, bad, PASSWORD, None).await;
        assert!(matches!(r, Err(Error::Validation { field: "name", .. })), "{bad:?}: {r:?}");
    }
    acc.issue_login_token(eve.user_id, Duration::from_secs(60)).await.unwrap();
    let mut views = Vec::new();
    for i in 0..20 {
        views.push(acc.create_api_token(&eve, &format!("token {i}"), PASSWORD, None).await.unwrap().1);
    }
    assert!(matches!(acc.create_api_token(&eve, "one more", PASSWORD, None).await, Err(Error::QuotaExceeded(_))));
    let other = user(&acc, "fred").await.actor();
    assert!(acc.create_api_token(&other, "mine", PASSWORD, None).await.is_ok(), "the limit is per user");
    acc.revoke_api_token(&eve, views[0].id).await.unwrap();
    assert!(acc.create_api_token(&eve, "one more", PASSWORD, None).await.is_ok());
}

// ---- SSH keys ----

struct KeyPair {
    public: String,
    fingerprint: String,
}

/// Runs `ssh-keygen` to make a key, and `ssh-keygen -lf` to read its fingerprint.
fn keygen(dir: &Path, name: &str, args: &[&str]) -> KeyPair {
    let path: PathBuf = dir.join(name);
    let st = Command::new("ssh-keygen").args(["-q", "-N", "", "-C", "gil@laptop", "-f"]).arg(&path).args(args).status().unwrap();
    assert!(st.success(), "ssh-keygen {args:?}");
    let pubfile = path.with_extension("pub");
    let out = Command::new("ssh-keygen").arg("-lf").arg(&pubfile).output().unwrap();
    assert!(out.status.success());
    // "256 SHA256:... gil@laptop (ED25519)"
    let fingerprint = String::from_utf8(out.stdout).unwrap().split_whitespace().nth(1).unwrap().to_owned();
    KeyPair { public: std::fs::read_to_string(pubfile).unwrap(), fingerprint }
}

/// Gil and Hal, two accounts, and a folder for the keys `ssh-keygen` makes for them.
struct KeyOwners {
    _db: TestDb,
    acc: Accounts,
    gil: Actor,
    hal: Actor,
    dir: tempfile::TempDir,
}

async fn key_owners() -> KeyOwners {
    let (_db, acc) = setup().await;
    let gil = user(&acc, "gil").await.actor();
    let hal = user(&acc, "hal").await.actor();
    KeyOwners { _db, acc, gil, hal, dir: tempfile::tempdir().unwrap() }
}

impl KeyOwners {
    fn keygen(&self, name: &str, args: &[&str]) -> KeyPair {
        keygen(self.dir.path(), name, args)
    }

    /// The public line of a new ed25519 key.
    fn ed25519(&self, name: &str) -> String {
        self.keygen(name, &["-t", "ed25519"]).public
    }
}

#[tokio::test]
async fn ssh_keys_show_the_fingerprint_ssh_keygen_shows() {
    let o = key_owners().await;
    let KeyOwners { acc, gil, .. } = &o;
    let kinds: &[(&str, &[&str])] = &[
        ("ed25519", &["-t", "ed25519"]),
        ("rsa3072", &["-t", "rsa", "-b", "3072"]),
        ("ecdsa256", &["-t", "ecdsa", "-b", "256"]),
        ("ecdsa384", &["-t", "ecdsa", "-b", "384"]),
        ("ecdsa521", &["-t", "ecdsa", "-b", "521"]),
    ];
    for (name, args) in kinds {
        let k = o.keygen(name, args);
        let view = acc.add_ssh_key(gil, name, &k.public).await.unwrap();
        assert_eq!(view.fingerprint, k.fingerprint, "{name}");
        assert_eq!(view.public_key, k.public.trim(), "{name}: stored as one clean line");
        assert_eq!(view.name, *name);
    }
    let listed = acc.list_ssh_keys(&gil).await.unwrap();
    assert_eq!(listed.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), kinds.iter().map(|k| k.0).collect::<Vec<_>>());
}

#[tokio::test]
async fn weak_malformed_and_private_keys_are_refused() {
    let o = key_owners().await;
    let KeyOwners { acc, gil, .. } = &o;
    let weak = o.keygen("rsa1024", &["-t", "rsa", "-b", "1024"]);
    let almost = o.keygen("rsa2047", &["-t", "rsa", "-b", "2047"]);
    let ok = o.keygen("rsa2048", &["-t", "rsa", "-b", "2048"]);
    let private = std::fs::read_to_string(o.dir.path().join("rsa2048")).unwrap();
    let body = ok.public.split_whitespace().nth(1).unwrap();
    for bad in [
        weak.public.as_str(),
        almost.public.as_str(),
        private.as_str(),
        &format!("ssh-ed25519 {body}"),
        &format!("ssh-rsa {}", &body[..body.len() - 8]),
        &format!("{} {}", ok.public.trim(), ok.public.trim()),
        "",
    ] {
        let r = acc.add_ssh_key(&gil, "k", bad).await;
        assert!(matches!(r, Err(Error::Validation { field: "public_key", .. })), "{bad:?}: {r:?}");
    }
    assert!(acc.list_ssh_keys(&gil).await.unwrap().is_empty());
    assert_eq!(acc.add_ssh_key(&gil, "k", &ok.public).await.unwrap().fingerprint, ok.fingerprint);
}

#[tokio::test]
async fn a_key_is_added_once_per_user_and_named_by_its_comment_when_unnamed() {
    let o = key_owners().await;
    let KeyOwners { acc, gil, hal, .. } = &o;
    let k = o.keygen("id", &["-t", "ed25519"]);
    let first = acc.add_ssh_key(&gil, "", &k.public).await.unwrap();
    assert_eq!(first.name, "gil@laptop", "an unnamed key takes its comment as name");

    // The same key with another comment is still the same key.
    let body: Vec<&str> = k.public.split_whitespace().collect();
    let recommented = format!("{} {} another comment", body[0], body[1]);
    let dup = acc.add_ssh_key(&gil, "again", &recommented).await;
    assert!(matches!(dup, Err(Error::Conflict { field: Some("public_key"), .. })), "{dup:?}");
    assert_eq!(acc.list_ssh_keys(&gil).await.unwrap(), vec![first]);
    // Someone else may use the same key.
    acc.add_ssh_key(&hal, "shared", &k.public).await.unwrap();

    for bad in [&"n".repeat(65), "bell\u{7}"] {
        let r = acc.add_ssh_key(&hal, bad, &o.ed25519("other")).await;
        assert!(matches!(r, Err(Error::Validation { field: "name", .. })), "{bad:?}: {r:?}");
        std::fs::remove_file(o.dir.path().join("other")).unwrap();
        std::fs::remove_file(o.dir.path().join("other.pub")).unwrap();
    }
}

#[tokio::test]
async fn another_user_can_neither_see_use_nor_delete_my_keys() {
    let o = key_owners().await;
    let KeyOwners { acc, gil, hal, .. } = &o;
    let a = acc.add_ssh_key(&gil, "a", &o.ed25519("a")).await.unwrap();
    let b = acc.add_ssh_key(&gil, "b", &o.ed25519("b")).await.unwrap();
    let h = acc.add_ssh_key(&hal, "h", &o.ed25519("h")).await.unwrap();

    assert_eq!(acc.list_ssh_keys(&hal).await.unwrap(), vec![h.clone()]);
    fn not_found<T>(r: Result<T, Error>) -> bool {
        matches!(r, Err(Error::NotFound("ssh key")))
    }
    assert!(not_found(acc.ssh_keys_by_ids(&hal, &[a.id]).await));
    assert!(not_found(acc.ssh_keys_by_ids(&hal, &[h.id, a.id]).await), "one foreign id spoils the request");
    assert!(not_found(acc.ssh_keys_by_ids(&gil, &[a.id, 999_999]).await));
    assert!(not_found(acc.delete_ssh_key(&hal, a.id).await));
    // An admin acting for themselves does not reach other users' keys either.
    let admin = Actor { user_id: hal.user_id, is_admin: true };
    assert!(not_found(acc.delete_ssh_key(&admin, b.id).await));
    assert_eq!(acc.list_ssh_keys(&gil).await.unwrap(), vec![a.clone(), b.clone()], "nothing of Gil's changed");

    let mut picked = acc.ssh_keys_by_ids(&gil, &[b.id, a.id, b.id]).await.unwrap();
    picked.sort_by_key(|k| k.id);
    assert_eq!(picked, vec![a.clone(), b.clone()]);
    acc.delete_ssh_key(&gil, a.id).await.unwrap();
    assert_eq!(acc.list_ssh_keys(&gil).await.unwrap(), vec![b]);
    assert!(not_found(acc.delete_ssh_key(&gil, a.id).await));
}
