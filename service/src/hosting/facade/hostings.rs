//! A user's hostings: create, read, act on, wait for.
use std::time::Duration;

use crate::accounts::Actor;
use crate::hosting::cluster::placement::placement;
use crate::hosting::cx::Cx;
use crate::hosting::events::next_state_event;
use crate::hosting::lifecycle::{act, always_on, create};
use crate::hosting::{CreateHosting, EventStatus, EventView, HostingService, HostingView, Operation, StatSample};
use crate::{Error, Result};

impl HostingService {
    /// Checks a slug's rules and whether it is free (for the create form, while typing).
    pub async fn slug_available(&self, actor: &Actor, slug: &str) -> Result<bool> {
        let slug = crate::domain::Slug::parse(slug)?;
        Ok(create::slug_conflict(&self.cx, actor, slug.as_ref()).await?.is_none())
    }

    /// Creates a hosting and queues its provisioning; returns at once with state `queued`.
    pub async fn create(&self, actor: &Actor, req: CreateHosting) -> Result<HostingView> {
        let new = create::check(&self.cx, &self.accounts, actor, req).await?;
        // Placement: the healthy, not drained node with the most free capacity; the next one
        // when it filled up meanwhile (another create took the room).
        let (nodes, refusal) = placement(&self.cluster, &new.plan.name).await?;
        let row = create::place(nodes, refusal, actor, &new).await?;
        self.view(&row).await
    }

    /// The caller's hostings, oldest first.
    pub async fn list(&self, actor: &Actor) -> Result<Vec<HostingView>> {
        let rows = self.cx.store.list_for_user(actor.user_id).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.view(r).await?);
        }
        Ok(out)
    }

    /// Every hosting with its owner's username (admin only).
    pub async fn list_all(&self, actor: &Actor) -> Result<Vec<(HostingView, String)>> {
        actor.require_admin()?;
        let rows = self.cx.store.list_all_with_owner().await?;
        let mut out = Vec::with_capacity(rows.len());
        for (h, owner) in rows {
            out.push((self.view(&h).await?, owner));
        }
        Ok(out)
    }

    /// The caller's first hosting (the original API's "my hosting"), if any.
    pub async fn default_for(&self, actor: &Actor) -> Result<Option<HostingView>> {
        match self.cx.store.first_for_user(actor.user_id).await? {
            Some(r) => Ok(Some(self.view(&r).await?)),
            None => Ok(None),
        }
    }

    pub async fn get(&self, actor: &Actor, id: i32) -> Result<HostingView> {
        let row = self.cx.store.owned(actor, id).await?;
        self.view(&row).await
    }

    /// Starts `op` on a hosting the actor owns. Conflicts (another operation running, or a
    /// state the operation cannot start from) are refused with a specific message.
    /// Runs on the hosting's node (refused while that node is unreachable).
    pub async fn action(&self, actor: &Actor, id: i32, op: Operation) -> Result<HostingView> {
        if op == Operation::Create {
            return Err(Error::validation("action", "use create to make a new hosting"));
        }
        if matches!(op, Operation::Snapshot | Operation::RestoreSnapshot) {
            return Err(Error::validation("action", "use the snapshot calls to take or restore a snapshot"));
        }
        if matches!(op, Operation::Backup | Operation::RestoreBackup) {
            return Err(Error::validation("action", "use the backup calls to back up a site or restore a backup"));
        }
        let node = self.live_node_of(actor, id).await?;
        let row = act::act(&node, id, op).await?;
        self.with(node).view(&row).await
    }

    /// Deletes every hosting of the actor and waits until they are gone (account deletion).
    pub async fn delete_all_for_user(&self, actor: &Actor, timeout: Duration) -> Result<()> {
        let rows = self.cx.store.list_for_user(actor.user_id).await?;
        for row in &rows {
            if row.operation.is_some() {
                self.wait_settled(actor, row.id, timeout).await?;
            }
            match self.action(actor, row.id, Operation::Delete).await {
                Ok(_) | Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        for row in &rows {
            if self.wait_settled(actor, row.id, timeout).await?.is_some() {
                return Err(Error::Busy(format!("hosting '{}' could not be deleted", row.slug)));
            }
        }
        Ok(())
    }

    /// The owner's "always on": the site never goes to sleep by itself. At most
    /// `always_on_per_user` of a user's sites (admins: no limit).
    pub async fn set_always_on(&self, actor: &Actor, id: i32, on: bool) -> Result<HostingView> {
        let row = always_on::set_always_on(&self.cx, actor, id, on).await?;
        self.view(&row).await
    }

    /// Events of a hosting after event id `after` (0 = from the start), oldest first.
    pub async fn events(&self, actor: &Actor, id: i32, after: i32) -> Result<Vec<EventView>> {
        // Events outlive the hosting row: authorise on the events' own user id.
        let evs = self.cx.events().list(id, after, 1000).await?;
        if let Some(first) = evs.first() {
            if !actor.may_see(first.user_id) {
                return Err(Error::NotFound("hosting"));
            }
            return Ok(evs);
        }
        // No events: still refuse hostings that are not the caller's.
        self.cx.store.owned(actor, id).await?;
        Ok(evs)
    }

    /// Whether hosting `id` was the actor's (or the actor is an admin) and has been deleted: its
    /// last event says so. A client that missed the end of its stream learns it this way.
    pub async fn was_deleted(&self, actor: &Actor, id: i32) -> Result<bool> {
        Ok(self.cx.events().newest(id).await?.is_some_and(|e| {
            e.status == EventStatus::Deleted && actor.may_see(e.user_id)
        }))
    }

    /// The newest events across all hostings (admin page).
    pub async fn recent_events(&self, actor: &Actor, limit: u64) -> Result<Vec<EventView>> {
        actor.require_admin()?;
        self.cx.events().recent(limit).await
    }

    /// Recent resource samples of a running hosting (oldest first) for the charts.
    pub async fn stats_history(&self, actor: &Actor, id: i32) -> Result<Vec<StatSample>> {
        self.cx.store.owned(actor, id).await?;
        Ok(self.cx.shared.metrics.history(id))
    }

    /// Waits until no operation runs on the hosting (or it is gone), for tests and `?wait=`.
    /// Wakes on the hosting's own events; looks again every second for work done by another
    /// app instance. Returns None when the hosting no longer exists.
    pub async fn wait_settled(&self, actor: &Actor, id: i32, timeout: Duration) -> Result<Option<HostingView>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.cx.events().subscribe();
        loop {
            match self.cx.store.owned(actor, id).await {
                Ok(row) if row.operation.is_none() => return Ok(Some(self.view(&row).await?)),
                Ok(_) => {}
                Err(Error::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e),
            }
            let wake = next_state_event(&mut rx, id);
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(Error::Busy(format!("hosting {id} is still busy after {timeout:?}")));
            }
            let _ = tokio::time::timeout(left.min(Duration::from_secs(1)), wake).await;
        }
    }

    /// The node of a hosting the actor may see, while that node answers.
    pub(super) async fn live_node_of(&self, actor: &Actor, id: i32) -> Result<Cx> {
        let row = self.cx.store.owned(actor, id).await?;
        self.cluster.live(row.node_id)
    }
}
