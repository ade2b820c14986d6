//! The `users` table: accounts, their password hashes, auth versions, admin and disabled flags.
//! The transactions that change an account together with its tokens, keys and activity (password
//! change, disable, delete) are here whole, with their lock order.
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, Set, TransactionTrait,
};
use vmw_types::{AccountEventKind, UserView};

use super::{activity, login_sessions, ssh_keys, tokens};
use crate::db::entity::{hosting, user};
use crate::db::{is_unique_violation, now_ms};
use crate::{Error, Result};

pub use user::Model as UserRow;

impl From<&UserRow> for UserView {
    fn from(u: &UserRow) -> Self {
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

/// Locks the user's row for the rest of `txn` (per-user limits count under it). The first
/// statement writes: SQLite takes its write lock now (no read-then-write upgrade to fail),
/// PostgreSQL locks the row until commit.
pub async fn lock_user(txn: &impl ConnectionTrait, user_id: i32) -> Result<()> {
    user::Entity::update_many()
        .col_expr(user::Column::UpdatedAt, Expr::col(user::Column::UpdatedAt))
        .filter(user::Column::Id.eq(user_id))
        .exec(txn)
        .await?;
    Ok(())
}

/// How many hostings (in any state) the user has.
pub async fn hosting_count(conn: &impl ConnectionTrait, user_id: i32) -> Result<u64> {
    Ok(hosting::Entity::find().filter(hosting::Column::UserId.eq(user_id)).count(conn).await?)
}

/// A new account's row, already validated, its password already hashed.
pub struct NewUserRow<'a> {
    pub email: &'a str,
    pub username: &'a str,
    pub password_hash: String,
}

/// Inserts the account; `None` if its email or username was just taken (a unique violation).
pub async fn insert(conn: &impl ConnectionTrait, new: NewUserRow<'_>) -> Result<Option<UserRow>> {
    let now = now_ms();
    let row = user::ActiveModel {
        email: Set(new.email.to_owned()),
        username: Set(new.username.to_owned()),
        password_hash: Set(new.password_hash),
        is_admin: Set(false),
        auth_version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    match row.insert(conn).await {
        Ok(u) => Ok(Some(u)),
        Err(e) if is_unique_violation(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The first account (no account with a lower id) administers the service. Decided after
/// the insert, so two simultaneous first sign-ups cannot both count an empty table: the
/// later id sees the earlier one (ids only grow).
pub async fn promote_if_first(conn: &impl ConnectionTrait, u: UserRow) -> Result<UserRow> {
    let lower = user::Entity::find().filter(user::Column::Id.lt(u.id)).count(conn).await?;
    if lower > 0 {
        return Ok(u);
    }
    let mut am: user::ActiveModel = u.into();
    am.is_admin = Set(true);
    Ok(am.update(conn).await?)
}

pub async fn email_free(conn: &impl ConnectionTrait, email: &str) -> Result<bool> {
    Ok(user::Entity::find().filter(user::Column::Email.eq(email)).count(conn).await? == 0)
}

pub async fn username_free(conn: &impl ConnectionTrait, username: &str) -> Result<bool> {
    Ok(user::Entity::find().filter(user::Column::Username.eq(username)).count(conn).await? == 0)
}

pub async fn get(conn: &impl ConnectionTrait, user_id: i32) -> Result<Option<UserRow>> {
    Ok(user::Entity::find_by_id(user_id).one(conn).await?)
}

/// The account whose email or username is `login` (already trimmed and lower-cased).
pub async fn by_login(conn: &impl ConnectionTrait, login: &str) -> Result<Option<UserRow>> {
    Ok(user::Entity::find()
        .filter(Condition::any().add(user::Column::Email.eq(login)).add(user::Column::Username.eq(login)))
        .one(conn)
        .await?)
}

/// Every account, oldest first.
pub async fn all(conn: &impl ConnectionTrait) -> Result<Vec<UserRow>> {
    Ok(user::Entity::find().order_by_asc(user::Column::Id).all(conn).await?)
}

pub async fn any_admin(conn: &impl ConnectionTrait) -> Result<bool> {
    Ok(user::Entity::find().filter(user::Column::IsAdmin.eq(true)).count(conn).await? > 0)
}

pub async fn set_admin(conn: &impl ConnectionTrait, u: UserRow, admin: bool) -> Result<UserRow> {
    let mut am: user::ActiveModel = u.into();
    am.is_admin = Set(admin);
    am.updated_at = Set(now_ms());
    Ok(am.update(conn).await?)
}

/// Sets a new password hash and bumps the auth version; returns how many tokens were revoked.
pub async fn set_password(db: &DatabaseConnection, u: UserRow, password_hash: String) -> Result<u64> {
    let user_id = u.id;
    let version = u.auth_version + 1;
    let mut am: user::ActiveModel = u.into();
    am.password_hash = Set(password_hash);
    am.auth_version = Set(version);
    am.updated_at = Set(now_ms());
    // One transaction: the new password never lives alongside the old login tokens.
    let txn = db.begin().await?;
    am.update(&txn).await?;
    // Every token dies with the old password, login and named API tokens alike: whoever
    // had the old password may have minted one.
    let revoked = tokens::delete_for_user(&txn, user_id).await?;
    let detail = (revoked > 0).then(|| format!("{revoked} token(s) revoked with it"));
    activity::record(&txn, user_id, AccountEventKind::PasswordChanged, None, detail).await?;
    txn.commit().await?;
    Ok(revoked)
}

/// What [`set_disabled`] did.
pub enum DisabledChange {
    /// The account already was so.
    Unchanged(UserRow),
    /// Disabled (with this many tokens revoked) or enabled (`None`).
    Changed(UserRow, Option<u64>),
}

/// Disables or enables the account: a disable bumps its auth version and deletes its tokens
/// and browser sessions;
/// both record the activity. NotFound for an unknown user.
pub async fn set_disabled(db: &DatabaseConnection, user_id: i32, disabled: bool) -> Result<DisabledChange> {
    let txn = db.begin().await?;
    // Write first (as every read-then-write transaction here): SQLite then takes its write
    // lock up front and waits for it (busy_timeout), instead of failing a read transaction
    // that must upgrade after another write ("database is locked", a 500 under load).
    lock_user(&txn, user_id).await?;
    let u = user::Entity::find_by_id(user_id).one(&txn).await?.ok_or(Error::NotFound("user"))?;
    if u.disabled_at.is_some() == disabled {
        return Ok(DisabledChange::Unchanged(u));
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
    let revoked = if disabled { Some(tokens::delete_for_user(&txn, user_id).await?) } else { None };
    if disabled {
        // Its browser sessions end with it (their rows and records, not only by auth version).
        login_sessions::delete_for_user(&txn, user_id).await?;
    }
    activity::record(&txn, user_id, kind, None, None).await?;
    txn.commit().await?;
    Ok(DisabledChange::Changed(u, revoked))
}

/// Deletes the account with its keys, tokens and activity. `false` (nothing deleted) while it
/// has hostings, also one created during this call.
pub async fn delete(db: &DatabaseConnection, user_id: i32) -> Result<bool> {
    let txn = db.begin().await?;
    lock_user(&txn, user_id).await?; // write first (see set_disabled)
    if hosting_count(&txn, user_id).await? > 0 {
        return Ok(false);
    }
    ssh_keys::delete_for_user(&txn, user_id).await?;
    tokens::delete_for_user(&txn, user_id).await?;
    activity::delete_for_user(&txn, user_id).await?;
    login_sessions::delete_for_user(&txn, user_id).await?;
    // A hosting created since the count above keeps the user row (the foreign key restricts).
    match user::Entity::delete_by_id(user_id).exec(&txn).await {
        Ok(_) => {}
        Err(e) if foreign_key_violation(&e) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    match txn.commit().await {
        Ok(()) => Ok(true),
        Err(e) if foreign_key_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn foreign_key_violation(e: &sea_orm::DbErr) -> bool {
    matches!(e.sql_err(), Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_)))
}

impl super::Store {
    /// The id of the user named `username`, if there is one (a slug must not squat another
    /// user's natural site name).
    pub async fn user_id_named(&self, username: &str) -> Result<Option<i32>> {
        Ok(user::Entity::find().filter(user::Column::Username.eq(username)).one(self.db()).await?.map(|u| u.id))
    }
}
