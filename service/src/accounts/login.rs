//! Log-in by email or username, within the limits on guessing (per account, per client
//! address, with an allowance of its own for a client that logged in before).
use std::net::IpAddr;

use super::limiter::client_key;
use super::{AccountEventKind, Accounts, UserView};
use crate::store::users as rows;
use crate::{Error, Result};

impl Accounts {
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
        let found = rows::by_login(&self.db, &login).await?;
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
}
