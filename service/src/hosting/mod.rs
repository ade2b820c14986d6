//! The hosting lifecycle: create/start/stop/restart/delete, as undoable steps with rollback,
//! a bounded provisioning pool, events, live stats, and reconciliation after crashes.
//!
//! Every call that touches a hosting takes the caller's [`Actor`] and answers `NotFound` for
//! hostings that belong to someone else (their existence is not leaked).
//!
//! [`HostingService`] is the façade: each of its methods authorises, picks the hosting's node
//! (`cluster`) and calls one function below it. Those work on a node's `cx::Cx` and only call
//! down: `background` (the leader's periodic work) -> `cluster` (the nodes) -> `lifecycle`
//! (what happens to a hosting) -> `saga` (provisioning steps with their undo) -> the store,
//! the VM, nginx and the leaf modules (events, metrics, the SSH waker, ...). See
//! docs/ARCHITECTURE.md.
mod activity;
mod background;
mod cluster;
mod consoles;
mod certs;
mod cx;
pub mod events;
mod facade;
pub mod faults;
pub mod fanout;
mod foreground;
mod guest;
mod lifecycle;
mod metrics;
mod restored;
mod saga;
mod ssh_waker;
pub use crate::store;
mod wake_limit;
pub mod view;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use sea_orm::DatabaseConnection;
use tokio::sync::broadcast;

use crate::accounts::{Accounts, Actor};
use crate::proxy::Proxy;
use crate::vm::VmManager;
use crate::{Result, ServiceConfig};

pub use background::reconcile::ReconcileReport;
pub use lifecycle::backups::{RecoveryReport, BackupDownload, BackupSource, BackupState, BackupTrigger, BackupView, BackupsOverview, DOWNLOADS_PER_NODE};
pub use lifecycle::backups::scheduler::SchedulerReport;
pub use lifecycle::create::CreateHosting;
pub use lifecycle::console::{ConsoleInput, ConsoleOutput, ConsoleSession, ConsoleStatus};
pub use lifecycle::sleep::ASLEEP;
pub use lifecycle::snapshots::{SnapshotState, SnapshotView, check_snapshot_name};
pub use lifecycle::visit::Visit;
pub use lifecycle::{console, snapshots};
pub use events::LiveEvent;
pub use store::{HostingRow, Store};
pub use vmw_types::{CreateKind, EventKind, EventStatus, HostingState, Operation, SpareTier, Step};
pub use view::{EventView, HostingView, NodeHealth, NodeSite, NodeView, StatSample};

/// Adding nodes: what an administrator sends, and the checks of its libvirt URI.
pub mod nodes {
    pub use super::cluster::uri::{NewNode, check_uri_policy, validate_uri};
}

/// Where the local certificate authority's root certificate is (made at the first start with
/// `--tls auto` and a loopback or IP name; offered for download on the settings page).
pub fn local_ca_root(cfg: &ServiceConfig) -> std::path::PathBuf {
    certs::local_ca_dir(cfg).join("root.pem")
}

/// The SHA-256 fingerprint (colon-separated hex) of the local CA's root certificate, if there is
/// one: what a user compares before trusting it.
pub fn local_ca_fingerprint(cfg: &ServiceConfig) -> Option<String> {
    use sha2::Digest;
    let pem = std::fs::read_to_string(local_ca_root(cfg)).ok()?;
    let der = crate::tls::validity::chain_der(&pem).ok()?.into_iter().next()?;
    Some(sha2::Sha256::digest(&der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":"))
}

/// The hosting service of one node (every node's is reached with [`HostingService::on`]).
#[derive(Clone)]
pub struct HostingService {
    /// This node's: what its operations touch.
    cx: cx::Cx,
    /// Every node's `Cx`, their health, placement (shared by every node's service).
    cluster: Arc<cluster::Cluster>,
    accounts: Accounts,
}

impl HostingService {
    /// Registers this node (one row per hypervisor) and returns the service. Call
    /// [`HostingService::start_background`] to reconcile and start the periodic tasks.
    pub async fn new(db: DatabaseConnection, cfg: Arc<ServiceConfig>, vm: VmManager, proxy: Proxy, accounts: Accounts) -> Result<Self> {
        let node_id = cluster::nodes::ensure_node(&db, &cfg).await?;
        let store = Store::new(db, node_id, &cfg.instance_id)?;
        let capacity = cluster::nodes::node_capacity(&cfg);
        tracing::info!(memory_limit_mib = capacity.memory_limit_mib, disk_limit_gib = capacity.disk_limit_gib, "node capacity");
        let events = events::EventBus::new(store.clone(), store.replica());
        let shared = Arc::new(cx::Shared {
            proxy,
            events,
            metrics: Default::default(),
            restored: restored::Restored::new(),
            ssh_wakers: Default::default(),
            wake_limit: wake_limit::WakeLimit::new(cfg.wakes_per_client_per_minute),
            consoles: Default::default(),
            // A service that never campaigns (tools, tests) acts alone.
            leading: AtomicBool::new(true),
            faults: Arc::default(),
            backends: Default::default(),
            domain_checks: Default::default(),
            certs: certs::Certs::new(&cfg),
            verify_secret: Default::default(),
            backup_repo: lifecycle::backups::BackupRepo::new(&cfg),
        });
        let cluster = cluster::Cluster::load(cx::Cx::new(store, cfg, vm, capacity, true, shared)).await?;
        Ok(Self { cx: cluster.home().clone(), cluster, accounts })
    }

    /// The same service for node `cx` (the façade of another node).
    fn with(&self, cx: cx::Cx) -> Self {
        Self { cx, cluster: self.cluster.clone(), accounts: self.accounts.clone() }
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.cx.cfg
    }

    pub fn node_id(&self) -> i32 {
        self.cx.node_id()
    }

    /// The hosting rows (tests and the admin tools read them through it).
    pub fn store(&self) -> &Store {
        &self.cx.store
    }

    /// Failure injection for tests (see [`faults::Faults`]).
    pub fn faults(&self) -> &faults::Faults {
        self.cx.faults()
    }

    pub fn vm(&self) -> &VmManager {
        &self.cx.vm
    }

    pub fn proxy(&self) -> &Proxy {
        &self.cx.proxy()
    }

    /// Live events and stats of every hosting; filter with [`HostingService::visible_to`].
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.cx.events().subscribe()
    }

    /// Whether `actor` may see this live event (owner or admin).
    pub fn visible_to(actor: &Actor, ev: &LiveEvent) -> bool {
        actor.may_see(ev.user_id())
    }

    /// Changes after each nginx reload: a long response through nginx should end cleanly then
    /// (the reload's old workers cut what they still hold 10 s later).
    pub fn proxy_reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.cx.proxy().reloads()
    }

    /// Whether this replica runs the node's background work now.
    pub fn is_leader(&self) -> bool {
        self.cx.is_leader()
    }

    /// The steps of a create of `kind`, in order, as its progress view lists them.
    pub fn create_steps(kind: CreateKind) -> Vec<Step> {
        saga::orders::order_of(kind).iter().map(|u| u.step()).collect()
    }

    /// A view of a hosting row (its queue position while it waits; whether its node answers).
    async fn view(&self, row: &HostingRow) -> Result<HostingView> {
        let pos = match row.state {
            HostingState::Queued => Some(self.cx.store.queue_position(row).await?),
            _ => None,
        };
        let mut v = view::hosting_view(row, &self.cx.cfg, pos);
        v.unreachable = !self.cluster.up(row.node_id);
        Ok(v)
    }
}
