//! Accounts: users, passwords, login limits, API tokens and SSH keys. Every per-object call
//! takes the calling [`Actor`]; objects of other users answer NotFound.
//!
//! One job a file, all `impl Accounts`: `users` (sign-up, passwords, profile, delete), `login`
//! (log-in within its limits), `tokens`, `ssh_keys`, `admin` (listing, disable, grant-admin),
//! [`sessions`] (browser sessions listed and ended) and [`activity`]. Their rows are read and written by [`crate::store`] only.
pub mod activity;
mod admin;
mod limiter;
mod login;
pub mod password;
pub mod session_store;
pub mod sessions;
mod ssh_keys;
mod tokens;
mod users;

use std::sync::Arc;
use std::time::Duration;

use crate::db::DatabaseConnection;
use crate::store::users::UserRow;
use crate::{Error, Result};
use limiter::{KnownClients, Limiter};
use password::Hasher;

pub use crate::identity::{Actor, AsActor};
pub use activity::{AccountEventKind, AccountEventView};
pub use sessions::SessionView;
pub use tokens::MAX_TOKEN_DAYS;
pub use vmw_types::{ApiTokenView, SshKeyView, TokenKind, UserView};

pub struct NewUser {
    pub email: String,
    pub username: String,
    pub password: String,
}

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

/// A name given to a token or a key: 1 to 64 characters, no control characters, trimmed.
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

    /// The user's row, or NotFound.
    async fn user_row(&self, user_id: i32) -> Result<UserRow> {
        crate::store::users::get(&self.db, user_id).await?.ok_or(Error::NotFound("user"))
    }

    /// Whether `password` is the account's current one (`u` its row).
    async fn password_matches(&self, u: &UserRow, password: &str) -> Result<bool> {
        self.hasher.verify(password.to_owned(), Some(u.password_hash.clone())).await
    }
}
