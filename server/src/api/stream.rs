//! `GET /api/v1/hostings/{id}/stream`: server-sent events for one hosting. Sends what was
//! missed first (after `Last-Event-ID` or `?after=`), then live events (`event`), the hosting
//! after each change (`hosting`), resource samples (`stats`) and `deleted`. Only the owner
//! (or an admin) can subscribe; every live item is checked again before it is sent, and the
//! stream ends within `RECHECK` once the caller's token or session no longer holds.
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use service::hosting::{EventStatus, HostingService, LiveEvent};
use vmw_types::LiveMessage;
use tokio_stream::wrappers::BroadcastStream;

use super::extract::{ApiUser, Path, Query};
use super::error::ErrorBody;
use super::params::AfterQuery;
use super::responses::HostingErrors;
use super::{ApiResult, hosting};
use app::state::AppState;

/// How often an open stream checks that its caller may still see it.
const RECHECK: Duration = Duration::from_secs(10);

#[utoipa::path(operation_id = "hostings_stream", get, path = "/api/v1/hostings/{id}/stream", tag = "hostings", security(("bearer" = [])), params(("id" = i32, Path), AfterQuery),
    responses((status = 200, description = "Server-sent events named `event` (an EventView), `hosting` (a HostingView), `stats` (a StatSample) and `deleted` (`{\"hosting_id\": N}`); each `data` is that JSON", content_type = "text/event-stream", body = String),
        HostingErrors, (status = 429, description = "The account holds as many streams and long polls as it may (`too_many_streams`)", body = ErrorBody)))]
pub async fn stream(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<i32>,
    Query(q): Query<AfterQuery>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let h = hosting(&state)?;
    let actor = user.actor();
    // Authorise now: a stranger gets 404 before any byte of the stream. A stream that was cut
    // (e.g. an nginx reload ending its worker) just as the hosting went reconnects to a hosting
    // that is gone: its owner gets what they missed and `deleted`, then the stream ends.
    let current = match h.get(&actor, id).await {
        Ok(v) => Some(v),
        Err(service::Error::NotFound(_)) if h.was_deleted(&actor, id).await? => None,
        Err(e) => return Err(e.into()),
    };
    // One of the account's places for held requests, kept until the stream ends.
    let held = state.held.try_hold(actor.user_id).ok_or(super::ApiError::TooManyStreams { max: state.held.max() })?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .or(q.after)
        .unwrap_or(0);
    // Subscribe before reading the backlog so nothing falls between the two.
    let live = BroadcastStream::new(h.subscribe());
    let backlog = h.events(&actor, id, after).await?;
    let last_sent = backlog.last().map(|e| e.id).unwrap_or(after);
    let mut first: Vec<Result<SseEvent, Infallible>> =
        backlog.into_iter().map(|e| Ok(sse(LiveMessage::Event(e)))).collect();
    let gone = current.is_none();
    // `retry`: a stream ended after a reload is picked up again within half a second.
    first.push(Ok(sse(match current {
        Some(v) => LiveMessage::Hosting(v),
        None => LiveMessage::Deleted { hosting_id: id },
    })
    .retry(Duration::from_millis(500))));

    let hs: HostingService = h.clone();
    let live = live
        .filter_map(move |item| {
            let keep = match item {
                Ok(ev) if ev.hosting_id() == id && HostingService::visible_to(&actor, &ev) => Some(ev),
                _ => None, // other hostings, or a lagged receiver (the client catches up on reconnect)
            };
            async move { keep }
        })
        .then(move |ev| {
            let hs = hs.clone();
            async move {
                match ev {
                    LiveEvent::Stats(s) => vec![Ok(sse(LiveMessage::Stats(s)))],
                    LiveEvent::Event(e) => {
                        if e.id <= last_sent {
                            return vec![];
                        }
                        let deleted = e.status == EventStatus::Deleted;
                        let mut out = vec![Ok(sse(LiveMessage::Event(e)))];
                        if deleted {
                            out.push(Ok(sse(LiveMessage::Deleted { hosting_id: id })));
                        } else if let Ok(v) = hs.get(&actor, id).await {
                            out.push(Ok(sse(LiveMessage::Hosting(v))));
                        }
                        out
                    }
                }
            }
        })
        .flat_map(futures::stream::iter);
    let live = if gone { futures::stream::empty().left_stream() } else { live.right_stream() };
    // A stream outlives its request: end it once the token is revoked, the session logged out,
    // the password changed or the role changed (checked every RECHECK).
    // It also ends cleanly after an nginx reload: the reload's old worker, which may carry this
    // stream, would cut it mid-chunk 10 s later (`worker_shutdown_timeout`); a clean end lets
    // the browser reconnect with Last-Event-ID through a new worker and miss nothing.
    let mut reloads = h.proxy_reloads();
    reloads.mark_unchanged();
    let ended = async move {
        let _held = held;
        let mut tick = tokio::time::interval(RECHECK);
        tick.tick().await;
        let mut proxied = true;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = reloads.changed(), if proxied => {
                    if changed.is_ok() {
                        tracing::debug!(hosting_id = id, "event stream ended: nginx reloaded");
                        return;
                    }
                    proxied = false; // no nginx any more: only the credential check ends it
                    continue;
                }
            }
            if !user.still_valid(&state).await {
                tracing::info!(hosting_id = id, "event stream ended: its credential no longer holds");
                return;
            }
        }
    };
    let stream = futures::stream::iter(first).chain(live).take_until(Box::pin(ended));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The schema of one event of the stream, for the document (`text/event-stream`): its name
/// (`event`) and its `data`, JSON of the schema the name says; `id` on events, `retry` on the
/// first hosting message.
pub fn event_schema() -> serde_json::Value {
    use serde_json::json;
    let kind = |name: &str, data: serde_json::Value| {
        json!({
            "type": "object",
            "required": ["event", "data"],
            "properties": {
                "event": {"type": "string", "const": name},
                "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": data},
                "id": {"type": "string"},
                "retry": {"type": "integer", "minimum": 0},
            },
        })
    };
    let schema = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    let deleted = json!({"type": "object", "required": ["hosting_id"], "properties": {"hosting_id": {"type": "integer", "format": "int32"}}});
    debug_assert_eq!(LiveMessage::NAMES, ["hosting", "event", "stats", "deleted"]);
    json!({"oneOf": [
        kind("hosting", schema("HostingView")),
        kind("event", schema("EventView")),
        kind("stats", schema("StatSample")),
        kind("deleted", deleted),
    ]})
}

/// One message as an SSE event: its name, its payload as data, and an event's id (so a
/// reconnecting client resumes after it with `Last-Event-ID`).
fn sse(msg: LiveMessage) -> SseEvent {
    let ev = SseEvent::default().event(msg.name()).data(msg.data_json());
    match &msg {
        LiveMessage::Event(e) => ev.id(e.id.to_string()),
        _ => ev,
    }
}
