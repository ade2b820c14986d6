//! Users: sign-up, availability of names, profile, password change and account deletion.
use std::net::IpAddr;

use super::limiter::client_key;
use super::{Accounts, Actor, NewUser, UserView};
use crate::domain::{Email, Password, Username};
use crate::store::users::{self as rows, NewUserRow};
use crate::{Error, Result};

/// A password may not be the account's own email or username.
fn not_own_name(field: &'static str, password: &Password, email: &str, username: &str) -> Result<()> {
    let p = password.expose();
    if p.eq_ignore_ascii_case(email) || p.eq_ignore_ascii_case(username) {
        return Err(Error::validation(field, "the password cannot be your email or username"));
    }
    Ok(())
}

impl Accounts {
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
        let password_hash = self.hasher.hash(password.expose().to_owned()).await?;
        let row = NewUserRow { email: email.as_ref(), username: username.as_ref(), password_hash };
        match rows::insert(&self.db, row).await? {
            Some(u) => {
                let u = if self.first_user_admin { rows::promote_if_first(&self.db, u).await? } else { u };
                tracing::info!(user_id = u.id, admin = u.is_admin, "account created");
                Ok(UserView::from(&u))
            }
            // Lost a race with a simultaneous sign-up: say which field, like the check above.
            None => {
                self.check_free(&email, &username).await?;
                Err(Error::conflict(None, "that email or username was just taken"))
            }
        }
    }

    async fn check_free(&self, email: &Email, username: &Username) -> Result<()> {
        if !rows::email_free(&self.db, email.as_ref()).await? {
            return Err(Error::conflict(Some("email"), "an account with this email already exists"));
        }
        if !rows::username_free(&self.db, username.as_ref()).await? {
            return Err(Error::conflict(Some("username"), "this username is taken"));
        }
        Ok(())
    }

    pub async fn email_available(&self, email: &str) -> Result<bool> {
        rows::email_free(&self.db, Email::parse(email)?.as_ref()).await
    }

    pub async fn username_available(&self, username: &str) -> Result<bool> {
        rows::username_free(&self.db, Username::parse(username)?.as_ref()).await
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
        if !self.password_matches(&u, current).await? {
            return Err(Error::validation("current_password", "the current password is not correct"));
        }
        let new = Password::parse_field("new_password", new)?;
        if new.expose() == current {
            return Err(Error::validation("new_password", "choose a password different from the current one"));
        }
        not_own_name("new_password", &new, &u.email, &u.username)?;
        let hash = self.hasher.hash(new.expose().to_owned()).await?;
        let revoked = rows::set_password(&self.db, u, hash).await?;
        tracing::info!(user_id = actor.user_id, tokens_revoked = revoked, "password changed");
        Ok(())
    }

    /// Checks the password before the caller deletes the user's hostings.
    pub async fn check_password(&self, actor: &Actor, password: &str) -> Result<()> {
        let u = self.user_row(actor.user_id).await?;
        if self.password_matches(&u, password).await? {
            Ok(())
        } else {
            Err(Error::validation("password", "the password is not correct"))
        }
    }

    /// Deletes the account (keys and tokens go with it). Its hostings must be gone first.
    pub async fn delete_user(&self, actor: &Actor, password: &str) -> Result<()> {
        self.check_password(actor, password).await?;
        if !rows::delete(&self.db, actor.user_id).await? {
            return Err(Error::conflict(None, "delete your hostings before deleting the account"));
        }
        tracing::info!(user_id = actor.user_id, "account deleted");
        Ok(())
    }
}
