//! The interactive serial console over a WebSocket, and the console password.
//!
//! `GET /api/v1/hostings/{id}/console/ws` (a WebSocket handshake): the owner's or an admin's
//! session cookie (never a token: a leaked API token must not give a shell; 401
//! `session_required`), an `Origin` of
//! the dashboard (another site's page could otherwise open it with the visitor's cookie),
//! others 404 before the upgrade. Opening it takes the console over from another tab (one
//! writer: see `service::hosting::console`).
//!
//! Frames: binary both ways are the serial line's bytes. Text from the client is JSON control:
//! `{"type":"resize","rows":R,"cols":C}`. Text from the server is `{"type":"status","state":
//! "connected"|"waiting"|"taken_over"|"gone", "reason"?}`. The server closes with 4001 (taken
//! over by another console: do not reconnect), 4004 (the hosting is gone), 4003 (the session
//! or token no longer holds) or 4000 (nginx reloaded: reconnect now, through a new worker).
//!
//! Backpressure: a binary frame is read only once the one before it fits in the session's input
//! budget (`service::vm::INPUT_BUDGET`, 256 KiB on its way to the guest at most), so a guest
//! that does not read its serial line stops the reading of the socket (the client's sends
//! block) until it reads again.
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use service::hosting::{ConsoleInput, ConsoleOutput, ConsoleStatus, HostingService};
use service::vm::Typed;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::extract::{ApiUser, Credential, Json, Path};
use super::responses::HostingErrors;
use super::{ApiError, ApiResult, hosting};
use crate::csrf;
use app::state::{AppState, HeldSlot};

/// How often an open console checks that its caller may still use it (and pings).
const RECHECK: Duration = Duration::from_secs(10);
/// The largest frame a client may send (a paste).
const MAX_FRAME: usize = 64 * 1024;

pub mod close {
    /// Nginx reloaded: reconnect at once.
    pub const RECONNECT: u16 = 4000;
    /// Another console of the hosting took over.
    pub const TAKEN_OVER: u16 = 4001;
    /// The session or token no longer holds.
    pub const SIGNED_OUT: u16 = 4003;
    /// The hosting is gone.
    pub const GONE: u16 = 4004;
}

#[utoipa::path(operation_id = "hostings_console_ws", get, path = "/api/v1/hostings/{id}/console/ws", tag = "hostings", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 101, description = "A WebSocket: the serial console, both ways (binary frames); JSON text frames for status (server) and resize (client)"),
              HostingErrors, (status = 400, description = "Not a WebSocket handshake (`websocket_required`)", body = ErrorBody),
              (status = 401, description = "No session, or a token instead of one (`session_required`)", body = ErrorBody),
              (status = 403, description = "Another site's page (`csrf`)", body = ErrorBody), (status = 429, description = "Too many held requests (`too_many_streams`)", body = ErrorBody)))]
