//! Hosting events: written to the database (audit trail, catch-up after a dropped connection)
//! and broadcast to live subscribers (event streams, the dashboard).
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use tokio::sync::broadcast;

use super::fanout::{Fanout, Note};
use super::view::{EventView, StatSample};
use vmw_types::Step;
use crate::Result;
use crate::db::{entity::hosting_event, now_ms};

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
    db: DatabaseConnection,
    tx: broadcast::Sender<LiveEvent>,
    /// The other replicas (PostgreSQL NOTIFY), told of every stored event.
    fanout: Fanout,
}

impl EventBus {
    /// `me` names this replica in its notes to the others.
    pub fn new(db: DatabaseConnection, me: String) -> Self {
        let (tx, _) = broadcast::channel(1024);
        Self { fanout: Fanout::new(db.clone(), me), db, tx }
    }

    pub fn fanout(&self) -> &Fanout {
        &self.fanout
    }

    /// Hands another replica's event to this replica's subscribers (an id is read back first).
    pub async fn deliver(&self, note: &Note) {
        let v = match note {
            Note::Event { e } => e.clone(),
            Note::EventId { id } => match hosting_event::Entity::find_by_id(*id).one(&self.db).await {
                Ok(Some(m)) => EventView::from(m),
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
        let row = hosting_event::ActiveModel {
            hosting_id: Set(e.hosting_id),
            user_id: Set(e.user_id),
            kind: Set(e.kind),
            step: Set(e.step),
            status: Set(e.status),
            message: Set(e.message.clone()),
            duration_ms: Set(e.duration_ms),
            created_at: Set(now_ms()),
            ..Default::default()
        };
        tracing::info!(
            hosting_id = e.hosting_id,
            kind = %e.kind,
            step = e.step.map(Step::as_str),
            status = %e.status,
            duration_ms = e.duration_ms,
            "{}",
            e.message
        );
        match row.insert(&self.db).await {
            Ok(m) => {
                let v = EventView::from(m);
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
        self.fetch(
            hosting_event::Entity::find()
                .filter(hosting_event::Column::HostingId.eq(hosting_id))
                .filter(hosting_event::Column::Id.gt(after))
                .order_by_asc(hosting_event::Column::Id),
            limit,
        )
        .await
    }

    /// The newest event of one hosting (a deleted hosting's is its deletion).
    pub async fn newest(&self, hosting_id: i32) -> Result<Option<EventView>> {
        let q = hosting_event::Entity::find()
            .filter(hosting_event::Column::HostingId.eq(hosting_id))
            .order_by_desc(hosting_event::Column::Id);
        Ok(self.fetch(q, 1).await?.pop())
    }

    /// The newest events across all hostings (admin page), newest first.
    pub async fn recent(&self, limit: u64) -> Result<Vec<EventView>> {
        self.fetch(hosting_event::Entity::find().order_by_desc(hosting_event::Column::Id), limit).await
    }

    /// Deletes events created before `cutoff_ms`, except the newest event of each hosting (its
    /// last word: how it ended or why it failed). Returns how many went.
    pub async fn prune_before(&self, cutoff_ms: i64) -> Result<u64> {
        use sea_orm::sea_query::{Expr, Query};
        let newest = Query::select()
            .expr(sea_orm::sea_query::Func::max(Expr::col(hosting_event::Column::Id)))
            .from(hosting_event::Entity)
            .group_by_col(hosting_event::Column::HostingId)
            .to_owned();
        let res = hosting_event::Entity::delete_many()
            .filter(hosting_event::Column::CreatedAt.lt(cutoff_ms))
            .filter(hosting_event::Column::Id.not_in_subquery(newest))
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected)
    }

    async fn fetch(&self, q: sea_orm::Select<hosting_event::Entity>, limit: u64) -> Result<Vec<EventView>> {
        Ok(q.limit(limit).all(&self.db).await?.into_iter().map(EventView::from).collect())
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
