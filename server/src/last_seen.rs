//! After each request of a logged-in browser session: its login session's last seen and
//! address (see `app::auth::note_seen`: a write at most once a minute). Inside the session
//! layer, after the handler, so a log-in or log-out in this request is already done.
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use app::state::AppState;

pub async fn note(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Static files: no session load for them.
    if req.uri().path().starts_with("/pkg/") {
        return next.run(req).await;
    }
    let session = req.extensions().get::<tower_sessions::Session>().cloned();
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let client = app::auth::client_from(peer, Some(req.headers()));
    let user_agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let resp = next.run(req).await;
    if let Some(session) = session
        && !resp.status().is_server_error()
    {
        app::auth::note_seen(&session, &state, client, user_agent.as_deref()).await;
    }
    resp
}
