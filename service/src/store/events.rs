//! The hosting event rows: the audit trail of every hosting, and the catch-up of clients and
//! replicas that missed the live broadcast (`hosting::events::EventBus`).
use sea_orm::{ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};

use super::Store;
use crate::Result;
use crate::db::{entity::hosting_event, now_ms};
use vmw_types::EventView;

impl Store {
    /// Stores event `e` (its id and time are the store's: those of `e` are ignored) and
    /// returns it as stored.
    pub async fn insert_event(&self, e: &EventView) -> std::result::Result<EventView, DbErr> {
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
        row.insert(self.db()).await.map(EventView::from)
    }

    /// Event `id` (another replica's, told by its id).
    pub async fn event(&self, id: i32) -> std::result::Result<Option<EventView>, DbErr> {
        Ok(hosting_event::Entity::find_by_id(id).one(self.db()).await?.map(EventView::from))
    }

    /// Events of one hosting with id > `after`, oldest first.
    pub async fn events_after(&self, hosting_id: i32, after: i32, limit: u64) -> Result<Vec<EventView>> {
        self.fetch_events(
            hosting_event::Entity::find()
                .filter(hosting_event::Column::HostingId.eq(hosting_id))
                .filter(hosting_event::Column::Id.gt(after))
                .order_by_asc(hosting_event::Column::Id),
            limit,
        )
        .await
    }

    /// The newest event of one hosting.
    pub async fn newest_event(&self, hosting_id: i32) -> Result<Option<EventView>> {
        let q = hosting_event::Entity::find()
            .filter(hosting_event::Column::HostingId.eq(hosting_id))
            .order_by_desc(hosting_event::Column::Id);
        Ok(self.fetch_events(q, 1).await?.pop())
    }

    /// The newest events across all hostings, newest first.
    pub async fn recent_events(&self, limit: u64) -> Result<Vec<EventView>> {
        self.fetch_events(hosting_event::Entity::find().order_by_desc(hosting_event::Column::Id), limit).await
    }

    /// Deletes events created before `cutoff_ms`, except the newest event of each hosting (its
    /// last word: how it ended or why it failed). Returns how many went.
    pub async fn prune_events_before(&self, cutoff_ms: i64) -> Result<u64> {
        use sea_orm::sea_query::{Expr, Query};
        let newest = Query::select()
            .expr(sea_orm::sea_query::Func::max(Expr::col(hosting_event::Column::Id)))
            .from(hosting_event::Entity)
            .group_by_col(hosting_event::Column::HostingId)
            .to_owned();
        let res = hosting_event::Entity::delete_many()
            .filter(hosting_event::Column::CreatedAt.lt(cutoff_ms))
            .filter(hosting_event::Column::Id.not_in_subquery(newest))
            .exec(self.db())
            .await?;
        Ok(res.rows_affected)
    }

    async fn fetch_events(&self, q: sea_orm::Select<hosting_event::Entity>, limit: u64) -> Result<Vec<EventView>> {
        Ok(q.limit(limit).all(self.db()).await?.into_iter().map(EventView::from).collect())
    }
}

impl From<hosting_event::Model> for EventView {
    fn from(m: hosting_event::Model) -> Self {
        Self {
            id: m.id,
            hosting_id: m.hosting_id,
            user_id: m.user_id,
            kind: m.kind,
            step: m.step,
            status: m.status,
            message: m.message,
            duration_ms: m.duration_ms,
            created_at: m.created_at,
        }
    }
}
