//! More than one hypervisor: the nodes an administrator adds by their libvirt URI, each with
//! its own [`Cx`] (its `Store`, its `VmManager`, its capacity, its reconciliation and pool),
//! their health, and placement of new sites by free capacity.
//!
//! The node of the app's own settings (`--libvirt-uri`, `--node-name`) is always there; added
//! nodes live in the `nodes` table (`added`), with the address nginx reaches their VM forwards
//! on (QEMU binds them there) and their memory and disk. Every call about a hosting goes to its
//! node's `Cx` ([`Cluster::get`]).
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use sea_orm::DatabaseConnection;

use crate::hosting::cx::Cx;
use crate::hosting::lifecycle::delete::run_delete;
use crate::store::{Capacity, NodeRow, Store};
use crate::hosting::metrics;
use vmw_types::{HostingState, Operation};
use crate::vm::VmManager;
use crate::{Error, Result, ServiceConfig};

/// Every node's `Cx`, shared by all of them (through the façade).
pub(crate) struct Cluster {
    /// The node of the app's own settings.
    home: Cx,
    nodes: RwLock<BTreeMap<i32, Cx>>,
    /// Background tasks of each added node (aborted when it is removed).
    tasks: Mutex<HashMap<i32, Vec<tokio::task::JoinHandle<()>>>>,
    /// Set once the app's background work started: nodes added later start theirs at once.
    started: AtomicBool,
}

impl Cluster {
    /// The cluster of the app's own node, with the nodes added earlier.
    pub async fn load(home: Cx) -> Result<Arc<Self>> {
        let this = Arc::new(Self { home: home.clone(), nodes: RwLock::default(), tasks: Mutex::default(), started: AtomicBool::new(false) });
        this.register(home.clone());
        let rows = home.store.added_nodes().await?;
        for n in rows {
            if n.id != home.node_id() {
                this.make_node(&n)?;
            }
        }
        Ok(this)
    }

    pub fn home(&self) -> &Cx {
        &self.home
    }

    fn register(&self, cx: Cx) {
        self.nodes.write().unwrap().insert(cx.node_id(), cx);
    }

    /// Every node's `Cx`, by node id.
    pub fn all(&self) -> Vec<Cx> {
        self.nodes.read().unwrap().values().cloned().collect()
    }

    /// Node `node_id`'s `Cx`.
    pub fn get(&self, node_id: i32) -> Result<Cx> {
        self.nodes
            .read()
            .unwrap()
            .get(&node_id)
            .cloned()
            .ok_or_else(|| Error::HostingUnavailable(format!("node {node_id} is not known to this app")))
    }

    /// The `Cx` of a node that answers; a node that is down refuses work on its sites (it is
    /// not their failure: their rows stay as they are until it is back).
    pub fn live(&self, node_id: i32) -> Result<Cx> {
        let cx = self.get(node_id)?;
        let h = cx.health();
        if !h.connected {
            let why = h.last_error.unwrap_or_else(|| "it does not answer".into());
            return Err(Error::HostingUnavailable(format!(
                "the site's server ({}) is unreachable: {why}; the site is kept and comes back with it",
                cx.cfg.node_name
            )));
        }
        Ok(cx)
    }

    /// Whether hosting rows of `node_id` are on a node that answers.
    pub fn up(&self, node_id: i32) -> bool {
        self.get(node_id).is_ok_and(|cx| cx.up())
    }

    pub fn is_home(&self, node_id: i32) -> bool {
        node_id == self.home.node_id()
    }

    /// Marks the background work started (nodes added from now on start theirs at once).
    pub fn set_started(&self) {
        self.started.store(true, Ordering::SeqCst);
    }

    pub fn started(&self) -> bool {
        self.started.load(Ordering::SeqCst)
    }

    /// Keeps an added node's background tasks (aborted when it is removed).
    pub fn keep_tasks(&self, node_id: i32, tasks: Vec<tokio::task::JoinHandle<()>>) {
        self.tasks.lock().unwrap().entry(node_id).or_default().extend(tasks);
    }

