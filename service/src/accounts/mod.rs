//! Accounts: users, passwords, login limits, API tokens and SSH keys. Every per-object call
//! takes the calling [`Actor`]; objects of other users answer NotFound.
pub mod activity;
mod limiter;
pub mod password;
pub mod session_store;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Select,
    Set, TransactionTrait,
};
use sha2::{Digest, Sha256};

use crate::db::entity::{account_event, api_token, ssh_key, user};
use crate::db::now_ms;
use crate::domain::{Email, Password, SshPublicKey, Username};
use crate::{Error, Result};
use limiter::{KnownClients, Limiter};
use password::Hasher;

/// Who is calling. Built by the web layer from a session or a bearer token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Actor {
    pub user_id: i32,
    pub is_admin: bool,
}

pub use activity::{AccountEventKind, AccountEventView};
pub use vmw_types::{ApiTokenView, SshKeyView, TokenKind, UserView};

impl From<&user::Model> for UserView {
    fn from(u: &user::Model) -> Self {
        Self {
            id: u.id,
            email: u.email.clone(),
            username: u.username.clone(),
            is_admin: u.is_admin,
            created_at: u.created_at,
            disabled_at: u.disabled_at,
        }
    }
}

/// The caller a user view stands for.
pub trait AsActor {
    fn actor(&self) -> Actor;
}

impl AsActor for UserView {
    fn actor(&self) -> Actor {
        Actor { user_id: self.id, is_admin: self.is_admin }
    }
}

impl From<ssh_key::Model> for SshKeyView {
    fn from(k: ssh_key::Model) -> Self {
        Self { id: k.id, name: k.name, fingerprint: k.fingerprint, public_key: k.public_key, created_at: k.created_at }
    }
}

impl From<api_token::Model> for ApiTokenView {
    fn from(t: api_token::Model) -> Self {
        Self { id: t.id, name: t.name, kind: t.kind, created_at: t.created_at, expires_at: t.expires_at, last_used_at: t.last_used_at }
    }
}

pub struct NewUser {
    pub email: String,
    pub username: String,
    pub password: String,
}

const MAX_API_TOKENS: u64 = 20;
/// A token's `last_used_at` is written at most this often.
const LAST_USED_EVERY_MS: i64 = 60_000;
const MAX_SSH_KEYS: u64 = 50;

/// How many attempts are allowed in how long. `Limits::default()` is what the service runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub max: usize,
    pub per: Duration,
}

impl Rate {
    pub const fn new(max: usize, per: Duration) -> Self {
        Self { max, per }
    }
}

/// In-memory limits on guessing passwords and minting tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Failed logins per account (by email or username alike).
    pub login_per_account: Rate,
    /// Failed logins per client address (IPv6: per /64).
    pub login_per_client: Rate,
    /// API tokens created per user (every attempt counts).
    pub token_creation: Rate,
    /// Sign-ups per client address (IPv6: per /64); refused ones (a bad or taken field) do not count.
    pub signup_per_client: Rate,
    /// Sign-ups on the whole instance.
    pub signup_overall: Rate,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            login_per_account: Rate::new(5, Duration::from_secs(15 * 60)),
            login_per_client: Rate::new(20, Duration::from_secs(15 * 60)),
            token_creation: Rate::new(10, Duration::from_secs(3600)),
            signup_per_client: Rate::new(5, Duration::from_secs(3600)),
            signup_overall: Rate::new(60, Duration::from_secs(3600)),
        }
    }
}

/// How an [`Accounts`] runs. `Options::default()` is the production default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    pub limits: Limits,
    /// The first account to sign up becomes an administrator. Off by default: on a fresh
    /// instance anyone who reaches the sign-up page first would own it. `grant-admin` instead.
    pub first_user_admin: bool,
    /// Password hashes (and verifications) running at once, on their own threads.
    pub hash_concurrency: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self { limits: Limits::default(), first_user_admin: false, hash_concurrency: 2 }
    }
}

/// The longest expiry an API token may be given.
pub const MAX_TOKEN_DAYS: u32 = 3650;

