//! `GET /api/v1/hostings/{id}/stream`: server-sent events for one hosting. Sends what was
//! missed first (after `Last-Event-ID` or `?after=`), then live events (`event`), the hosting
//! after each change (`hosting`), resource samples (`stats`) and `deleted`. Only the owner
//! (or an admin) can subscribe; every live item is checked again before it is sent, and the
//! stream ends within `RECHECK` once the caller's token or session no longer holds.
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use service::hosting::{HostingService, LiveEvent};
use tokio_stream::wrappers::BroadcastStream;

use super::extract::ApiUser;
use super::hostings::AfterQuery;
use super::{ApiResult, hosting};
use app::state::AppState;

/// How often an open stream checks that its caller may still see it.
const RECHECK: Duration = Duration::from_secs(10);

#[utoipa::path(operation_id = "hostings_stream", get, path = "/api/v1/hostings/{id}/stream", tag = "hostings", security(("bearer" = [])), params(("id" = i32, Path), AfterQuery),
    responses((status = 200, description = "text/event-stream of `event`, `hosting`, `stats` and `deleted` messages")))]
pub async fn stream(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<i32>,
    Query(q): Query<AfterQuery>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let h = hosting(&state)?;
    let actor = user.actor();
    // Authorise now: a stranger gets 404 before any byte of the stream.
    let current = h.get(&actor, id).await?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .or(q.after)
        .unwrap_or(0);
    // Subscribe before reading the backlog so nothing falls between the two.
    let live = BroadcastStream::new(h.subscribe());
    let backlog = h.events(&actor, id, after).await?;
    let mut first: Vec<Result<SseEvent, Infallible>> = backlog.iter().map(|e| Ok(event_msg(e))).collect();
    first.push(Ok(json_event("hosting", &service_to_json(&current))));
    let last_sent = backlog.last().map(|e| e.id).unwrap_or(after);

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
                    LiveEvent::Stats(s) => vec![Ok(json_event("stats", &serde_json::to_value(&s).unwrap_or_default()))],
                    LiveEvent::Event(e) => {
                        if e.id <= last_sent {
                            return vec![];
                        }
                        let mut out = vec![Ok(event_msg(&e))];
                        if e.status == "deleted" {
                            out.push(Ok(SseEvent::default().event("deleted").data("{}")));
                        } else if let Ok(v) = hs.get(&actor, id).await {
                            out.push(Ok(json_event("hosting", &service_to_json(&v))));
                        }
                        out
                    }
                }
            }
        })
        .flat_map(futures::stream::iter);
    // A stream outlives its request: end it once the token is revoked, the session logged out,
    // the password changed or the role changed (checked every RECHECK).
    let ended = async move {
        let mut tick = tokio::time::interval(RECHECK);
        tick.tick().await;
        loop {
            tick.tick().await;
            if !user.still_valid(&state).await {
                tracing::info!(hosting_id = id, "event stream ended: its credential no longer holds");
                return;
            }
        }
    };
    let stream = futures::stream::iter(first).chain(live).take_until(Box::pin(ended));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn service_to_json(v: &service::hosting::HostingView) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

fn event_msg(e: &service::hosting::EventView) -> SseEvent {
    SseEvent::default().event("event").id(e.id.to_string()).data(serde_json::to_string(e).unwrap_or_default())
}

fn json_event(name: &str, v: &serde_json::Value) -> SseEvent {
    SseEvent::default().event(name).data(v.to_string())
}
