//! The hosting lifecycle: create/start/stop/restart/delete, as undoable steps with rollback,
//! a bounded provisioning pool, events, live stats, and reconciliation after crashes.
//!
//! Every call that touches a hosting takes the caller's [`Actor`] and answers `NotFound` for
//! hostings that belong to someone else (their existence is not leaked).
mod activity;
pub mod console;
pub mod events;
pub mod faults;
pub mod fanout;
mod foreground;
mod metrics;
pub mod nodes;
mod ops;
mod pool;
mod provision;
mod reconcile;
mod restored;
mod sleep;
pub mod snapshots;
mod ssh_waker;
pub use crate::store;
mod units;
mod wake_limit;
pub mod view;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::sync::{Semaphore, broadcast};

use crate::accounts::{Accounts, Actor};
use crate::db::now_ms;
use crate::domain::Slug;
use crate::proxy::Proxy;
use crate::store::ports;
use crate::vm::VmManager;
use crate::{Error, Result, ServiceConfig};

pub use console::{ConsoleInput, ConsoleOutput, ConsoleSession, ConsoleStatus};
pub use events::LiveEvent;
pub use reconcile::ReconcileReport;
pub use sleep::{ASLEEP, Visit};
pub use snapshots::{SnapshotState, SnapshotView, check_snapshot_name};
pub use store::{HostingRow, Store};
pub use vmw_types::{CreateKind, EventKind, EventStatus, HostingState, Operation, SpareTier, Step};
pub use view::{EventView, HostingView, NodeHealth, NodeSite, NodeView, StatSample};

/// What a user asks for when creating a hosting. Everything is optional: the slug defaults to
/// the username, the plan to the first configured one.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CreateHosting {
    pub slug: Option<String>,
    pub plan: Option<String>,
    /// Ids of the user's saved SSH keys to install.
    #[serde(default)]
    pub ssh_key_ids: Vec<i32>,
    /// Extra OpenSSH public key lines (e.g. sent with the API's create call); validated.
    #[serde(default)]
    pub public_keys: Vec<String>,
}

#[derive(Clone)]
pub struct HostingService {
    inner: Arc<Inner>,
}

struct Inner {
    /// The hosting rows: every read and every transition goes through it.
    store: Store,
    cfg: Arc<ServiceConfig>,
    vm: VmManager,
    proxy: Proxy,
    accounts: Accounts,
    events: events::EventBus,
    /// Provisioning slots (boots are CPU-bound).
    permits: Arc<Semaphore>,
    faults: Arc<faults::Faults>,
    metrics: Arc<metrics::Metrics>,
    /// When making the golden snapshot last failed (it is retried after a while, not in a loop).
    golden_failed_at: std::sync::Mutex<Option<std::time::Instant>>,
    /// Users' creates, starts and wakes while they run: spares being made wait for them.
    foreground: foreground::Foreground,
    /// What the node's hostings may commit (fixed at start-up).
    capacity: store::Capacity,
    /// VMs restored for a wake, not yet through their readiness probe: held visitors go now.
    /// Shared by every node's service: a visit may be held by another node's than the wake.
    restored: Arc<restored::Restored>,
    /// The SSH ports of sleeping sites, listened on by the app (wake on SSH).
    ssh_wakers: Arc<ssh_waker::SshWakers>,
    /// Distinct sites each client address woke in the last minute (shared by all nodes).
    wake_limit: Arc<wake_limit::WakeLimit>,
    /// Who holds each hosting's interactive console (one writer at a time).
    consoles: Arc<console::ConsoleHub>,
    /// Whether this replica leads (runs the background work; see [`crate::leader`]). One
    /// flag for every node of the process: the leader of the app's own node leads them all.
    leading: Arc<std::sync::atomic::AtomicBool>,
    /// Every node's service (this one's too), their health and placement (shared by all nodes).
    nodes: Arc<nodes::NodeRegistry>,
}