    /// Makes the `Cx` of an added node (lazily connected: a node that is down now is
    /// reachable later) and registers it.
    pub(super) fn make_node(&self, n: &NodeRow) -> Result<Cx> {
        let home = &self.home;
        let cfg = Arc::new(node_config(&home.cfg, n)?);
        let (vm, capacity) = (VmManager::lazy(&cfg)?, node_capacity(&cfg));
        let cx = Cx::new(home.store.for_node(n.id), cfg, vm, capacity, false, home.shared.clone());
        self.register(cx.clone());
        Ok(cx)
    }

    /// Drains a node (no new sites or spares go there; its sites keep running) or takes it
    /// back (`drained` false).
    pub async fn set_drained(&self, id: i32, drained: bool) -> Result<Cx> {
        self.home.store.set_node_drained(id, drained).await?;
        self.get(id)
    }

    /// Removes an added node that has no sites left (409 otherwise). Its ready spares are
    /// deleted first; the node of the app's settings cannot be removed.
    pub async fn remove(&self, id: i32) -> Result<()> {
        let store = &self.home.store;
        let n = store.node(id).await?.ok_or(Error::NotFound("node"))?;
        if !n.added || self.is_home(id) {
            return Err(Error::conflict(None, format!("node '{}' is the node of this app's settings; it cannot be removed", n.name)));
        }
        let sites = store.for_node(id).count_on_node().await?;
        if sites > 0 {
            return Err(Error::conflict(None, format!("node '{}' still has {sites} site(s); drain it and move or delete them first", n.name)));
        }
        let cx = self.get(id)?;
        for spare in cx.store.on_node_in(&[HostingState::Spare]).await? {
            if let Ok(Ok((_, lease))) = cx.store.begin(spare.id, Operation::Delete).await {
                let _ = run_delete(&cx, lease).await;
            }
        }
        let left = store.for_node(id).count_all_on_node().await?;
        if left > 0 {
            return Err(Error::Busy(format!("node '{}' still has {left} spare(s) being made or removed; try again in a moment", n.name)));
        }
        if let Some(tasks) = self.tasks.lock().unwrap().remove(&id) {
            tasks.iter().for_each(|t| t.abort());
        }
        self.nodes.write().unwrap().remove(&id);
        self.home.shared.backends.write().unwrap().remove(&id);
        store.delete_node(id).await?;
        tracing::info!(node = %n.name, "node removed");
        Ok(())
    }
}

/// The settings of an added node: the app's, with the node's URI, address, name, capacities
/// and a data folder of its own (`{data_dir}/nodes/{id}`: its VMs' files and golden snapshot).
pub(super) fn node_config(base: &ServiceConfig, n: &NodeRow) -> Result<ServiceConfig> {
    let mut cfg = base.clone();
    cfg.libvirt_uri = n.libvirt_uri.clone();
    cfg.node_name = n.name.clone();
    if let Some(a) = &n.address {
        let ip: IpAddr = a.parse().map_err(|_| Error::internal(format!("node {}: bad address '{a}'", n.name)))?;
        cfg.forward_bind = ip;
        // Its HTTP forwards on its address too, unless that is this host's users' address (the
        // dashboard's host): then on this host's address for HTTP forwards.
        if ip != base.forward_bind {
            cfg.http_forward_bind = ip;
        }
    }
    // Its domains are named by a prefix of its own (nodes added before have the app's).
    if let Some(p) = &n.domain_prefix {
        cfg.domain_prefix = p.clone();
    }
    cfg.node_memory_mib = Some(n.memory_mib.max(0) as u64);
    cfg.node_disk_gib = n.disk_gib.map(|d| d.max(0) as u64);
    cfg.data_dir = base.data_dir.join("nodes").join(n.id.to_string());
    Ok(cfg)
}

/// The node's limits: its memory and disk (settings, else the host's) times the overcommit ratios.
pub(crate) fn node_capacity(cfg: &ServiceConfig) -> Capacity {
    let memory = cfg.node_memory_mib.unwrap_or_else(|| metrics::host_memory_kib().0 / 1024);
    let disk = cfg.node_disk_gib.unwrap_or_else(|| disk_size_gib(&cfg.data_dir));
    Capacity {
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

/// The row of the node of the app's settings (made on first start; its URI kept current).
pub(crate) async fn ensure_node(db: &DatabaseConnection, cfg: &ServiceConfig) -> Result<i32> {
    Store::ensure_node(db, &cfg.node_name, &cfg.libvirt_uri, || (metrics::host_memory_kib().0 / 1024) as i64).await
}
