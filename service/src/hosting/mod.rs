//! The hosting lifecycle: create/start/stop/restart/delete, as undoable steps with rollback,
//! a bounded provisioning pool, events, live stats, and reconciliation after crashes.
//!
//! Every call that touches a hosting takes the caller's [`Actor`] and answers `NotFound` for
//! hostings that belong to someone else (their existence is not leaked).
pub mod events;
pub mod faults;
mod metrics;
mod ops;
mod ports;
mod pool;
mod provision;
mod reconcile;
pub mod state;
pub mod steps;
pub mod view;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
};
use tokio::sync::{Semaphore, broadcast};

use crate::accounts::{Accounts, Actor};
use crate::db::entity::{hosting, node, user};
use crate::db::now_ms;
use crate::domain::Slug;
use crate::proxy::Proxy;
use crate::vm::VmManager;
use crate::{Error, Result, ServiceConfig};

pub use events::LiveEvent;
pub use reconcile::ReconcileReport;
pub use state::{HostingState, Operation};
pub use steps::Step;
pub use view::{EventView, HostingView, NodeView, StatSample};

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
    db: DatabaseConnection,
    cfg: Arc<ServiceConfig>,
    vm: VmManager,
    proxy: Proxy,
    accounts: Accounts,
    events: events::EventBus,
    node_id: i32,
    permits: Arc<Semaphore>,
    faults: faults::Faults,
    /// Hostings with an operation (or a reconciliation look) running in this process, with
    /// how many guards hold each: reconciliation leaves held ones alone.
    inflight: Mutex<HashMap<i32, usize>>,
    /// Serialises quota checks per user.
    user_locks: Mutex<HashMap<i32, Arc<tokio::sync::Mutex<()>>>>,
    metrics: metrics::Metrics,
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
        Ok(Self {
            inner: Arc::new(Inner {
                events: events::EventBus::new(db.clone()),
                permits: Arc::new(Semaphore::new(cfg.provision_concurrency.max(1))),
                db,
                cfg,
                vm,
                proxy,
                accounts,
                node_id,
                faults: faults::Faults::default(),
                inflight: Mutex::new(HashMap::new()),
                user_locks: Mutex::new(HashMap::new()),
                metrics: metrics::Metrics::default(),
            }),
        })
    }

    /// Reconciles once now, then keeps reconciling and sampling stats in the background.
    /// The tasks stop when the returned handles are aborted (or the runtime ends).
    pub async fn start_background(&self) -> Result<Vec<tokio::task::JoinHandle<()>>> {
        let report = self.reconcile().await?;
        tracing::info!(?report, "start-up reconciliation done");
        let this = self.clone();
        let every = Duration::from_secs(self.inner.cfg.reconcile_interval_secs.max(1));
        let reconciler = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(err) = this.reconcile_periodic().await {
                    tracing::warn!(%err, "periodic reconciliation failed");
                }
            }
        });
        let pool = self.spawn_pool_filler();
        let this = self.clone();
        let every = Duration::from_secs(self.inner.cfg.stats_interval_secs.max(1));
        let sampler = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                this.sample_stats().await;
            }
        });
        Ok(vec![reconciler, sampler, pool])
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.inner.cfg
    }

    pub fn node_id(&self) -> i32 {
        self.inner.node_id
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
        let db = &self.inner.db;
        if hosting::Entity::find()
            .filter(hosting::Column::Slug.eq(slug))
            .one(db)
            .await?
            .is_some()
        {
            return Ok(Some(format!("the site name '{slug}' is taken")));
        }
        // A slug equal to another user's username would squat their natural site name.
        if let Some(u) = user::Entity::find()
            .filter(user::Column::Username.eq(slug))
            .one(db)
            .await?
        {
            if u.id != actor.user_id {
                return Ok(Some(format!("the site name '{slug}' is reserved for the user of that name")));
            }
        }
        Ok(None)
    }

    /// Creates a hosting and queues its provisioning; returns at once with state `queued`.
    pub async fn create(&self, actor: &Actor, req: CreateHosting) -> Result<HostingView> {
        let cfg = &self.inner.cfg;
        let db = &self.inner.db;
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
        keys.dedup();

        let lock = self.user_lock(actor.user_id);
        let _guard = lock.lock().await;

        let count = hosting::Entity::find()
            .filter(hosting::Column::UserId.eq(actor.user_id))
            .count(db)
            .await?;
        if count >= cfg.max_hostings_per_user as u64 {
            return Err(Error::QuotaExceeded(format!(
                "you already have {count} hosting(s); the limit is {}",
                cfg.max_hostings_per_user
            )));
        }

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
        if let Some((row, busy)) = self.claim_spare(actor, &slug, &plan.name, &keys_json).await? {
            drop(_guard);
            let msg = format!("Hosting '{slug}' queued ({} plan, warm VM)", plan.name);
            self.event(&row, "state", None, HostingState::Queued.as_str(), msg, None).await;
            self.spawn_claimed(row.id, busy);
            return self.view(&row).await;
        }

        let now = now_ms();
        let row = hosting::ActiveModel {
            user_id: Set(actor.user_id),
            node_id: Set(self.inner.node_id),
            slug: Set(slug.clone()),
            plan: Set(plan.name.clone()),
            state: Set(HostingState::Queued.as_str().into()),
            state_reason: Set(None),
            operation: Set(Some(Operation::Create.as_str().into())),
            http_port: Set(None),
            ssh_port: Set(None),
            ssh_keys: Set(keys_json),
            created_at: Set(now),
            updated_at: Set(now),
            running_since: Set(None),
            ..Default::default()
        };
        let row = match row.insert(db).await {
            Ok(r) => r,
            Err(e) if ports::is_unique_violation(&e) => {
                return Err(Error::conflict(Some("slug"), format!("the site name '{slug}' is taken")));
            }
            Err(e) => return Err(e.into()),
        };
        let busy = self.mark_inflight(row.id);
        drop(_guard);

        let msg = format!("Hosting '{slug}' queued ({} plan)", plan.name);
        self.event(&row, "state", None, HostingState::Queued.as_str(), msg, None).await;
        self.spawn_create(row.id, busy);
        self.view(&row).await
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

    fn user_lock(&self, user_id: i32) -> Arc<tokio::sync::Mutex<()>> {
        self.inner
            .user_locks
            .lock()
            .unwrap()
            .entry(user_id)
            .or_default()
            .clone()
    }

    /// The caller's hostings, oldest first.
    pub async fn list(&self, actor: &Actor) -> Result<Vec<HostingView>> {
        let rows = hosting::Entity::find()
            .filter(hosting::Column::UserId.eq(actor.user_id))
            .order_by_asc(hosting::Column::Id)
            .all(&self.inner.db)
            .await?;
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
        let rows = hosting::Entity::find()
            .find_also_related_user(&self.inner.db)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (h, owner) in rows {
            out.push((self.view(&h).await?, owner));
        }
        Ok(out)
    }

    /// The caller's first hosting (the original API's "my hosting"), if any.
    pub async fn default_for(&self, actor: &Actor) -> Result<Option<HostingView>> {
        let row = hosting::Entity::find()
            .filter(hosting::Column::UserId.eq(actor.user_id))
            .order_by_asc(hosting::Column::Id)
            .one(&self.inner.db)
            .await?;
        match row {
            Some(r) => Ok(Some(self.view(&r).await?)),
            None => Ok(None),
        }
    }

    pub async fn get(&self, actor: &Actor, id: i32) -> Result<HostingView> {
        let row = self.owned(actor, id).await?;
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
        self.owned(actor, id).await?;
        Ok(evs)
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
        self.owned(actor, id).await?;
        Ok(self.inner.metrics.history(id))
    }

    /// The last lines of the VM's serial console.
    pub async fn console(&self, actor: &Actor, id: i32, lines: usize) -> Result<Vec<String>> {
        self.owned(actor, id).await?;
        Ok(self.inner.vm.console_tail(id, lines.clamp(1, 2000)).await?)
    }

    /// Host capacity and usage (admin page).
    pub async fn node_info(&self, actor: &Actor) -> Result<NodeView> {
        if !actor.is_admin {
            return Err(Error::Forbidden);
        }
        let db = &self.inner.db;
        let node = node::Entity::find_by_id(self.inner.node_id)
            .one(db)
            .await?
            .ok_or(Error::NotFound("node"))?;
        let hostings_total = hosting::Entity::find()
            .filter(hosting::Column::NodeId.eq(node.id))
            .count(db)
            .await?;
        let vms_running = self
            .inner
            .vm
            .list_domains()
            .await?
            .into_iter()
            .filter(|(_, s)| *s == crate::vm::VmState::Running)
            .count() as u64;
        let (total, avail) = metrics::host_memory_kib();
        Ok(NodeView {
            id: node.id,
            name: node.name,
            libvirt_uri: node.libvirt_uri,
            domain_type: self.inner.vm.domain_type().to_string(),
            memory_total_kib: total,
            memory_available_kib: avail,
            hostings_total,
            vms_running,
        })
    }

    /// Loads a hosting the actor may act on, or NotFound.
    async fn owned(&self, actor: &Actor, id: i32) -> Result<hosting::Model> {
        let row = hosting::Entity::find_by_id(id)
            .one(&self.inner.db)
            .await?
            .ok_or(Error::NotFound("hosting"))?;
        if row.user_id != actor.user_id && !actor.is_admin {
            return Err(Error::NotFound("hosting"));
        }
        Ok(row)
    }

    async fn view(&self, row: &hosting::Model) -> Result<HostingView> {
        let pos = if row.state == HostingState::Queued.as_str() {
            Some(
                hosting::Entity::find()
                    .filter(hosting::Column::NodeId.eq(row.node_id))
                    .filter(hosting::Column::State.eq(HostingState::Queued.as_str()))
                    .filter(hosting::Column::Id.lt(row.id))
                    .count(&self.inner.db)
                    .await? as u32,
            )
        } else {
            None
        };
        Ok(HostingView::from_model(row, &self.inner.cfg, pos))
    }

    /// Waits until no operation runs on the hosting (or it is gone), for tests and `?wait=`.
    /// Returns None when the hosting no longer exists.
    pub async fn wait_settled(&self, actor: &Actor, id: i32, timeout: Duration) -> Result<Option<HostingView>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.owned(actor, id).await {
                Ok(row) if row.operation.is_none() => return Ok(Some(self.view(&row).await?)),
                Ok(_) => {}
                Err(Error::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Busy(format!("hosting {id} is still busy after {timeout:?}")));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Marks a hosting busy in this process until the guard drops. Take it before the
    /// database write that starts the work, and move it into the task that does the work, so
    /// reconciliation never sees the work started but unguarded.
    fn mark_inflight(&self, id: i32) -> InflightGuard {
        *self.inner.inflight.lock().unwrap().entry(id).or_insert(0) += 1;
        InflightGuard { svc: self.clone(), id }
    }

    /// Marks a hosting busy only when nothing else holds it.
    fn try_mark_inflight(&self, id: i32) -> Option<InflightGuard> {
        let mut map = self.inner.inflight.lock().unwrap();
        if map.get(&id).copied().unwrap_or(0) > 0 {
            return None;
        }
        map.insert(id, 1);
        Some(InflightGuard { svc: self.clone(), id })
    }

    /// Like `try_mark_inflight`, waiting up to `patience` for a reconciliation look to end.
    async fn mark_inflight_patiently(&self, id: i32, patience: Duration) -> InflightGuard {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            if let Some(g) = self.try_mark_inflight(id) {
                return g;
            }
            if tokio::time::Instant::now() >= deadline {
                // Another operation holds it: the claim that follows refuses with its reason.
                return self.mark_inflight(id);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn update_row(&self, id: i32, f: impl FnOnce(&mut hosting::ActiveModel)) -> Result<Option<hosting::Model>> {
        let Some(row) = hosting::Entity::find_by_id(id).one(&self.inner.db).await? else {
            return Ok(None);
        };
        let mut am: hosting::ActiveModel = row.into();
        f(&mut am);
        am.updated_at = Set(now_ms());
        Ok(Some(am.update(&self.inner.db).await?))
    }

    async fn event(&self, h: &hosting::Model, kind: &str, step: Option<Step>, status: &str, message: String, duration_ms: Option<i64>) {
        self.inner
            .events
            .record(events::NewEvent {
                hosting_id: h.id,
                user_id: h.user_id,
                kind,
                step: step.map(Step::as_str),
                status,
                message,
                duration_ms,
            })
            .await;
    }
}

struct InflightGuard {
    svc: HostingService,
    id: i32,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        let mut map = self.svc.inner.inflight.lock().unwrap();
        if let Some(n) = map.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.id);
            }
        }
    }
}