fn limiter(r: Rate) -> Arc<Limiter> {
    Arc::new(Limiter::new(r.max, r.per))
}

#[derive(Clone)]
pub struct Accounts {
    db: DatabaseConnection,
    /// Failed logins per account, from clients that never logged in to it (key `uid:N`), and
    /// per account and known client (`uid:N|ip:A`): a client that logged in before keeps an
    /// allowance of its own, so failures from elsewhere cannot lock the owner out.
    per_account: Arc<Limiter>,
    per_client: Arc<Limiter>,
    known_clients: Arc<KnownClients>,
    /// API tokens created per user per hour.
    token_creation: Arc<Limiter>,
    signup_per_client: Arc<Limiter>,
    signup_overall: Arc<Limiter>,
    first_user_admin: bool,
    hasher: Hasher,
}

/// `vmw_` + 32 random bytes, base64url. Only its SHA-256 is stored.
fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    format!("vmw_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn foreign_key_violation(e: &sea_orm::DbErr) -> bool {
    matches!(e.sql_err(), Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_)))
}

/// The key failed logins from one client are counted under. An IPv6 client usually holds a
/// whole /64, so that is what is counted; IPv4-mapped addresses count as the IPv4 address.
fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ip:{v4}"),
            None => {
                let s = v6.segments();
                format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// A password may not be the account's own email or username.
fn not_own_name(field: &'static str, password: &Password, email: &str, username: &str) -> Result<()> {
    let p = password.expose();
    if p.eq_ignore_ascii_case(email) || p.eq_ignore_ascii_case(username) {
        return Err(Error::validation(field, "the password cannot be your email or username"));
    }
    Ok(())
}

fn short_name(field: &'static str, raw: &str) -> Result<String> {
    let s = raw.trim();
    if s.is_empty() || s.chars().count() > 64 || s.chars().any(char::is_control) {
        return Err(Error::validation(field, "give it a name of 1 to 64 characters"));
    }
    Ok(s.to_owned())
}

impl Accounts {
    pub fn new(db: DatabaseConnection) -> Self {
        Self::with_limits(db, Limits::default())
    }

    pub fn with_limits(db: DatabaseConnection, limits: Limits) -> Self {
        Self::with_options(db, Options { limits, ..Options::default() })
    }

    pub fn with_options(db: DatabaseConnection, o: Options) -> Self {
        let limits = o.limits;
        Self {
            db,
            per_account: limiter(limits.login_per_account),
            per_client: limiter(limits.login_per_client),
            known_clients: Arc::new(KnownClients::new()),
            token_creation: limiter(limits.token_creation),
            signup_per_client: limiter(limits.signup_per_client),
            signup_overall: limiter(limits.signup_overall),
            first_user_admin: o.first_user_admin,
            hasher: Hasher::new(o.hash_concurrency),
        }
    }

    /// The password hasher (its counters tell how many password checks ran).
    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Sign-up from a client: [`Accounts::register`] within the sign-up limits (per client
    /// address and overall). The slot is taken before anything else, so parallel sign-ups
    /// count; a refused sign-up (a bad or taken field) gives it back.
    pub async fn sign_up(&self, new: NewUser, client: Option<IpAddr>) -> Result<UserView> {
        const ALL: &str = "all";
        if let Some(secs) = self.signup_overall.try_reserve(ALL) {
            tracing::warn!(client = ?client, retry_after_secs = secs, "sign-up refused: too many sign-ups on this instance");
            return Err(Error::RateLimited { retry_after_secs: secs });
        }
        let key = client.map(client_key);
        if let Some(k) = &key
            && let Some(secs) = self.signup_per_client.try_reserve(k)
        {
            self.signup_overall.release(ALL);
            tracing::warn!(client = ?client, retry_after_secs = secs, "sign-up refused: too many sign-ups from this address");
            return Err(Error::RateLimited { retry_after_secs: secs });
        }
        let res = self.register(new).await;
        if matches!(res, Err(Error::Validation { .. } | Error::Conflict { .. })) {
            self.signup_overall.release(ALL);
            if let Some(k) = &key {
                self.signup_per_client.release(k);
            }
        }
        res
    }

    /// Creates an account (no rate limit: see [`Accounts::sign_up`]). With `first_user_admin`
    /// the first account ever made is an administrator; otherwise `grant-admin` makes one.
    pub async fn register(&self, new: NewUser) -> Result<UserView> {
        let email = Email::parse(&new.email)?;
        let username = Username::parse(&new.username)?;
        let password = Password::parse(&new.password)?;
        not_own_name("password", &password, email.as_ref(), username.as_ref())?;
        self.check_free(&email, &username).await?;
        let hash = self.hasher.hash(password.expose().to_owned()).await?;
        let now = now_ms();
        let row = user::ActiveModel {
            email: Set(email.as_ref().to_owned()),
            username: Set(username.as_ref().to_owned()),
            password_hash: Set(hash),
            is_admin: Set(false),
            auth_version: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        match row.insert(&self.db).await {
            Ok(u) => {
                let u = if self.first_user_admin { self.promote_if_first(u).await? } else { u };
                tracing::info!(user_id = u.id, admin = u.is_admin, "account created");
                Ok(UserView::from(&u))
            }
            // Lost a race with a simultaneous sign-up: say which field, like the check above.
            Err(e) if crate::db::is_unique_violation(&e) => {
                self.check_free(&email, &username).await?;
                Err(Error::conflict(None, "that email or username was just taken"))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The first account (no account with a lower id) administers the service. Decided after
    /// the insert, so two simultaneous first sign-ups cannot both count an empty table: the
    /// later id sees the earlier one (ids only grow).
    async fn promote_if_first(&self, u: user::Model) -> Result<user::Model> {
        let lower = user::Entity::find().filter(user::Column::Id.lt(u.id)).count(&self.db).await?;
        if lower > 0 {
            return Ok(u);
        }
        let mut am: user::ActiveModel = u.into();
        am.is_admin = Set(true);
        Ok(am.update(&self.db).await?)
    }

    async fn check_free(&self, email: &Email, username: &Username) -> Result<()> {
        if !self.email_free(email).await? {
            return Err(Error::conflict(Some("email"), "an account with this email already exists"));
        }
        if !self.username_free(username).await? {
            return Err(Error::conflict(Some("username"), "this username is taken"));
        }
        Ok(())
    }

    async fn email_free(&self, email: &Email) -> Result<bool> {
        Ok(user::Entity::find().filter(user::Column::Email.eq(email.as_ref())).count(&self.db).await? == 0)
    }

    async fn username_free(&self, username: &Username) -> Result<bool> {
        Ok(user::Entity::find().filter(user::Column::Username.eq(username.as_ref())).count(&self.db).await? == 0)
    }

    pub async fn email_available(&self, email: &str) -> Result<bool> {
        self.email_free(&Email::parse(email)?).await
    }

    pub async fn username_available(&self, username: &str) -> Result<bool> {
        self.username_free(&Username::parse(username)?).await
    }

    /// Logs in with email or username. One error for unknown accounts and wrong passwords;
    /// limited per account and per client address.
    pub async fn authenticate(&self, login: &str, password: &str, client: Option<IpAddr>) -> Result<UserView> {
        let login = login.trim().to_ascii_lowercase();
        if login.is_empty() {
            return Err(Error::validation("login", "enter your email or username"));
        }
        if password.is_empty() {
            return Err(Error::validation("password", "enter your password"));
        }
        // No account has a login or password this long: refuse without a lookup or a hash.
        if login.len() > 254 || password.len() > 1024 {
            return Err(Error::InvalidCredentials);
        }
        let found = user::Entity::find()
            .filter(Condition::any().add(user::Column::Email.eq(login.as_str())).add(user::Column::Username.eq(login.as_str())))
            .one(&self.db)
            .await?;
        // One counter per account, whether it is named by email or by username.
        let account_key = match &found {
            Some(u) => format!("uid:{}", u.id),
            None => format!("login:{login}"),
        };
        let client_key = client.map(client_key);
        // A client that logged in to this account before has an allowance of its own
        // (account+client keying), so guesses from elsewhere do not lock the owner out.
        let account_key = match (&found, &client_key) {
            (Some(u), Some(c)) if self.known_clients.contains(u.id, c) => format!("uid:{}|{c}", u.id),
            _ => account_key,
        };
        // The attempt takes its slots before the hash is checked, atomically: N guesses at
        // once count as N. A success gives them back.
        let refused = |secs: u64| {
            tracing::warn!(client = ?client, user_id = found.as_ref().map(|u| u.id), retry_after_secs = secs, "login refused: too many failures");
            Err(Error::RateLimited { retry_after_secs: secs })
        };
        if let Some(secs) = self.per_account.try_reserve(&account_key) {
            return refused(secs);
        }
        if let Some(k) = &client_key
            && let Some(secs) = self.per_client.try_reserve(k)
        {
            self.per_account.release(&account_key);
            return refused(secs);
        }
        let ok = match self.hasher.verify(password.to_owned(), found.as_ref().map(|u| u.password_hash.clone())).await {
            Ok(ok) => ok,
            Err(e) => {
                self.per_account.release(&account_key);
                if let Some(k) = &client_key {
                    self.per_client.release(k);
                }
                return Err(e);
            }
        };
        match found {
            Some(u) if ok && u.disabled_at.is_some() => {
                // The password was right: no more guessing to count, but no login either.
                self.per_account.clear(&account_key);
                if let Some(k) = &client_key {
                    self.per_client.release(k);
                }
                tracing::info!(client = ?client, user_id = u.id, "login refused: the account is disabled");
                self.note(u.id, AccountEventKind::LoginFailed, client, Some("the account is disabled".into())).await;
                Err(Error::AccountDisabled)
            }
            Some(u) if ok => {
                self.per_account.clear(&account_key);
                if let Some(k) = &client_key {
                    self.per_client.release(k);
                    self.known_clients.remember(u.id, k);
                }
                self.note(u.id, AccountEventKind::LoginSucceeded, client, None).await;
                Ok(UserView::from(&u))
            }
            _ => {
                tracing::info!(client = ?client, user_id = found.as_ref().map(|u| u.id), "failed login");
                if let Some(u) = &found {
                    self.note(u.id, AccountEventKind::LoginFailed, client, Some("wrong password".into())).await;
                }
                Err(Error::InvalidCredentials)
            }
        }
    }

    /// Records an entry of the user's activity. A failure to record is logged, not returned:
    /// it must not turn a login or a revocation into an error.
    async fn note(&self, user_id: i32, kind: AccountEventKind, client: Option<IpAddr>, detail: Option<String>) {
        if let Err(err) = activity::record(&self.db, user_id, kind, client, detail).await {
            tracing::warn!(%err, user_id, %kind, "could not record account activity");
        }
    }

    /// The caller's own activity, newest first (at most `limit`, at most
    /// [`activity::ACTIVITY_KEPT`] are kept).
    pub async fn activity(&self, actor: &Actor, limit: u64) -> Result<Vec<AccountEventView>> {
        activity::newest(&self.db, actor.user_id, limit.clamp(1, activity::ACTIVITY_KEPT)).await
    }

    /// Deletes activity older than `before` (the hosting events' retention job calls it).
    pub async fn prune_activity_before(&self, before: i64) -> Result<u64> {
        activity::prune_before(&self.db, before).await
    }

    /// The rows `rows` selects, in the order of `id` (oldest first), as views.
    async fn oldest_first<E, V>(&self, rows: Select<E>, id: E::Column) -> Result<Vec<V>>
    where
        E: EntityTrait,
        V: From<E::Model>,
    {
        Ok(rows.order_by_asc(id).all(&self.db).await?.into_iter().map(V::from).collect())
    }

    async fn user_row(&self, user_id: i32) -> Result<user::Model> {
        user::Entity::find_by_id(user_id).one(&self.db).await?.ok_or(Error::NotFound("user"))
    }

    pub async fn get_user(&self, user_id: i32) -> Result<UserView> {
        Ok(UserView::from(&self.user_row(user_id).await?))
    }

    /// Sessions store it; a password change bumps it, which voids older sessions and tokens.
    pub async fn auth_version(&self, user_id: i32) -> Result<i32> {
        Ok(self.user_row(user_id).await?.auth_version)
    }

    pub async fn change_password(&self, actor: &Actor, current: &str, new: &str) -> Result<()> {
        let u = self.user_row(actor.user_id).await?;
        if !self.hasher.verify(current.to_owned(), Some(u.password_hash.clone())).await? {
            return Err(Error::validation("current_password", "the current password is not correct"));
        }
        let new = Password::parse_field("new_password", new)?;
        if new.expose() == current {
            return Err(Error::validation("new_password", "choose a password different from the current one"));
        }
        not_own_name("new_password", &new, &u.email, &u.username)?;
        let hash = self.hasher.hash(new.expose().to_owned()).await?;
        let version = u.auth_version + 1;
        let mut am: user::ActiveModel = u.into();
        am.password_hash = Set(hash);
        am.auth_version = Set(version);
        am.updated_at = Set(now_ms());
        // One transaction: the new password never lives alongside the old login tokens.
        let txn = self.db.begin().await?;
        am.update(&txn).await?;
        // Every token dies with the old password, login and named API tokens alike: whoever
        // had the old password may have minted one.
        let revoked = api_token::Entity::delete_many().filter(api_token::Column::UserId.eq(actor.user_id)).exec(&txn).await?;
        let detail = (revoked.rows_affected > 0).then(|| format!("{} token(s) revoked with it", revoked.rows_affected));
        activity::record(&txn, actor.user_id, AccountEventKind::PasswordChanged, None, detail).await?;
        txn.commit().await?;
        tracing::info!(user_id = actor.user_id, tokens_revoked = revoked.rows_affected, "password changed");
        Ok(())
    }

    /// Checks the password before the caller deletes the user's hostings.
    pub async fn check_password(&self, actor: &Actor, password: &str) -> Result<()> {
        let u = self.user_row(actor.user_id).await?;
        if self.hasher.verify(password.to_owned(), Some(u.password_hash)).await? {
            Ok(())
        } else {
            Err(Error::validation("password", "the password is not correct"))
        }
    }

    /// Deletes the account (keys and tokens go with it). Its hostings must be gone first.
    pub async fn delete_user(&self, actor: &Actor, password: &str) -> Result<()> {
        self.check_password(actor, password).await?;
        let hostings_left = || Error::conflict(None, "delete your hostings before deleting the account");
        let txn = self.db.begin().await?;
        crate::hosting::store::lock_user(&txn, actor.user_id).await?; // write first (see set_disabled)
        let left = crate::hosting::Store::count_for_user(&txn, actor.user_id).await?;
        if left > 0 {
            return Err(hostings_left());
        }
        ssh_key::Entity::delete_many().filter(ssh_key::Column::UserId.eq(actor.user_id)).exec(&txn).await?;
        api_token::Entity::delete_many().filter(api_token::Column::UserId.eq(actor.user_id)).exec(&txn).await?;
        account_event::Entity::delete_many().filter(account_event::Column::UserId.eq(actor.user_id)).exec(&txn).await?;
        // A hosting created since the count above keeps the user row (the foreign key restricts).
        match user::Entity::delete_by_id(actor.user_id).exec(&txn).await {
            Ok(_) => {}
            Err(e) if foreign_key_violation(&e) => return Err(hostings_left()),
            Err(e) => return Err(e.into()),
        }
        match txn.commit().await {
            Ok(()) => {}
            Err(e) if foreign_key_violation(&e) => return Err(hostings_left()),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(user_id = actor.user_id, "account deleted");
        Ok(())
    }

    /// Whether any account administers the service (the server says how to make one if not).
    pub async fn any_admin(&self) -> Result<bool> {
        Ok(user::Entity::find().filter(user::Column::IsAdmin.eq(true)).count(&self.db).await? > 0)
    }

    /// For the `grant-admin` command.
    pub async fn set_admin(&self, login: &str, admin: bool) -> Result<UserView> {
        let login = login.trim().to_ascii_lowercase();
        let u = user::Entity::find()
            .filter(Condition::any().add(user::Column::Email.eq(login.as_str())).add(user::Column::Username.eq(login.as_str())))
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound("user"))?;
        let mut am: user::ActiveModel = u.into();
        am.is_admin = Set(admin);
        am.updated_at = Set(now_ms());
        Ok(UserView::from(&am.update(&self.db).await?))
    }

    /// Disables (`disabled` true) or enables an account (admin only; Forbidden otherwise). A
    /// disabled account cannot log in, and everything it is signed in with stops at once: its
    /// auth version is bumped (its sessions and event streams end at their next check) and its
    /// tokens are deleted. Enabling lets it log in again; old sessions and tokens stay void.
    /// An administrator cannot disable their own account.
    pub async fn set_disabled(&self, actor: &Actor, user_id: i32, disabled: bool) -> Result<UserView> {
        if !actor.is_admin {
            return Err(Error::Forbidden);
        }
        if disabled && user_id == actor.user_id {
            return Err(Error::conflict(None, "you cannot disable your own account"));
        }
        let txn = self.db.begin().await?;
        // Write first (as every read-then-write transaction here): SQLite then takes its write
        // lock up front and waits for it (busy_timeout), instead of failing a read transaction
        // that must upgrade after another write ("database is locked", a 500 under load).
        crate::hosting::store::lock_user(&txn, user_id).await?;
        let u = user::Entity::find_by_id(user_id).one(&txn).await?.ok_or(Error::NotFound("user"))?;
        if u.disabled_at.is_some() == disabled {
            return Ok(UserView::from(&u));
        }
        let now = now_ms();
        let version = u.auth_version + 1;
        let mut am: user::ActiveModel = u.into();
        am.disabled_at = Set(disabled.then_some(now));
        if disabled {
            am.auth_version = Set(version);
        }
        am.updated_at = Set(now);
        let u = am.update(&txn).await?;
        let kind = if disabled { AccountEventKind::Disabled } else { AccountEventKind::Enabled };
        if disabled {
            let revoked = api_token::Entity::delete_many().filter(api_token::Column::UserId.eq(user_id)).exec(&txn).await?;
            tracing::info!(user_id, by = actor.user_id, tokens_revoked = revoked.rows_affected, "account disabled");
        } else {
            tracing::info!(user_id, by = actor.user_id, "account enabled");
        }
        activity::record(&txn, user_id, kind, None, None).await?;
        txn.commit().await?;
        Ok(UserView::from(&u))
    }

    pub async fn list_users(&self, actor: &Actor) -> Result<Vec<UserView>> {
        if !actor.is_admin {
            return Err(Error::Forbidden);
        }
        Ok(user::Entity::find().order_by_asc(user::Column::Id).all(&self.db).await?.iter().map(UserView::from).collect())
    }

    // ---- tokens ----

    /// A bearer token from a login (expires; dies with a password change).
    pub async fn issue_login_token(&self, user_id: i32, ttl: Duration) -> Result<(String, i64)> {
        let token = new_token();
        let expires = now_ms() + ttl.as_millis() as i64;
        api_token::ActiveModel {
            user_id: Set(user_id),
            name: Set("login".into()),
            kind: Set(TokenKind::Login),
            token_hash: Set(token_hash(&token)),
            expires_at: Set(Some(expires)),
            last_used_at: Set(None),
            created_at: Set(now_ms()),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        // Expired login tokens are dead weight.
        api_token::Entity::delete_many()
            .filter(api_token::Column::Kind.eq(TokenKind::Login))
            .filter(api_token::Column::ExpiresAt.lt(now_ms()))
            .exec(&self.db)
            .await?;
        Ok((token, expires))
    }

    /// A named API token, minted only with the account's current password (a stolen session
    /// alone cannot make a lasting credential). It lasts `expires_in_days` (1 to
    /// [`MAX_TOKEN_DAYS`]) or until revoked. The secret is returned once, never stored.
    pub async fn create_api_token(
        &self,
        actor: &Actor,
        name: &str,
        password: &str,
        expires_in_days: Option<u32>,
    ) -> Result<(String, ApiTokenView)> {
        let limit_key = format!("uid:{}", actor.user_id);
        // Counts every creation attempt (also wrong passwords: this is no guessing oracle).
        if let Some(secs) = self.token_creation.try_reserve(&limit_key) {
            return Err(Error::RateLimited { retry_after_secs: secs });
        }
        let name = short_name("name", name)?;
        let expires_at = match expires_in_days {
            None => None,
            Some(d) if (1..=MAX_TOKEN_DAYS).contains(&d) => Some(now_ms() + i64::from(d) * 86_400_000),
            Some(_) => return Err(Error::validation("expires_in_days", format!("choose 1 to {MAX_TOKEN_DAYS} days, or none"))),
        };
        if password.is_empty() || password.len() > 1024 {
            return Err(Error::WrongPassword { field: "password" });
        }
        let u = self.user_row(actor.user_id).await?;
        if !self.hasher.verify(password.to_owned(), Some(u.password_hash)).await? {
            tracing::info!(user_id = actor.user_id, "API token refused: wrong password");
            return Err(Error::WrongPassword { field: "password" });
        }
        let count = api_token::Entity::find()
            .filter(api_token::Column::UserId.eq(actor.user_id))
            .filter(api_token::Column::Kind.eq(TokenKind::Api))
            .count(&self.db)
            .await?;
        if count >= MAX_API_TOKENS {
            return Err(Error::QuotaExceeded(format!("at most {MAX_API_TOKENS} API tokens; revoke one first")));
        }
        let token = new_token();
        let row = api_token::ActiveModel {
            user_id: Set(actor.user_id),
            name: Set(name),
            kind: Set(TokenKind::Api),
            token_hash: Set(token_hash(&token)),
            expires_at: Set(expires_at),
            last_used_at: Set(None),
            created_at: Set(now_ms()),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        self.note(actor.user_id, AccountEventKind::TokenCreated, None, Some(row.name.clone())).await;
        Ok((token, row.into()))
    }

    pub async fn list_api_tokens(&self, actor: &Actor) -> Result<Vec<ApiTokenView>> {
        let mine = api_token::Entity::find()
            .filter(api_token::Column::UserId.eq(actor.user_id))
            .filter(api_token::Column::Kind.eq(TokenKind::Api));
        self.oldest_first(mine, api_token::Column::Id).await
    }

    pub async fn revoke_api_token(&self, actor: &Actor, token_id: i32) -> Result<()> {
        let mine = || {
            api_token::Entity::find()
                .filter(api_token::Column::Id.eq(token_id))
                .filter(api_token::Column::UserId.eq(actor.user_id))
                .filter(api_token::Column::Kind.eq(TokenKind::Api))
        };
        let t = mine().one(&self.db).await?.ok_or(Error::NotFound("token"))?;
        let res = api_token::Entity::delete_many()
            .filter(api_token::Column::Id.eq(t.id))
            .filter(api_token::Column::UserId.eq(actor.user_id))
            .exec(&self.db)
            .await?;
        if res.rows_affected == 0 {
            return Err(Error::NotFound("token"));
        }
        self.note(actor.user_id, AccountEventKind::TokenRevoked, None, Some(t.name)).await;
        Ok(())
    }

    /// The user a bearer token belongs to, or Unauthorized.
    pub async fn user_for_token(&self, token: &str) -> Result<UserView> {
        if !token.starts_with("vmw_") || token.len() > 100 {
            return Err(Error::Unauthorized);
        }
        let now = now_ms();
        let t = api_token::Entity::find()
            .filter(api_token::Column::TokenHash.eq(token_hash(token)))
            .one(&self.db)
            .await?
            .ok_or(Error::Unauthorized)?;
        if t.expires_at.is_some_and(|e| e <= now) {
            return Err(Error::Unauthorized);
        }
        let u = self.user_row(t.user_id).await.map_err(|_| Error::Unauthorized)?;
        // Disabling deletes the tokens; this holds even for one minted in the same instant.
        if u.disabled_at.is_some() {
            return Err(Error::Unauthorized);
        }
        // At most one write a minute per token (no write storm from a busy script). The
        // condition is in the UPDATE, so simultaneous requests write once between them.
        if t.last_used_at.is_none_or(|l| now - l >= LAST_USED_EVERY_MS) {
            api_token::Entity::update_many()
                .col_expr(api_token::Column::LastUsedAt, sea_orm::sea_query::Expr::value(now))
                .filter(api_token::Column::Id.eq(t.id))
                .filter(
                    Condition::any()
                        .add(api_token::Column::LastUsedAt.is_null())
                        .add(api_token::Column::LastUsedAt.lte(now - LAST_USED_EVERY_MS)),
                )
                .exec(&self.db)
                .await?;
        }
        Ok(UserView::from(&u))
    }

    // ---- SSH keys ----

    pub async fn add_ssh_key(&self, actor: &Actor, name: &str, public_key: &str) -> Result<SshKeyView> {
        let key = SshPublicKey::parse(public_key)?;
        let name = match name.trim() {
            "" => key.line().split_whitespace().nth(2).unwrap_or(key.kind()).chars().take(64).collect(),
            n => short_name("name", n)?,
        };
        let existing = ssh_key::Entity::find().filter(ssh_key::Column::UserId.eq(actor.user_id)).all(&self.db).await?;
        if let Some(k) = existing.iter().find(|k| k.fingerprint == key.fingerprint()) {
            return Err(Error::conflict(Some("public_key"), format!("you already added this key (as '{}')", k.name)));
        }
        if existing.len() as u64 >= MAX_SSH_KEYS {
            return Err(Error::QuotaExceeded(format!("at most {MAX_SSH_KEYS} SSH keys")));
        }
        let row = ssh_key::ActiveModel {
            user_id: Set(actor.user_id),
            name: Set(name),
            public_key: Set(key.line().to_owned()),
            fingerprint: Set(key.fingerprint().to_owned()),
            created_at: Set(now_ms()),
            ..Default::default()
        };
        match row.insert(&self.db).await {
            Ok(k) => Ok(k.into()),
            Err(e) if crate::db::is_unique_violation(&e) => Err(Error::conflict(Some("public_key"), "you already added this key")),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list_ssh_keys(&self, actor: &Actor) -> Result<Vec<SshKeyView>> {
        let mine = ssh_key::Entity::find().filter(ssh_key::Column::UserId.eq(actor.user_id));
        self.oldest_first(mine, ssh_key::Column::Id).await
    }

    /// The actor's keys with these ids; NotFound if any id is not theirs.
    pub async fn ssh_keys_by_ids(&self, actor: &Actor, ids: &[i32]) -> Result<Vec<SshKeyView>> {
        let keys = ssh_key::Entity::find()
            .filter(ssh_key::Column::UserId.eq(actor.user_id))
            .filter(ssh_key::Column::Id.is_in(ids.iter().copied()))
            .all(&self.db)
            .await?;
        let mut want: Vec<i32> = ids.to_vec();
        want.sort_unstable();
        want.dedup();
        if keys.len() != want.len() {
            return Err(Error::NotFound("ssh key"));
        }
        Ok(keys.into_iter().map(Into::into).collect())
    }

    pub async fn delete_ssh_key(&self, actor: &Actor, key_id: i32) -> Result<()> {
        let res = ssh_key::Entity::delete_many()
            .filter(ssh_key::Column::Id.eq(key_id))
            .filter(ssh_key::Column::UserId.eq(actor.user_id))
            .exec(&self.db)
            .await?;
        if res.rows_affected == 0 {
            return Err(Error::NotFound("ssh key"));
        }
        Ok(())
    }
}
