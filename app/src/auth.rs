//! Sessions (server side): who is logged in, login with a new session id, logout that ends the
//! session on the server. Shared by server functions and the REST API.
use leptos::prelude::*;
use service::accounts::sessions::{LOGIN_ID_KEY, SEEN_EVERY_MS};
use service::accounts::{Actor, AsActor, UserView};
use tower_sessions::Session;

use crate::error::AppError;
use crate::state::AppState;

const USER_ID: &str = "uid";
const AUTH_VERSION: &str = "av";
const LOGIN_AT: &str = "login_at";
/// When last seen was last written for this session (ms), so a request does not query for it.
const SEEN_AT: &str = "seen_at";

fn internal(e: impl std::fmt::Display) -> AppError {
    tracing::error!(error = %e, "session store error");
    AppError::Internal("Session error. Please log in again.".into())
}

/// The logged-in user of this session, if any. Sessions of an older password (auth version)
/// or past the absolute lifetime are ended here.
pub async fn session_user(session: &Session, state: &AppState) -> Result<Option<UserView>, AppError> {
    let Some(uid) = session.get::<i32>(USER_ID).await.map_err(internal)? else {
        return Ok(None);
    };
    let av = session.get::<i32>(AUTH_VERSION).await.map_err(internal)?.unwrap_or(0);
    let login_at = session.get::<i64>(LOGIN_AT).await.map_err(internal)?.unwrap_or(0);
    let too_old = service::db::now_ms() - login_at > state.session_max_age_ms;
    let current = match state.accounts.auth_version(uid).await {
        Ok(v) => Some(v),
        Err(service::Error::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if too_old || current != Some(av) {
        session.flush().await.map_err(internal)?;
        return Ok(None);
    }
    let user = state.accounts.get_user(uid).await?;
    // Disabling bumps the auth version (above), so this is only a second lock on the door.
    if user.disabled_at.is_some() {
        session.flush().await.map_err(internal)?;
        return Ok(None);
    }
    Ok(Some(user))
}

/// Starts an authenticated session under a new id (no session fixation), with a login
/// session of its own (listed on the settings page: the client's address and browser).
pub async fn login_session(session: &Session, state: &AppState, user: &UserView) -> Result<(), AppError> {
    // Read from the request before anything else is awaited.
    let (client, agent) = (client_ip().await, user_agent().await);
    // A login over a logged-in session replaces it: the old one is not left listed.
    if let Some((uid, old)) = session.get::<i32>(USER_ID).await.ok().flatten().zip(login_id(session).await) {
        state.accounts.end_own_session(uid, &old).await?;
    }
    session.cycle_id().await.map_err(internal)?;
    let av = state.accounts.auth_version(user.id).await?;
    let lsid = state.accounts.start_session(user.id, client, agent.as_deref()).await?;
    session.insert(USER_ID, user.id).await.map_err(internal)?;
    session.insert(AUTH_VERSION, av).await.map_err(internal)?;
    session.insert(LOGIN_AT, service::db::now_ms()).await.map_err(internal)?;
    session.insert(LOGIN_ID_KEY, lsid).await.map_err(internal)?;
    session.insert(SEEN_AT, service::db::now_ms()).await.map_err(internal)?;
    Ok(())
}

/// Ends the session on the server (the old cookie is worthless afterwards) and its login
/// session (no longer listed).
pub async fn logout_session(session: &Session, state: &AppState) -> Result<(), AppError> {
    let uid = session.get::<i32>(USER_ID).await.map_err(internal)?;
    if let Some((uid, lsid)) = uid.zip(login_id(session).await) {
        state.accounts.end_own_session(uid, &lsid).await?;
    }
    session.flush().await.map_err(internal)
}

/// After a password change: the session continues with the new auth version; the others
/// (signed out by the new auth version) are ended so the list shows only this one.
pub async fn refresh_session(session: &Session, state: &AppState, user_id: i32) -> Result<(), AppError> {
    let av = state.accounts.auth_version(user_id).await?;
    let actor = Actor { user_id, is_admin: false };
    state.accounts.end_sessions(&actor, login_id(session).await.as_deref()).await?;
    session.cycle_id().await.map_err(internal)?;
    session.insert(AUTH_VERSION, av).await.map_err(internal)
}

/// This session's login session id (None: not logged in, or a bearer-token caller).
pub async fn login_id(session: &Session) -> Option<String> {
    session.get::<String>(LOGIN_ID_KEY).await.ok().flatten()
}

/// After a request of a logged-in session: notes it as last seen (a write at most once a
/// minute, from the time kept in the session, so no query on other requests). A session from
/// before login sessions existed gets one here.
pub async fn note_seen(session: &Session, state: &AppState, client: Option<std::net::IpAddr>, user_agent: Option<&str>) {
    let Ok(Some(uid)) = session.get::<i32>(USER_ID).await else { return };
    let now = service::db::now_ms();
    let result = match login_id(session).await {
        None => match state.accounts.start_session(uid, client, user_agent).await {
            Ok(id) => session.insert(LOGIN_ID_KEY, id).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        Some(id) => {
            let seen = session.get::<i64>(SEEN_AT).await.ok().flatten().unwrap_or(0);
            if now - seen < SEEN_EVERY_MS {
                return;
            }
            state.accounts.session_seen(&id, client).await.map(drop).map_err(|e| e.to_string())
        }
    };
    match result {
        Ok(()) => {
            if let Err(err) = session.insert(SEEN_AT, now).await {
                tracing::warn!(%err, "could not note when the session was seen");
            }
        }
        Err(err) => tracing::warn!(%err, user_id = uid, "could not note when the session was seen"),
    }
}

// ---- helpers for server functions ----

pub fn state() -> Result<AppState, AppError> {
    use_context::<AppState>().ok_or_else(|| AppError::Internal("server state missing".into()))
}

pub async fn session() -> Result<Session, AppError> {
    leptos_axum::extract::<Session>().await.map_err(internal)
}

/// The logged-in user, or Unauthorized. Every server function that reads or changes a
/// user's data starts here: pages' redirects are only a convenience.
pub async fn require_user() -> Result<(AppState, UserView, Actor), AppError> {
    let state = state()?;
    let session = session().await?;
    match session_user(&session, &state).await? {
        Some(u) => {
            let actor = u.actor();
            Ok((state, u, actor))
        }
        None => Err(AppError::Unauthorized),
    }
}

pub async fn require_admin() -> Result<(AppState, UserView, Actor), AppError> {
    let (state, user, actor) = require_user().await?;
    if !user.is_admin {
        // Through the service error, so the answer's status is 403 too.
        return Err(service::Error::Forbidden.into());
    }
    Ok((state, user, actor))
}

/// The hosting service, or a clear error when this server runs without VMs.
pub fn hosting(state: &AppState) -> Result<service::hosting::HostingService, AppError> {
    state
        .hosting
        .clone()
        .ok_or_else(|| AppError::from(service::Error::hosting_disabled()))
}

/// The client's address for login limits: the socket peer, or what nginx says when the peer is
/// loopback (nginx in front).
pub async fn client_ip() -> Option<std::net::IpAddr> {
    use axum::extract::ConnectInfo;
    let peer = leptos_axum::extract::<ConnectInfo<std::net::SocketAddr>>().await.ok().map(|c| c.0.ip());
    let headers = leptos_axum::extract::<http::HeaderMap>().await.ok();
    crate::auth::client_from(peer, headers.as_ref())
}

/// The request's User-Agent header, if any.
pub async fn user_agent() -> Option<String> {
    let headers = leptos_axum::extract::<http::HeaderMap>().await.ok()?;
    headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Forwarding headers are believed only from a loopback peer (our nginx): `X-Real-IP`, else
/// the last `X-Forwarded-For` entry (the one nginx appended; earlier ones are the client's
/// own claims). Anyone else is judged by the socket address.
pub fn client_from(peer: Option<std::net::IpAddr>, headers: Option<&http::HeaderMap>) -> Option<std::net::IpAddr> {
    let header = |name: &str| headers.and_then(|h| h.get(name)).and_then(|v| v.to_str().ok());
    let real_ip = header("x-real-ip").and_then(|v| v.trim().parse().ok());
    let forwarded_for = || header("x-forwarded-for").and_then(|v| v.rsplit(',').next()).and_then(|v| v.trim().parse().ok());
    match peer {
        Some(p) if p.is_loopback() => real_ip.or_else(forwarded_for).or(Some(p)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::client_from;
    use std::net::IpAddr;

    fn h(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), http::HeaderValue::from_static(v))).collect()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarding_headers_count_only_behind_a_loopback_proxy() {
        let lo = Some(ip("127.0.0.1"));
        let remote = Some(ip("203.0.113.9"));
        assert_eq!(client_from(lo, Some(&h(&[("x-real-ip", "198.51.100.7")]))), Some(ip("198.51.100.7")));
        assert_eq!(
            client_from(lo, Some(&h(&[("x-forwarded-for", "1.2.3.4, 198.51.100.8")]))),
            Some(ip("198.51.100.8")),
            "the entry nginx appended, not the client's claim"
        );
        assert_eq!(client_from(lo, Some(&h(&[]))), lo);
        assert_eq!(client_from(remote, Some(&h(&[("x-real-ip", "198.51.100.7")]))), remote, "a remote peer cannot pick its address");
        assert_eq!(client_from(Some(ip("::1")), Some(&h(&[("x-real-ip", "garbage")]))), Some(ip("::1")));
    }
}