impl HostingService {
    /// Registers this node (one row per hypervisor) and returns the service. Call
    /// [`HostingService::start_background`] to reconcile and start the periodic tasks.
    pub async fn new(
        db: DatabaseConnection,
        cfg: Arc<ServiceConfig>,
        vm: VmManager,
        proxy: Proxy,
        accounts: Accounts,
    ) -> Result<Self> {
        let node_id = ensure_node(&db, &cfg).await?;
        let store = Store::new(db, node_id, &cfg.instance_id)?;
        let capacity = node_capacity(&cfg);
        tracing::info!(memory_limit_mib = capacity.memory_limit_mib, disk_limit_gib = capacity.disk_limit_gib, "node capacity");
        let wake_limit = Arc::new(wake_limit::WakeLimit::new(cfg.wakes_per_client_per_minute));
        let svc = Self {
            inner: Arc::new(Inner {
                events: events::EventBus::new(store.clone(), store.replica()),
                permits: Arc::new(Semaphore::new(cfg.provision_concurrency.max(1))),
                store,
                cfg,
                vm,
                proxy,
                accounts,
                faults: Arc::default(),
                metrics: Arc::default(),
                golden_failed_at: std::sync::Mutex::new(None),
                foreground: foreground::Foreground::new(),
                capacity,
                restored: Arc::new(restored::Restored::new()),
                ssh_wakers: Arc::default(),
                wake_limit,
                consoles: Arc::default(),
                // A service that never campaigns (tools, tests) acts alone.
                leading: Arc::new(std::sync::atomic::AtomicBool::new(true)),
                nodes: Arc::new(nodes::NodeRegistry::new(node_id)),
            }),
        };
        svc.inner.nodes.register(node_id, svc.clone());
        svc.load_added_nodes().await?;
        Ok(svc)
    }

