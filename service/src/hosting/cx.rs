//! [`Cx`]: what a step or an operation on one node may touch, and nothing else: the node's
//! hosting rows, its VMs, nginx, the events, its settings and capacity, its provisioning slots,
//! and the few things every node shares (held visits, SSH wakers, consoles, the leadership
//! flag, the fault seam). No façade, no registry of the other nodes: the cluster above picks a
//! node's `Cx` and hands it down. Cheap to clone (one `Arc`).
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tokio::sync::Semaphore;

use super::consoles::ConsoleHub;
use super::events::EventBus;
use super::faults::Faults;
use super::foreground::Foreground;
use super::guest::Guest;
use super::metrics::Metrics;
use super::restored::Restored;
use super::ssh_waker::SshWakers;
use crate::store::{Capacity, HostingRow, Lease, Store};
use super::wake_limit::WakeLimit;
use vmw_types::{EventKind, EventStatus, EventView, HostingState, NodeHealth, Step};
use crate::proxy::Proxy;
use crate::vm::VmManager;
use crate::{Error, Result, ServiceConfig};

#[derive(Clone)]
pub(crate) struct Cx(Arc<Parts>);

impl std::ops::Deref for Cx {
    type Target = Parts;
    fn deref(&self) -> &Parts {
        &self.0
    }
}

/// What one node's steps and operations work with.
pub(crate) struct Parts {
    /// The hosting rows: every read and every transition goes through it.
    pub store: Store,
    pub cfg: Arc<ServiceConfig>,
    pub vm: VmManager,
    /// What the node's hostings may commit (fixed at start-up).
    pub capacity: Capacity,
    /// Provisioning slots (boots are CPU-bound; the node's own).
    pub permits: Arc<Semaphore>,
    /// Users' creates, starts and wakes while they run: spares being made wait for them.
    pub foreground: Foreground,
    /// When making the golden snapshot last failed (it is retried after a while, not in a loop).
    pub golden_failed_at: Mutex<Option<Instant>>,
    /// The node's health as last checked (`cluster::health`).
    pub health: Mutex<NodeHealth>,
    /// Shared by every node's `Cx`.
    pub shared: Arc<Shared>,
}

/// What every node's `Cx` holds in common.
pub(crate) struct Shared {
    /// nginx (one for every node).
    pub proxy: Proxy,
    pub events: EventBus,
    pub metrics: Metrics,
    /// VMs restored for a wake, not yet through their readiness probe: held visitors go now.
    /// Shared by every node: a visit may be held by another node's than the wake.
    pub restored: Restored,
    /// The SSH ports of sleeping sites, listened on by the app (wake on SSH).
    pub ssh_wakers: SshWakers,
    /// Distinct sites each client address woke in the last minute.
    pub wake_limit: WakeLimit,
    /// Who holds each hosting's interactive console (one writer at a time).
    pub consoles: ConsoleHub,
    /// Whether this replica leads (runs the background work; see [`crate::leader`]). One
    /// flag for every node of the process: the leader of the app's own node leads them all.
    pub leading: AtomicBool,
    /// The test seam (see [`Faults`]).
    pub faults: Arc<Faults>,
    /// Where nginx reaches each node's VM forwards (a route names its node's).
    pub backends: RwLock<HashMap<i32, IpAddr>>,
    /// Wakes the custom domains' checker (DNS, certificates): a domain was added, or its owner
    /// asked for a check now.
    pub domain_checks: tokio::sync::Notify,
    /// Certificate files, the local CA, the ACME account, DNS-01 and the ownership lookups.
    pub certs: super::certs::Certs,
    /// The custom domains' verification secret, read (or made) at first use.
    pub verify_secret: tokio::sync::OnceCell<Vec<u8>>,
    /// The backup repository (opened at first use).
    pub backup_repo: super::lifecycle::backups::BackupRepo,
}

impl Cx {
    /// The `Cx` of a node: the one of the app's settings (`home`: taken as connected until
    /// its health is checked), or an added one.
    pub fn new(store: Store, cfg: Arc<ServiceConfig>, vm: VmManager, capacity: Capacity, home: bool, shared: Arc<Shared>) -> Self {
        let health = NodeHealth { connected: home, image_ok: home, ..Default::default() };
        shared.backends.write().unwrap().insert(store.node_id(), cfg.http_forward_bind);
        Self(Arc::new(Parts {
            permits: Arc::new(Semaphore::new(cfg.provision_concurrency.max(1))),
            store,
            cfg,
            vm,
            capacity,
            foreground: Foreground::new(),
            golden_failed_at: Mutex::new(None),
            health: Mutex::new(health),
            shared,
        }))
    }

    pub fn node_id(&self) -> i32 {
        self.store.node_id()
    }

    pub fn proxy(&self) -> &Proxy {
        &self.shared.proxy
    }

    pub fn events(&self) -> &EventBus {
        &self.shared.events
    }

    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// The guest inside the VMs (the real one, or libvirt's test driver's: the fault seam).
    pub fn guest(&self) -> &'static dyn Guest {
        self.shared.faults.guest()
    }

    /// Whether this replica runs the background work now.
    pub fn is_leader(&self) -> bool {
        self.shared.leading.load(Ordering::Relaxed)
    }

    pub fn health(&self) -> NodeHealth {
        self.health.lock().unwrap().clone()
    }

    /// Whether the node answers (its sites are reachable).
    pub fn up(&self) -> bool {
        self.health.lock().unwrap().connected
    }

    /// Where nginx reaches the VM forwards of node `node_id`.
    pub fn backend(&self, node_id: i32) -> Result<IpAddr> {
        self.shared
            .backends
            .read()
            .unwrap()
            .get(&node_id)
            .copied()
            .ok_or_else(|| Error::HostingUnavailable(format!("node {node_id} is not known to this app")))
    }

    /// Records an event of a user's hosting (spares have no owner to tell).
    pub async fn event(&self, h: &HostingRow, kind: EventKind, step: Option<Step>, status: EventStatus, message: String, duration_ms: Option<i64>) {
        let Some(user_id) = h.user_id else {
            tracing::debug!(hosting_id = h.id, %kind, ?step, %status, "{message}");
            return;
        };
        self.events()
            .record(EventView { id: 0, hosting_id: h.id, user_id, kind, step, status, message, duration_ms, created_at: 0 })
            .await;
    }

    /// Settles the operation under `lease` in `state` and tells the owner.
    pub async fn finish(&self, lease: Lease, state: HostingState, reason: Option<String>, message: String, t: Instant) -> Result<()> {
        let row = self.store.finish(&lease, state, reason).await?;
        let ms = Some(t.elapsed().as_millis() as i64);
        self.event(&row, EventKind::State, None, state.into(), message, ms).await;
        Ok(())
    }
}
