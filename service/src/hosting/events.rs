//! Hosting events: written to the database (audit trail, catch-up after a dropped connection)
//! and broadcast to live subscribers (event streams, the dashboard).
use tokio::sync::broadcast;

use super::fanout::{Fanout, Note};
use super::view::{EventView, StatSample};
use vmw_types::Step;
use crate::Result;
use crate::store::Store;

/// Something that happened, live. Subscribers filter by user (authorization) themselves.
#[derive(Clone, Debug)]
pub enum LiveEvent {
    Event(EventView),
    Stats(StatSample),
}

impl LiveEvent {
    pub fn user_id(&self) -> i32 {
        match self {
            LiveEvent::Event(e) => e.user_id,
            LiveEvent::Stats(s) => s.user_id,
        }
    }
    pub fn hosting_id(&self) -> i32 {
        match self {
            LiveEvent::Event(e) => e.hosting_id,
            LiveEvent::Stats(s) => s.hosting_id,
        }
    }
}

#[derive(Clone)]
pub struct EventBus {
    /// The event rows.
    store: Store,
    tx: broadcast::Sender<LiveEvent>,
    /// The other replicas (PostgreSQL NOTIFY), told of every stored event.
    fanout: Fanout,
}

impl EventBus {
    /// `me` names this replica in its notes to the others.
    pub fn new(store: Store, me: String) -> Self {
        let (tx, _) = broadcast::channel(1024);
        Self { fanout: Fanout::new(store.db().clone(), me), store, tx }
    }

    pub fn fanout(&self) -> &Fanout {
        &self.fanout
    }

    /// Hands another replica's event to this replica's subscribers (an id is read back first).
    pub async fn deliver(&self, note: &Note) {
        let v = match note {
            Note::Event { e } => e.clone(),
            Note::EventId { id } => match self.store.event(*id).await {
                Ok(Some(v)) => v,
                Ok(None) => return,
                Err(err) => {
                    tracing::warn!(event_id = id, %err, "could not read another replica's event");
                    return;
                }
            },
            _ => return,
        };
        let _ = self.tx.send(LiveEvent::Event(v));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.tx.subscribe()
    }

    pub fn publish_stats(&self, s: StatSample) {
        let _ = self.tx.send(LiveEvent::Stats(s));
    }

    /// Stores the event (its id and time are the store's: those of `e` are ignored), then
    /// broadcasts it. A failure to store is logged, not fatal: the operation itself must not
    /// fail because its audit line could not be written.
    pub async fn record(&self, e: EventView) -> Option<EventView> {
        tracing::info!(
            hosting_id = e.hosting_id,
            kind = %e.kind,
            step = e.step.map(Step::as_str),
            status = %e.status,
            duration_ms = e.duration_ms,
            "{}",
            e.message
        );
        match self.store.insert_event(&e).await {
            Ok(v) => {
                let _ = self.tx.send(LiveEvent::Event(v.clone()));
                self.fanout.send(Note::Event { e: v.clone() }).await;
                Some(v)
            }
            Err(err) => {
                tracing::error!(hosting_id = e.hosting_id, %err, "could not store hosting event");
                None
            }
        }
    }

    /// Events of one hosting with id > `after`, oldest first (catch-up for reconnecting clients).
    pub async fn list(&self, hosting_id: i32, after: i32, limit: u64) -> Result<Vec<EventView>> {
        self.store.events_after(hosting_id, after, limit).await
    }

    /// The newest event of one hosting (a deleted hosting's is its deletion).
    pub async fn newest(&self, hosting_id: i32) -> Result<Option<EventView>> {
        self.store.newest_event(hosting_id).await
    }

    /// The newest events across all hostings (admin page), newest first.
    pub async fn recent(&self, limit: u64) -> Result<Vec<EventView>> {
        self.store.recent_events(limit).await
    }

    /// Deletes events created before `cutoff_ms`, except the newest event of each hosting (its
    /// last word: how it ended or why it failed). Returns how many went.
    pub async fn prune_before(&self, cutoff_ms: i64) -> Result<u64> {
        self.store.prune_events_before(cutoff_ms).await
    }
}

/// Returns at the next state event of hosting `id` (or when events were missed); never while
/// the bus is closed. Callers bound it with a timeout and look at the row again.
pub(crate) async fn next_state_event(rx: &mut broadcast::Receiver<LiveEvent>, id: i32) {
    loop {
        match rx.recv().await {
            Ok(LiveEvent::Event(e)) if e.hosting_id == id && e.kind == vmw_types::EventKind::State => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}