async fn ensure_node(db: &DatabaseConnection, cfg: &ServiceConfig) -> Result<i32> {
    if let Some(n) = node::Entity::find()
        .filter(node::Column::Name.eq(cfg.node_name.as_str()))
        .one(db)
        .await?
    {
        if n.libvirt_uri != cfg.libvirt_uri {
            let mut am: node::ActiveModel = n.clone().into();
            am.libvirt_uri = Set(cfg.libvirt_uri.clone());
            am.update(db).await?;
        }
        return Ok(n.id);
    }
    let (total_kib, _) = metrics::host_memory_kib();
    let row = node::ActiveModel {
        name: Set(cfg.node_name.clone()),
        libvirt_uri: Set(cfg.libvirt_uri.clone()),
        memory_mib: Set((total_kib / 1024) as i64),
        created_at: Set(now_ms()),
        ..Default::default()
    };
    Ok(row.insert(db).await?.id)
}

/// Join of hostings with their owners' usernames.
trait FindAlsoUser {
    async fn find_also_related_user(self, db: &DatabaseConnection) -> Result<Vec<(hosting::Model, String)>>;
}

impl FindAlsoUser for sea_orm::Select<hosting::Entity> {
    async fn find_also_related_user(self, db: &DatabaseConnection) -> Result<Vec<(hosting::Model, String)>> {
        let rows = self.order_by_asc(hosting::Column::Id).all(db).await?;
        let ids: Vec<i32> = rows.iter().map(|h| h.user_id).collect();
        let users: HashMap<i32, String> = user::Entity::find()
            .filter(user::Column::Id.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .map(|u| (u.id, u.username))
            .collect();
        Ok(rows
            .into_iter()
            .map(|h| {
                let owner = users.get(&h.user_id).cloned().unwrap_or_default();
                (h, owner)
            })
            .collect())
    }
}