    /// Starts the background work. Every replica samples its node's VMs (its own charts) and
    /// listens to the other replicas (PostgreSQL); the leader of the node (one replica, under a
    /// PostgreSQL advisory lock; on SQLite the only process) also reconciles (once now, before
    /// it serves, then periodically), refills the warm pool, puts idle sites to sleep, listens
    /// on sleeping sites' SSH ports and rotates nginx's logs, on this node and on every added
    /// node (each its own reconciliation, pool and sleep), and checks the nodes' health. When the leader dies another
    /// replica takes over within [`crate::leader::RETRY`] or so, starting with a reconciliation.
    /// The tasks stop when the returned handles are aborted (or the runtime ends).
    pub async fn start_background(&self) -> Result<Vec<tokio::task::JoinHandle<()>>> {
        let mut out = Vec::new();
        out.push(self.spawn_sampler());
        if let Some(mut notes) = self.inner.events.fanout().listen().await? {
            let this = self.clone();
            out.push(tokio::spawn(async move {
                while let Some(note) = notes.recv().await {
                    this.on_note(note).await;
                }
            }));
        }
        let me = self.inner.store.replica();
        let leadership = crate::leader::Leadership::campaign(self.inner.store.db(), crate::leader::node_key(self.node_id()), &me);
        // The first attempt answers at once: a replica that leads reconciles before it serves.
        let first = if leadership.settled(Duration::from_secs(5)).await {
            self.inner.leading.store(true, std::sync::atomic::Ordering::Relaxed);
            Some(self.lead().await?)
        } else {
            self.inner.leading.store(false, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(replica = %me, "another replica leads: this one serves, and takes over if the leader goes");
            None
        };
        out.push(self.spawn_succession(leadership, first));
        Ok(out)
    }

    /// Whether this replica runs the node's background work now.
    pub fn is_leader(&self) -> bool {
        self.inner.leading.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Follows the leadership: starts the leader's work when this replica comes to lead, stops
    /// it (and gives back the SSH ports) when it no longer does.
    fn spawn_succession(
        &self,
        leadership: crate::leader::Leadership,
        first: Option<Vec<tokio::task::JoinHandle<()>>>,
    ) -> tokio::task::JoinHandle<()> {
        use std::sync::atomic::Ordering;
        let this = self.clone();
        tokio::spawn(async move {
            let mut rx = leadership.watch();
            let _leadership = leadership;
            let mut work = AbortOnDrop(first.unwrap_or_default());
            loop {
                let leads = *rx.borrow_and_update() == Some(true);
                if leads && work.0.is_empty() {
                    this.inner.leading.store(true, Ordering::Relaxed);
                    match this.lead().await {
                        Ok(tasks) => work.0 = tasks,
                        Err(err) => {
                            tracing::warn!(%err, "could not start the leader's work; trying again in 5 s");
                            let _ = tokio::time::timeout(Duration::from_secs(5), rx.changed()).await;
                            continue;
                        }
                    }
                } else if !leads && !work.0.is_empty() {
                    this.inner.leading.store(false, Ordering::Relaxed);
                    for t in work.0.drain(..) {
                        t.abort();
                    }
                    this.inner.ssh_wakers.release_all().await;
                    tracing::warn!("no longer the leader: the background work stopped here");
                } else if !leads {
                    this.inner.leading.store(false, Ordering::Relaxed);
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
    }

    /// The leader's work: a reconciliation now, then its periodic tasks.
    async fn lead(&self) -> Result<Vec<tokio::task::JoinHandle<()>>> {
        let report = self.reconcile().await?;
        tracing::info!(?report, "start-up reconciliation done");
        self.refresh_routes().await;
        self.open_all_ssh_wakers().await;
        let mut tasks = self.node_tasks();
        let this = self.clone();
        // Housekeeping: nginx's logs every 10 minutes, old events every hour.
        let pruner = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(600));
            for round in 0u64.. {
                tick.tick().await;
                match this.inner.proxy.rotate_logs(this.inner.cfg.nginx_log_max_mib.saturating_mul(1 << 20)).await {
                    Ok(r) if r.is_empty() => {}
                    Ok(r) => tracing::info!(logs = ?r, "rotated nginx's logs"),
                    Err(err) => tracing::warn!(%err, "rotating nginx's logs failed"),
                }
                if round % 6 != 0 {
                    continue;
                }
                match this.prune_events().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "pruned old hosting events"),
                    Err(err) => tracing::warn!(%err, "pruning old hosting events failed"),
                }
            }
        });
        tasks.push(pruner);
        tasks.extend(self.start_nodes_background().await);
        Ok(tasks)
    }

    /// Another replica's note.
    async fn on_note(&self, note: fanout::Note) {
        match note {
            fanout::Note::Event { .. } | fanout::Note::EventId { .. } => self.inner.events.deliver(&note).await,
            fanout::Note::OpenSshWaker { hosting_id } => {
                if self.is_leader() {
                    self.open_ssh_waker(hosting_id).await;
                }
            }
            fanout::Note::ReleaseSshWaker { hosting_id } => self.inner.ssh_wakers.release(hosting_id).await,
        }
    }

    /// One node's periodic work: reconciliation, the warm pool, idle sleep.
    fn node_tasks(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let sleeper = self.spawn_idle_sleeper();
        let this = self.clone();
        let every = Duration::from_secs(self.inner.cfg.reconcile_interval_secs.max(1));
        let reconciler = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                // A node that is down is left alone: its sites show as unreachable, unchanged.
                if !this.node_up(this.node_id()) {
                    continue;
                }
                if let Err(err) = this.reconcile_periodic().await {
                    tracing::warn!(node = %this.inner.cfg.node_name, %err, "periodic reconciliation failed");
                }
            }
        });
        let pool = self.spawn_pool_filler();
        vec![reconciler, pool, sleeper]
    }

    /// Samples the node's VMs for the charts, while the node is up.
    fn spawn_sampler(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let every = Duration::from_secs(self.inner.cfg.stats_interval_secs.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if this.node_up(this.node_id()) {
                    this.sample_stats().await;
                }
            }
        })
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.inner.cfg
    }

    /// Brings every routed site's nginx files up to date with this build and these settings.
    async fn refresh_routes(&self) {
        let Ok(routed) = self.inner.proxy.list_routes().await else { return };
        let mut routes = Vec::new();
        for id in routed {
            if let Ok(Some(row)) = self.inner.store.get(id).await {
                if let Ok(r) = self.site_route(&row).await {
                    routes.push(r);
                }
            }
        }
        match self.inner.proxy.refresh_routes(&routes).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sites = n, "rewrote the nginx files of sites made by an older build"),
            Err(err) => tracing::warn!(%err, "could not bring the sites' nginx files up to date"),
        }
    }

    pub fn node_id(&self) -> i32 {
        self.inner.store.node_id()
    }

    /// The hosting rows (tests and the admin tools read them through it).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Sets the gauges read from the database: hostings by state and ready spares per tier
    /// (the metrics endpoint calls it at each scrape, so they are never stale).
    pub async fn publish_gauges(&self) -> Result<()> {
        crate::telemetry::set_hostings(&self.inner.store.count_by_state().await?);
        for tier in SpareTier::ALL {
            crate::telemetry::set_pool_spares(*tier, self.spares_in(*tier).await?);
        }
        Ok(())
    }

    /// Failure injection for tests (see [`faults::Faults`]).
    pub fn faults(&self) -> &faults::Faults {
        &self.inner.faults
    }

    pub fn vm(&self) -> &VmManager {
        &self.inner.vm
    }

    pub fn proxy(&self) -> &Proxy {
        &self.inner.proxy
    }

    /// Live events and stats of every hosting; filter with [`HostingService::visible_to`].
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.inner.events.subscribe()
    }

    /// Whether `actor` may see this live event (owner or admin).
    pub fn visible_to(actor: &Actor, ev: &LiveEvent) -> bool {
        actor.is_admin || ev.user_id() == actor.user_id
    }

    /// Checks a slug's rules and whether it is free (for the create form, while typing).
    pub async fn slug_available(&self, actor: &Actor, slug: &str) -> Result<bool> {
        let slug = Slug::parse(slug)?;
        Ok(self.slug_conflict(actor, slug.as_ref()).await?.is_none())
    }

    /// Returns the reason a slug cannot be used by `actor`, if any.
    async fn slug_conflict(&self, actor: &Actor, slug: &str) -> Result<Option<String>> {
        if self.inner.store.slug_taken(slug).await? {
            return Ok(Some(format!("the site name '{slug}' is taken")));
        }
        // {slug}.{base-domain} must not look like the dashboard's own host.
        let cfg = &self.inner.cfg;
        if vmw_types::host_labels(&[&cfg.public_host, &cfg.base_domain]).iter().any(|l| l == slug) {
            return Ok(Some(format!("the site name '{slug}' is reserved (it is this server's own host name)")));
        }
        // A slug equal to another user's username would squat their natural site name.
        if let Some(u) = self.inner.store.user_id_named(slug).await? {
            if u != actor.user_id {
                return Ok(Some(format!("the site name '{slug}' is reserved for the user of that name")));
            }
        }
        Ok(None)
    }

    /// Creates a hosting and queues its provisioning; returns at once with state `queued`.
    pub async fn create(&self, actor: &Actor, req: CreateHosting) -> Result<HostingView> {
        let cfg = &self.inner.cfg;
        let me = self.inner.accounts.get_user(actor.user_id).await?;

        let plan = match req.plan.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            Some(p) => cfg
                .plan(p)
                .ok_or_else(|| {
                    let names: Vec<_> = cfg.plans.iter().map(|p| p.name.as_str()).collect();
                    Error::validation("plan", format!("unknown plan '{p}'; choose one of: {}", names.join(", ")))
                })?
                .clone(),
            None => cfg.plans.first().cloned().ok_or_else(|| Error::internal("no plans configured"))?,
        };

        // Keys: the chosen saved keys plus any sent with the request, validated, de-duplicated.
        let mut keys: Vec<String> = Vec::new();
        if !req.ssh_key_ids.is_empty() {
            for k in self.inner.accounts.ssh_keys_by_ids(actor, &req.ssh_key_ids).await? {
                keys.push(k.public_key);
            }
        }
        for line in &req.public_keys {
            let k = crate::domain::SshPublicKey::parse(line)?;
            keys.push(k.line().to_owned());
        }
        let mut seen = std::collections::HashSet::new();
        keys.retain(|k| seen.insert(k.clone()));

        let slug = match req.slug.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => {
                let slug = Slug::parse(s)?;
                if let Some(why) = self.slug_conflict(actor, slug.as_ref()).await? {
                    return Err(Error::conflict(Some("slug"), why));
                }
                slug.as_ref().to_owned()
            }
            None => self.default_slug(actor, &me.username).await?,
        };

        let keys_json = serde_json::to_string(&keys).map_err(Error::internal)?;
        // Placement: the healthy, not drained node with the most free capacity; the next one
        // when it filled up meanwhile (another create took the room).
        let (nodes, refusal) = self.placement(&plan.name).await?;
        if nodes.is_empty() {
            let why = refusal.unwrap_or_else(|| "no server takes new sites now (every node is drained or unreachable); try again later".to_owned());
            return Err(Error::NodeFull(why));
        }
        let mut last = None;
        for node in nodes {
            let new = store::NewHosting {
                user_id: actor.user_id,
                slug: &slug,
                plan: &plan.name,
                keys_json: &keys_json,
                max_per_user: cfg.max_hostings_per_user,
                fresh: if node.can_clone(&plan) { CreateKind::Clone } else { CreateKind::Cold },
                capacity: &node.inner.capacity,
            };
            let (row, lease, warm) = match node.inner.store.insert_for_user(new, cfg.pool_size + cfg.pool_paused > 0).await {
                Ok(r) => r,
                Err(Error::NodeFull(why)) => {
                    last = Some(why);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let how = if warm { ", warm VM" } else { "" };
            let msg = format!("Hosting '{slug}' queued ({} plan{how})", plan.name);
            node.event(&row, EventKind::State, None, EventStatus::Queued, msg, None).await;
            tracing::info!(hosting_id = row.id, node = %node.inner.cfg.node_name, "placed a new site");
            if warm {
                node.spawn_claimed(lease);
            } else {
                node.spawn_fresh(lease, &plan.name);
            }
            return self.view(&row).await;
        }
        Err(Error::NodeFull(last.unwrap_or_default()))
    }

    async fn default_slug(&self, actor: &Actor, username: &str) -> Result<String> {
        if self.slug_conflict(actor, username).await?.is_none() && Slug::parse(username).is_ok() {
            return Ok(username.to_owned());
        }
        for n in 2..100 {
            let candidate = format!("{username}-{n}");
            if Slug::parse(&candidate).is_ok() && self.slug_conflict(actor, &candidate).await?.is_none() {
                return Ok(candidate);
            }
        }
        Err(Error::conflict(Some("slug"), "choose a site name: the default one is taken"))
    }

    /// The caller's hostings, oldest first.
    pub async fn list(&self, actor: &Actor) -> Result<Vec<HostingView>> {
        let rows = self.inner.store.list_for_user(actor.user_id).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.view(r).await?);
        }
        Ok(out)
    }

    /// Every hosting with its owner's username (admin only).
    pub async fn list_all(&self, actor: &Actor) -> Result<Vec<(HostingView, String)>> {
        if !actor.is_admin {
            return Err(Error::Forbidden);
        }
        let rows = self.inner.store.list_all_with_owner().await?;
        let mut out = Vec::with_capacity(rows.len());
        for (h, owner) in rows {
            out.push((self.view(&h).await?, owner));
        }
        Ok(out)
    }

    /// The caller's first hosting (the original API's "my hosting"), if any.
    pub async fn default_for(&self, actor: &Actor) -> Result<Option<HostingView>> {
        match self.inner.store.first_for_user(actor.user_id).await? {
            Some(r) => Ok(Some(self.view(&r).await?)),
            None => Ok(None),
        }
    }

    pub async fn get(&self, actor: &Actor, id: i32) -> Result<HostingView> {
        let row = self.inner.store.owned(actor, id).await?;
        self.view(&row).await
    }

    /// Events of a hosting after event id `after` (0 = from the start), oldest first.
    pub async fn events(&self, actor: &Actor, id: i32, after: i32) -> Result<Vec<EventView>> {
        // Events outlive the hosting row: authorise on the events' own user id.
        let evs = self.inner.events.list(id, after, 1000).await?;
        if let Some(first) = evs.first() {
            if first.user_id != actor.user_id && !actor.is_admin {
                return Err(Error::NotFound("hosting"));
            }
            return Ok(evs);
        }
        // No events: still refuse hostings that are not the caller's.
        self.inner.store.owned(actor, id).await?;
        Ok(evs)
    }

    /// Changes after each nginx reload: a long response through nginx should end cleanly then
    /// (the reload's old workers cut what they still hold 10 s later).
    pub fn proxy_reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.proxy.reloads()
    }

    /// Whether hosting `id` was the actor's (or the actor is an admin) and has been deleted: its
    /// last event says so. A client that missed the end of its stream learns it this way.
    pub async fn was_deleted(&self, actor: &Actor, id: i32) -> Result<bool> {
        Ok(self.inner.events.newest(id).await?.is_some_and(|e| {
            e.status == EventStatus::Deleted && (e.user_id == actor.user_id || actor.is_admin)
        }))
    }

    /// The newest events across all hostings (admin page).
    pub async fn recent_events(&self, actor: &Actor, limit: u64) -> Result<Vec<EventView>> {
        if !actor.is_admin {
            return Err(Error::Forbidden);
        }
        self.inner.events.recent(limit).await
    }

    /// Recent resource samples of a running hosting (oldest first) for the charts.
    pub async fn stats_history(&self, actor: &Actor, id: i32) -> Result<Vec<StatSample>> {
        self.inner.store.owned(actor, id).await?;
        Ok(self.inner.metrics.history(id))
    }

    /// The last lines of the VM's serial console.
    pub async fn console(&self, actor: &Actor, id: i32, lines: usize) -> Result<Vec<String>> {
        let row = self.inner.store.owned(actor, id).await?;
        let node = self.on_live(row.node_id)?;
        Ok(node.inner.vm.console_tail(id, lines.clamp(1, 2000)).await?)
    }

    /// Deletes events older than `event_retention_days` (0: none), keeping each hosting's
    /// newest, and account activity older than that. Runs hourly in the background.
    pub async fn prune_events(&self) -> Result<u64> {
        let days = self.inner.cfg.event_retention_days;
        if days == 0 {
            return Ok(0);
        }
        let before = now_ms() - i64::from(days) * 86_400_000;
        let activity = self.inner.accounts.prune_activity_before(before).await?;
        Ok(self.inner.events.prune_before(before).await? + activity)
    }

    /// This node's capacity, usage, health and sites (admin page; [`HostingService::nodes_info`]
    /// has every node).
    pub async fn node_info(&self, actor: &Actor) -> Result<NodeView> {
        if !actor.is_admin {
            return Err(Error::Forbidden);
        }
        self.node_view().await
    }

    async fn view(&self, row: &HostingRow) -> Result<HostingView> {
        let pos = match row.state {
            HostingState::Queued => Some(self.inner.store.queue_position(row).await?),
            _ => None,
        };
        let mut v = view::hosting_view(row, &self.inner.cfg, pos);
        v.unreachable = !self.node_up(row.node_id);
        Ok(v)
    }

    /// Waits until no operation runs on the hosting (or it is gone), for tests and `?wait=`.
    /// Wakes on the hosting's own events; looks again every second for work done by another
    /// app instance. Returns None when the hosting no longer exists.
    pub async fn wait_settled(&self, actor: &Actor, id: i32, timeout: Duration) -> Result<Option<HostingView>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.inner.events.subscribe();
        loop {
            match self.inner.store.owned(actor, id).await {
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

    /// Records an event of a user's hosting (spares have no owner to tell).
    async fn event(
        &self,
        h: &HostingRow,
        kind: EventKind,
        step: Option<Step>,
        status: EventStatus,
        message: String,
        duration_ms: Option<i64>,
    ) {
        let Some(user_id) = h.user_id else {
            tracing::debug!(hosting_id = h.id, %kind, ?step, %status, "{message}");
            return;
        };
        self.inner
            .events
            .record(EventView { id: 0, hosting_id: h.id, user_id, kind, step, status, message, duration_ms, created_at: 0 })
            .await;
    }
}

/// Background tasks that stop when their holder is dropped.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Returns at the next state event of hosting `id` (or when events were missed); never while
/// the bus is closed. Callers bound it with a timeout and look at the row again.
pub(super) async fn next_state_event(rx: &mut broadcast::Receiver<LiveEvent>, id: i32) {
    loop {
        match rx.recv().await {
            Ok(LiveEvent::Event(e)) if e.hosting_id == id && e.kind == EventKind::State => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

/// The node's limits: its memory and disk (settings, else the host's) times the overcommit ratios.
fn node_capacity(cfg: &ServiceConfig) -> store::Capacity {
    let memory = cfg.node_memory_mib.unwrap_or_else(|| metrics::host_memory_kib().0 / 1024);
    let disk = cfg.node_disk_gib.unwrap_or_else(|| disk_size_gib(&cfg.data_dir));
    store::Capacity {
        memory_limit_mib: (memory as f64 * cfg.memory_overcommit.max(0.0)) as u64,
        disk_limit_gib: (disk as f64 * cfg.disk_overcommit.max(0.0)) as u64,
        plans: cfg.plans.iter().map(|p| (p.name.clone(), p.memory_mib, p.disk_gib)).collect(),
    }
}

/// The size of the file system holding `dir` (the nearest existing ancestor), in GiB; 0 if unknown.
fn disk_size_gib(dir: &std::path::Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let mut at = Some(dir);
    while let Some(p) = at {
        if p.exists() {
            let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else { return 0 };
            // SAFETY: statvfs writes into the zeroed struct we own; `c` is a valid C string.
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
                return 0;
            }
            return (st.f_blocks as u64).saturating_mul(st.f_frsize as u64) >> 30;
        }
        at = p.parent();
    }
    0
}

async fn ensure_node(db: &DatabaseConnection, cfg: &ServiceConfig) -> Result<i32> {
    Store::ensure_node(db, &cfg.node_name, &cfg.libvirt_uri, || (metrics::host_memory_kib().0 / 1024) as i64).await
}
