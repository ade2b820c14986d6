//! Logged-in browser sessions as their owner sees them: listed (created, last seen, address,
//! browser) and ended one by one or all but the current. A login session has an opaque public
//! id kept in its tower-sessions record's data under [`LOGIN_ID_KEY`]; the record store
//! ([`super::session_store`]) copies it to the record's row, so ending the login session
//! deletes the record and its cookie fails on the next request. The raw cookie value (the
//! record's id) is never shown. Rows: [`crate::store::login_sessions`].
use std::net::IpAddr;

use base64::Engine;
use rand::RngCore;

use super::{Accounts, Actor};
use crate::db::now_ms;
use crate::store::login_sessions::{self as rows, LoginSessionRow};
use crate::{Error, Result};

pub use vmw_types::SessionView;

/// The session data key holding the login session's id.
pub const LOGIN_ID_KEY: &str = "lsid";

/// Last seen is written at most this often per session.
pub const SEEN_EVERY_MS: i64 = 60_000;

/// A login session whose record is not written yet (its request is still running) is not
/// pruned as an orphan before it is this old.
const ORPHAN_GRACE_MS: i64 = 10 * 60_000;

/// The longest user agent kept (they are the client's own claim).
const MAX_USER_AGENT: usize = 512;

/// 16 random bytes, base64url: unguessable, and unrelated to the cookie.
fn new_login_id() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// "Chrome on Linux" from a User-Agent header, by woothee (a small classifier maintained for
/// many languages: no regex database to load at start, unlike uap-core's `uaparser`, whose
/// detail (device models, minor versions) a sessions list does not need).
pub fn browser_summary(user_agent: &str) -> String {
    let unknown = |s: &str| s.is_empty() || s == woothee::woothee::VALUE_UNKNOWN;
    match woothee::parser::Parser::new().parse(user_agent) {
        Some(r) if !unknown(r.name) && !unknown(r.os) => format!("{} on {}", r.name, r.os),
        Some(r) if !unknown(r.name) => r.name.to_owned(),
        Some(r) if !unknown(r.os) => format!("Unknown browser on {}", r.os),
        _ => "Unknown browser".to_owned(),
    }
}

fn view(r: LoginSessionRow, current: Option<&str>) -> SessionView {
    SessionView {
        current: current == Some(r.id.as_str()),
        browser: browser_summary(&r.user_agent),
        id: r.id,
        created_at: r.created_at,
        last_seen_at: r.last_seen_at,
        client_ip: r.client_ip,
    }
}

fn ip_text(client: Option<IpAddr>) -> Option<String> {
    client.map(|ip| ip.to_canonical().to_string())
}

impl Accounts {
    /// Records a new login session of `user_id` and returns its id, to keep in the session's
    /// data under [`LOGIN_ID_KEY`].
    pub async fn start_session(&self, user_id: i32, client: Option<IpAddr>, user_agent: Option<&str>) -> Result<String> {
        let mut ua: String = user_agent.unwrap_or("").chars().filter(|c| !c.is_control()).collect();
        if ua.len() > MAX_USER_AGENT {
            let mut end = MAX_USER_AGENT;
            while !ua.is_char_boundary(end) {
                end -= 1;
            }
            ua.truncate(end);
        }
        let now = now_ms();
        let id = new_login_id();
        rows::insert(
            &self.db,
            LoginSessionRow { id: id.clone(), user_id, created_at: now, last_seen_at: now, client_ip: ip_text(client), user_agent: ua },
        )
        .await?;
        Ok(id)
    }

    /// Notes a request of login session `id` from `client`; writes at most once a minute.
    /// Whether it wrote.
    pub async fn session_seen(&self, id: &str, client: Option<IpAddr>) -> Result<bool> {
        rows::seen(&self.db, id, ip_text(client), now_ms(), SEEN_EVERY_MS).await
    }

    /// The caller's live sessions, newest first; `current` (the calling session's id, none for
    /// a bearer token) is marked.
    pub async fn list_sessions(&self, actor: &Actor, current: Option<&str>) -> Result<Vec<SessionView>> {
        let found = rows::live_for_user(&self.db, actor.user_id, now_ms()).await?;
        Ok(found.into_iter().map(|r| view(r, current)).collect())
    }

    /// Ends the caller's session `id` (its cookie stops working). NotFound for an unknown id or
    /// another user's.
    pub async fn end_session(&self, actor: &Actor, id: &str) -> Result<()> {
        if !rows::end(&self.db, actor.user_id, id).await? {
            return Err(Error::NotFound("session"));
        }
        tracing::info!(user_id = actor.user_id, "session ended");
        Ok(())
    }

    /// Ends all of the caller's sessions but `except` (the current one, if any); how many.
    pub async fn end_sessions(&self, actor: &Actor, except: Option<&str>) -> Result<u64> {
        let n = rows::end_all(&self.db, actor.user_id, except).await?;
        tracing::info!(user_id = actor.user_id, ended = n, kept_current = except.is_some(), "sessions ended");
        Ok(n)
    }

    /// Ends login session `id` whoever owns it (log-out of that session itself).
    pub async fn end_own_session(&self, user_id: i32, id: &str) -> Result<()> {
        rows::end(&self.db, user_id, id).await.map(drop)
    }
}

/// Deletes login sessions no record names any more (expired or logged out), keeping new ones
/// whose record is still being written. The expired-session sweep calls it.
pub async fn prune_orphans(db: &crate::db::DatabaseConnection) -> Result<u64> {
    rows::prune_orphans(db, now_ms() - ORPHAN_GRACE_MS).await
}

#[cfg(test)]
mod tests {
    use super::browser_summary;

    #[test]
    fn user_agents_are_summarised() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        assert_eq!(browser_summary(chrome), "Chrome on Linux");
        let firefox = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0";
        assert_eq!(browser_summary(firefox), "Firefox on Windows 10");
        assert_eq!(browser_summary("curl/8.5.0"), "HTTP Library", "woothee names tools by kind");
        assert_eq!(browser_summary(""), "Unknown browser");
    }
}