pub async fn console_ws(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<i32>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let cookie = matches!(user.1, Credential::Session(..));
    if !cookie {
        return Err(ApiError::SessionRequired);
    }
    if csrf::is_cross_site_upgrade(&csrf::Origins::for_config(&state.config), &headers, cookie) {
        tracing::warn!(hosting_id = id, origin = ?headers.get("origin"), "refused a cross-site console handshake");
        return Err(ApiError::CrossSite);
    }
    let h = hosting(&state)?;
    let actor = user.actor();
    h.get(&actor, id).await?; // a stranger: 404 before anything else
    let ws = ws.map_err(|_| ApiError::bad("websocket_required", "open the console with a WebSocket handshake (GET with Upgrade: websocket)"))?;
    let held = state.held.try_hold(actor.user_id).ok_or(ApiError::TooManyStreams { max: state.held.max() })?;
    Ok(ws.max_message_size(MAX_FRAME).on_upgrade(move |socket| run(socket, state, user, h, held, id)))
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Control {
    Resize { rows: u16, cols: u16 },
}

async fn run(socket: WebSocket, state: AppState, user: ApiUser, h: HostingService, _held: HeldSlot, id: i32) {
    let (mut sink, mut from_client) = socket.split();
    let mut session = match h.attach_console(&user.actor(), id).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(hosting_id = id, error = %e, "console: could not attach");
            let _ = sink.send(close_frame(close::GONE, "not found")).await;
            return;
        }
    };
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.tick().await;
    let mut reloads = h.proxy_reloads();
    reloads.mark_unchanged();
    let mut proxied = true;
    // A frame read from the client that waits for room in the session's input budget: no
    // more is read meanwhile (the guest is not reading its serial line), output still flows.
    let mut waiting: Option<Vec<u8>> = None;
    let end: Option<(u16, &str)> = loop {
        let want = waiting.as_ref().map_or(0, Vec::len);
        tokio::select! {
            room = session.budget.room(want), if waiting.is_some() => {
                let bytes = waiting.take().unwrap_or_default();
                if session.input.send(ConsoleInput::Data(Typed::new(bytes, room))).await.is_err() { break None }
            }
            out = session.output.recv() => match out {
                Some(ConsoleOutput::Data(bytes)) => {
                    if sink.send(Message::Binary(bytes.into())).await.is_err() { break None }
                }
                Some(ConsoleOutput::Status(s)) => {
                    let mut v = serde_json::to_value(&s).unwrap_or_default();
                    v["type"] = "status".into();
                    if sink.send(Message::Text(v.to_string().into())).await.is_err() { break None }
                    match s {
                        ConsoleStatus::TakenOver => break Some((close::TAKEN_OVER, "another console took over")),
                        ConsoleStatus::Gone => break Some((close::GONE, "the site is gone")),
                        _ => {}
                    }
                }
                None => break Some((1000, "console closed")),
            },
            msg = from_client.next(), if waiting.is_none() => match msg {
                Some(Ok(Message::Binary(bytes))) => waiting = Some(bytes.to_vec()),
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<Control>(&t) {
                    Ok(Control::Resize { rows, cols }) => {
                        if session.input.send(ConsoleInput::Resize { rows, cols }).await.is_err() { break None }
                    }
                    Err(_) => tracing::debug!(hosting_id = id, "console: ignored a control message"),
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                Some(Ok(_)) => {} // ping/pong: answered by the WebSocket layer
            },
            _ = recheck.tick() => {
                if !user.still_valid(&state).await {
                    tracing::info!(hosting_id = id, "console ended: its credential no longer holds");
                    break Some((close::SIGNED_OUT, "signed out"));
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() { break None }
            }
            changed = reloads.changed(), if proxied => {
                if changed.is_ok() {
                    break Some((close::RECONNECT, "reconnect"));
                }
                proxied = false;
            }
        }
    };
    tracing::debug!(hosting_id = id, end = ?end, "console: the WebSocket ends");
    if let Some((code, reason)) = end {
        let _ = sink.send(close_frame(code, reason)).await;
    }
}

fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.to_owned().into() }))
}

#[derive(Deserialize, ToSchema)]
pub struct ConsolePasswordRequest {
    /// 10 to 128 characters, no control characters.
    #[schema(format = Password, min_length = 10, max_length = 128, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub password: String,
    /// The same again.
    pub confirm: String,
}

#[utoipa::path(operation_id = "hostings_console_password", post, path = "/api/v1/hostings/{id}/console/password", tag = "hostings", security(("bearer" = [])), params(("id" = i32, Path)),
    request_body = ConsolePasswordRequest,
    responses((status = 204, description = "The login user's password in the VM is set (for the console; SSH stays key-only)"), HostingErrors,
              (status = 409, description = "The site is not running, or its guest agent refused (`conflict`, `busy`)", body = ErrorBody),
              (status = 422, description = "Too short, too long, a control character, or the two differ", body = ErrorBody),
              (status = 504, description = "The VM did not set it within `--guest-call-timeout-secs` (`guest_timeout`); nothing was changed", body = ErrorBody)))]
pub async fn set_password(State(state): State<AppState>, user: ApiUser, Path(id): Path<i32>, Json(req): Json<ConsolePasswordRequest>) -> ApiResult<StatusCode> {
    hosting(&state)?.set_console_password(&user.actor(), id, &req.password, &req.confirm).await?;
    Ok(StatusCode::NO_CONTENT)
}
