//! Bearer tokens: login tokens (expire; die with a password change) and named API tokens
//! (minted with the password, listed, revoked). Only a token's SHA-256 is stored.
use std::time::Duration;

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{AccountEventKind, Accounts, Actor, ApiTokenView, TokenKind, UserView, short_name};
use crate::db::now_ms;
use crate::store::tokens::{self as rows, NewToken};
use crate::{Error, Result};

const MAX_API_TOKENS: u64 = 20;
/// A token's `last_used_at` is written at most this often.
const LAST_USED_EVERY_MS: i64 = 60_000;

/// The longest expiry an API token may be given.
pub const MAX_TOKEN_DAYS: u32 = 3650;

/// `vmw_` + 32 random bytes, base64url. Only its SHA-256 is stored.
fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    format!("vmw_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Accounts {
    /// A bearer token from a login (expires; dies with a password change).
    pub async fn issue_login_token(&self, user_id: i32, ttl: Duration) -> Result<(String, i64)> {
        let token = new_token();
        let expires = now_ms() + ttl.as_millis() as i64;
        let row = NewToken {
            user_id,
            name: "login".into(),
            kind: TokenKind::Login,
            token_hash: token_hash(&token),
            expires_at: Some(expires),
        };
        rows::insert(&self.db, row).await?;
        // Expired login tokens are dead weight.
        rows::delete_expired_logins(&self.db, now_ms()).await?;
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
        if !self.password_matches(&u, password).await? {
            tracing::info!(user_id = actor.user_id, "API token refused: wrong password");
            return Err(Error::WrongPassword { field: "password" });
        }
        if rows::count_api(&self.db, actor.user_id).await? >= MAX_API_TOKENS {
            return Err(Error::QuotaExceeded(format!("at most {MAX_API_TOKENS} API tokens; revoke one first")));
        }
        let token = new_token();
        let new = NewToken { user_id: actor.user_id, name, kind: TokenKind::Api, token_hash: token_hash(&token), expires_at };
        let row = rows::insert(&self.db, new).await?;
        self.note(actor.user_id, AccountEventKind::TokenCreated, None, Some(row.name.clone())).await;
        Ok((token, row.into()))
    }

    pub async fn list_api_tokens(&self, actor: &Actor) -> Result<Vec<ApiTokenView>> {
        rows::list_api(&self.db, actor.user_id).await
    }

    pub async fn revoke_api_token(&self, actor: &Actor, token_id: i32) -> Result<()> {
        let t = rows::find_api(&self.db, actor.user_id, token_id).await?.ok_or(Error::NotFound("token"))?;
        if rows::delete(&self.db, actor.user_id, t.id).await? == 0 {
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
        let t = rows::by_hash(&self.db, &token_hash(token)).await?.ok_or(Error::Unauthorized)?;
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
            rows::touch(&self.db, t.id, now, LAST_USED_EVERY_MS).await?;
        }
        Ok(UserView::from(&u))
    }
}
