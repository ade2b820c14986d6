//! More than one hypervisor: the nodes an administrator adds by their libvirt URI, each with
//! its own [`HostingService`] (its `Store`, its `VmManager`, its capacity, its reconciliation
//! and pool), their health, and placement of new sites by free capacity.
//!
//! The node of the app's own settings (`--libvirt-uri`, `--node-name`) is always there; added
//! nodes live in the `nodes` table (`added`), with the address nginx reaches their VM forwards
//! on (QEMU binds them there) and their memory and disk. Every call about a hosting goes to its
//! node's service ([`HostingService::on`]).
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};

use super::{HostingService, HostingState, Inner, NodeHealth, NodeSite, NodeView, Operation, metrics};
use crate::accounts::Actor;
use crate::db::now_ms;
use crate::store::NodeRow;
use crate::vm::VmManager;
use crate::{Error, Result, ServiceConfig};

/// What an administrator sends to add a node.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct NewNode {
    /// 1-32 of a-z, 0-9 and '-'.
    pub name: String,
    /// `qemu+ssh://user@host[:port]/system`, `qemu+tls://host/system` (or `/session`);
    /// `test:///default` for tests.
    pub libvirt_uri: String,
    /// The IP nginx reaches the node's VM forwards on (QEMU binds them there).
    pub address: String,
    /// Memory and disk the node's sites may commit (before the overcommit ratios).
    pub memory_mib: u64,
    pub disk_gib: u64,
}

/// The URI schemes a node may be reached by (no `ext`: it runs a program of the URI's choice).
const SCHEMES: &[&str] = &["qemu", "qemu+ssh", "qemu+libssh", "qemu+libssh2", "qemu+tls", "qemu+tcp", "qemu+unix", "test"];
/// URI parameters allowed (libvirt's `command`, `netcat` and `socket` name programs or paths
/// run on the node, and are refused).
const PARAMS: &[&str] = &["keyfile", "known_hosts", "known_hosts_verify", "no_verify", "no_tty", "sshauth", "pkipath", "mode", "proxy"];

/// Checks a libvirt URI: an allowed scheme, `/system`, `/session` (or `/default` for `test`),
/// a plain `[user@]host[:port]`, allowed parameters with plain values. Nothing of it reaches a
/// shell; libvirt itself runs ssh with these as arguments.
pub fn validate_uri(uri: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::validation("libvirt_uri", format!("libvirt URI '{uri}': {why}")));
    if uri.len() > 400 || !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return bad("must be printable ASCII without spaces, at most 400 characters");
    }
    let Some((scheme, rest)) = uri.split_once("://") else { return bad("has no scheme (qemu+ssh://...)") };
    if !SCHEMES.contains(&scheme) {
        return bad(&format!("scheme '{scheme}' is not one of {}", SCHEMES.join(", ")));
    }
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => return bad("has no path (/system or /session)"),
    };
    let plain = |s: &str, extra: &[u8]| s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b) || extra.contains(&b));
    // libvirt's test driver: its shared `/default`, or a private one from an XML file.
    let test_file = scheme == "test" && authority.is_empty() && path.ends_with(".xml") && plain(path, b"/") && !path.contains("..");
    let paths: &[&str] = if scheme == "test" { &["/default"] } else { &["/system", "/session"] };
    if !paths.contains(&path) && !test_file {
        return bad(&format!("path must be {}", paths.join(" or ")));
    }
    if !plain(authority, b"@:[]") || authority.matches('@').count() > 1 || authority.starts_with('-') {
        return bad("host must be [user@]host[:port]");
    }
    if scheme.contains('+') && scheme != "qemu+unix" && authority.rsplit('@').next().unwrap_or("").is_empty() {
        return bad("a remote scheme needs a host");
    }
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if !PARAMS.contains(&k) {
            return bad(&format!("parameter '{k}' is not allowed (allowed: {})", PARAMS.join(", ")));
        }
        if !plain(v, b"/,") || v.starts_with('-') {
            return bad(&format!("parameter '{k}' has a value with characters that are not allowed"));
        }
    }
    Ok(())
}

/// The parameters of a node URI that name files on this host (libvirt reads them here).
const FILE_PARAMS: &[&str] = &["keyfile", "known_hosts", "pkipath"];

/// What the operator's settings allow of a (valid) node URI: a plaintext `qemu+tcp://` only
/// with `allow_plaintext_libvirt`, key files only inside `node_key_dir` (a plain absolute path,
/// no `..`), so an administrator's form cannot point libvirt at any file the app can read.
pub fn check_uri_policy(uri: &str, cfg: &ServiceConfig) -> Result<()> {
    let bad = |why: String| Err(Error::validation("libvirt_uri", why));
    if uri.starts_with("qemu+tcp://") && !cfg.allow_plaintext_libvirt {
        return bad("qemu+tcp:// is plaintext (no authentication, no encryption); use qemu+ssh:// or qemu+tls://, \
                    or start the app with --allow-plaintext-libvirt"
            .into());
    }
    let query = uri.split_once('?').map_or("", |(_, q)| q);
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if !FILE_PARAMS.contains(&k) {
            continue;
        }
        let Some(dir) = &cfg.node_key_dir else {
            return bad(format!("parameter '{k}' names a file; key files must be in the folder set by --node-key-dir, which is not set"));
        };
        let path = std::path::Path::new(v);
        let plain = path.is_absolute() && path.components().all(|c| matches!(c, std::path::Component::RootDir | std::path::Component::Normal(_)));
        if !plain || !path.starts_with(dir) || path == dir.as_path() && k != "pkipath" {
            return bad(format!("parameter '{k}': '{v}' is not a file inside the key folder {} (--node-key-dir)", dir.display()));
        }
    }
    Ok(())
}

fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok { Ok(()) } else { Err(Error::validation("name", "a node name is 1-32 of a-z, 0-9 and '-'")) }
}

impl NewNode {
    /// The checked input: name, URI, address (an IP), capacities (at least one small site).
    pub fn validate(&self) -> Result<IpAddr> {
        validate_name(&self.name)?;
        validate_uri(&self.libvirt_uri)?;
        let ip: IpAddr = self
            .address
            .trim()
            .parse()
            .map_err(|_| Error::validation("address", format!("'{}' is not an IP address", self.address)))?;
        if ip.is_unspecified() || ip.is_multicast() {
            return Err(Error::validation("address", "the address must be one a forward can bind and nginx can reach"));
        }
        if !(64..=64 * 1024 * 1024).contains(&self.memory_mib) {
            return Err(Error::validation("memory_mib", "memory must be 64 MiB to 64 TiB"));
        }
        if !(1..=1024 * 1024).contains(&self.disk_gib) {
            return Err(Error::validation("disk_gib", "disk must be 1 GiB to 1 PiB"));
        }
        Ok(ip)
    }
}

/// Every node's service and health, shared by all of them.
pub(crate) struct NodeRegistry {
    /// The node of the app's own settings.
    home: i32,
    services: RwLock<BTreeMap<i32, HostingService>>,
    health: Mutex<HashMap<i32, NodeHealth>>,
    /// Background tasks of each node (aborted when it is removed).
    tasks: Mutex<HashMap<i32, Vec<tokio::task::JoinHandle<()>>>>,
    /// Set once the app's background work started: nodes added later start theirs at once.
    started: std::sync::atomic::AtomicBool,
}

impl NodeRegistry {
    pub(super) fn new(home: i32) -> Self {
        Self {
            home,
            services: RwLock::default(),
            health: Mutex::default(),
            tasks: Mutex::default(),
            started: Default::default(),
        }
    }

    pub(super) fn register(&self, id: i32, svc: HostingService) {
        self.services.write().unwrap().insert(id, svc);
    }

    fn all(&self) -> Vec<HostingService> {
        self.services.read().unwrap().values().cloned().collect()
    }

    fn health(&self, id: i32) -> NodeHealth {
        self.health.lock().unwrap().get(&id).cloned().unwrap_or_else(|| NodeHealth {
            // Not checked yet: the node of the settings connected at start-up.
            connected: id == self.home,
            image_ok: id == self.home,
            ..Default::default()
        })
    }

    /// Whether a node answers (its sites are reachable).
    pub(super) fn up(&self, id: i32) -> bool {
        self.health(id).connected
    }
}

/// The settings of an added node: the app's, with the node's URI, address, name, capacities
/// and a data folder of its own (`{data_dir}/nodes/{id}`: its VMs' files and golden snapshot).
fn node_config(base: &ServiceConfig, n: &NodeRow) -> Result<ServiceConfig> {
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

impl HostingService {
    /// The service of node `node_id` (this one's when it is this node).
    pub fn on(&self, node_id: i32) -> Result<HostingService> {
        if node_id == self.node_id() {
            return Ok(self.clone());
        }
        self.inner
            .nodes
            .services
            .read()
            .unwrap()
            .get(&node_id)
            .cloned()
            .ok_or_else(|| Error::HostingUnavailable(format!("node {node_id} is not known to this app")))
    }

    /// The service of a node that answers; a node that is down refuses work on its sites (it
    /// is not their failure: their rows stay as they are until it is back).
    pub(super) fn on_live(&self, node_id: i32) -> Result<HostingService> {
        let svc = self.on(node_id)?;
        let h = self.inner.nodes.health(node_id);
        if !h.connected {
            let why = h.last_error.unwrap_or_else(|| "it does not answer".into());
            return Err(Error::HostingUnavailable(format!(
                "the site's server ({}) is unreachable: {why}; the site is kept and comes back with it",
                svc.inner.cfg.node_name
            )));
        }
        Ok(svc)
    }

    /// Whether hosting rows of `node_id` are on a node that answers.
    pub(super) fn node_up(&self, node_id: i32) -> bool {
        self.inner.nodes.up(node_id)
    }

    /// Every node's service, by node id.
    pub fn node_services(&self) -> Vec<HostingService> {
        self.inner.nodes.all()
    }

    /// Makes the service of an added node (lazily connected: a node that is down now is
    /// reachable later) and registers it.
    fn make_node_service(&self, n: &NodeRow) -> Result<HostingService> {
        let cfg = Arc::new(node_config(&self.inner.cfg, n)?);
        let vm = VmManager::lazy(&cfg)?;
        let capacity = super::node_capacity(&cfg);
        let i = &self.inner;
        let svc = HostingService {
            inner: Arc::new(Inner {
                store: i.store.for_node(n.id),
                cfg,
                vm,
                proxy: i.proxy.clone(),
                accounts: i.accounts.clone(),
                events: i.events.clone(),
                // Provisioning slots are the node's own (boots take its CPU).
                permits: Arc::new(tokio::sync::Semaphore::new(i.cfg.provision_concurrency.max(1))),
                faults: i.faults.clone(),
                metrics: i.metrics.clone(),
                golden_failed_at: Mutex::new(None),
                // Users' work on this node's CPU is what its spares wait for.
                foreground: super::foreground::Foreground::new(),
                capacity,
                restored: i.restored.clone(),
                ssh_wakers: i.ssh_wakers.clone(),
                wake_limit: i.wake_limit.clone(),
                consoles: i.consoles.clone(),
                leading: i.leading.clone(),
                nodes: i.nodes.clone(),
            }),
        };
        i.nodes.register(n.id, svc.clone());
        Ok(svc)
    }

    /// Registers the nodes added earlier (at start-up).
    pub(super) async fn load_added_nodes(&self) -> Result<()> {
        let rows = self.inner.store.added_nodes().await?;
        for n in rows {
            if n.id != self.node_id() {
                self.make_node_service(&n)?;
            }
        }
        Ok(())
    }

    /// Starts the background work of every added node (reconciliation, pool, stats, sleep),
    /// and the health checks of all nodes. Later additions start theirs when added.
    pub(super) async fn start_nodes_background(&self) -> Vec<tokio::task::JoinHandle<()>> {
        self.inner.nodes.started.store(true, std::sync::atomic::Ordering::SeqCst);
        self.check_nodes().await;
        for svc in self.node_services() {
            if svc.node_id() != self.node_id() {
                svc.start_added_node().await;
            }
        }
        let this = self.clone();
        let every = std::time::Duration::from_secs(self.inner.cfg.reconcile_interval_secs.clamp(1, 30));
        vec![tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                this.check_nodes().await;
            }
        })]
    }

    /// An added node's own background work; its first reconciliation failing (the node is
    /// down) is logged, not fatal: the next round tries again.
    async fn start_added_node(&self) {
        match self.reconcile().await {
            Ok(report) => tracing::info!(node = %self.inner.cfg.node_name, ?report, "node reconciliation done"),
            Err(err) => tracing::warn!(node = %self.inner.cfg.node_name, %err, "node reconciliation failed (is the node up?)"),
        }
        self.open_all_ssh_wakers().await;
        let mut tasks = self.node_tasks();
        tasks.push(self.spawn_sampler());
        self.inner.nodes.tasks.lock().unwrap().entry(self.node_id()).or_default().extend(tasks);
    }

    /// Checks every node (connect, libvirt version, guest image) and keeps the answers.
    pub async fn check_nodes(&self) {
        for svc in self.node_services() {
            let h = svc.check_health().await;
            if !h.connected {
                tracing::warn!(node = %svc.inner.cfg.node_name, error = ?h.last_error, "node is unreachable");
            }
            self.inner.nodes.health.lock().unwrap().insert(svc.node_id(), h);
        }
    }

    async fn check_health(&self) -> NodeHealth {
        let home = self.node_id() == self.inner.nodes.home;
        let checked_at = now_ms();
        let res = if self.inner.faults.node_down(self.node_id()) {
            Ok(Err(crate::vm::VmError::Invalid(format!("could not connect to libvirt at {}: made unreachable by a test", self.inner.cfg.libvirt_uri))))
        } else {
            tokio::time::timeout(std::time::Duration::from_secs(20), self.inner.vm.health()).await
        };
        match res {
            // The node of the settings reads the image from this host's disk (as ever).
            Ok(Ok((version, image))) => NodeHealth {
                connected: true,
                libvirt_version: Some(version),
                image_ok: home || image.is_ok(),
                last_error: if home { None } else { image.err() },
                checked_at,
            },
            Ok(Err(e)) => NodeHealth { connected: false, libvirt_version: None, image_ok: false, last_error: Some(e.to_string()), checked_at },
            Err(_) => NodeHealth {
                connected: false,
                libvirt_version: None,
                image_ok: false,
                last_error: Some("libvirt did not answer within 20 s".into()),
                checked_at,
            },
        }
    }

    /// Adds a node (administrators only). It must answer, have the guest image (a volume of
    /// one of its storage pools, at the image's path here) and see this host's
    /// `{data_dir}/nodes` at the same path (shared storage: the app writes the node's VM files
    /// there); see README "More than one node". Else it is refused and nothing is stored.
    pub async fn add_node(&self, actor: &Actor, new: NewNode) -> Result<NodeView> {
        if !actor.is_admin {
            return Err(Error::Forbidden);
        }
        let ip = new.validate()?;
        check_uri_policy(&new.libvirt_uri, &self.inner.cfg)?;
        let same = self.inner.store.node_named_or_at(&new.name, &new.libvirt_uri).await?;
        if let Some(n) = same {
            let field = if n.name == new.name { "name" } else { "libvirt_uri" };
            return Err(Error::conflict(Some(field), format!("node '{}' already has this name or URI", n.name)));
        }
        // Check it before storing anything: a throwaway manager with the node's settings.
        let probe = NodeRow {
            id: 0,
            name: new.name.clone(),
            libvirt_uri: new.libvirt_uri.clone(),
            memory_mib: new.memory_mib as i64,
            created_at: 0,
            address: Some(ip.to_string()),
            disk_gib: Some(new.disk_gib as i64),
            drained: false,
            added: true,
            identity: None,
            domain_prefix: None,
        };
        let vm = VmManager::lazy(&node_config(&self.inner.cfg, &probe)?)?;
        let (version, image) = match tokio::time::timeout(std::time::Duration::from_secs(30), vm.health()).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(Error::validation("libvirt_uri", format!("could not reach the node: {e}"))),
            Err(_) => return Err(Error::validation("libvirt_uri", "the node did not answer within 30 s")),
        };
        if let Err(why) = image {
            return Err(Error::validation("libvirt_uri", why));
        }
        // Its VM files are written here, under `{data_dir}/nodes/`: the node must see them.
        let folder = self.inner.cfg.data_dir.join("nodes");
        match tokio::time::timeout(std::time::Duration::from_secs(30), vm.check_shared_folder(folder)).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(why))) => return Err(Error::validation("libvirt_uri", why)),
            Ok(Err(e)) => return Err(Error::validation("libvirt_uri", format!("could not check the node's folder: {e}"))),
            Err(_) => return Err(Error::validation("libvirt_uri", "the node did not answer within 30 s")),
        }
        // One daemon is one node: a second URI of a known one would see (and, reconciling,
        // judge) the other node's domains. What the daemon says it is, kept in the row:
        let identity = match tokio::time::timeout(std::time::Duration::from_secs(30), vm.identity()).await {
            Ok(Ok(id)) => id,
            Ok(Err(e)) => return Err(Error::validation("libvirt_uri", format!("could not read what the node is: {e}"))),
            Err(_) => return Err(Error::validation("libvirt_uri", "the node did not answer within 30 s")),
        };
        let shared = if self.inner.cfg.allow_shared_libvirt_daemon { None } else { self.node_of_daemon(&vm).await? };
        if let Some(name) = shared {
            tracing::warn!(uri = %new.libvirt_uri, existing = %name, %identity, "refused a second node for one libvirt daemon");
            return Err(Error::conflict(
                Some("libvirt_uri"),
                format!("this URI reaches the libvirt daemon of node '{name}' (the same host and daemon); a daemon can be added once"),
            ));
        }
        // The row and its domain prefix (`{prefix}n{id}-`, its own) in one transaction.
        let row = self.inner.store.insert_node(NodeRow { identity: Some(identity), ..probe }, &self.inner.cfg.domain_prefix).await?;
        let svc = self.make_node_service(&row)?;
        let health = NodeHealth { connected: true, libvirt_version: Some(version), image_ok: true, last_error: None, checked_at: now_ms() };
        self.inner.nodes.health.lock().unwrap().insert(row.id, health);
        tracing::info!(node = %row.name, uri = %row.libvirt_uri, address = %ip, "node added");
        if self.inner.nodes.started.load(std::sync::atomic::Ordering::SeqCst) {
            svc.start_added_node().await;
        }
        svc.node_view().await
    }

    /// The name of the known node whose libvirt daemon `vm` reaches: the one that sees the
    /// mark `vm` leaves on its daemon (`VmManager::mark_daemon`). Runs in a task of its own, so
    /// an admin's dropped request never leaves the mark behind. A known node that cannot be
    /// asked refuses the add: it might be that daemon.
    async fn node_of_daemon(&self, vm: &VmManager) -> Result<Option<String>> {
        let (this, vm) = (self.clone(), vm.clone());
        tokio::spawn(async move { this.node_of_daemon_now(&vm).await })
            .await
            .map_err(|e| Error::internal(format!("the node check ended: {e}")))?
    }

    async fn node_of_daemon_now(&self, vm: &VmManager) -> Result<Option<String>> {
        let wait = std::time::Duration::from_secs(20);
        // A folder of this check's own: libvirt refuses a second pool on a path one already
        // uses, so a mark left by a check that was cut short cannot block the next.
        let folder = self.inner.cfg.data_dir.join("nodes").join(format!(".mark-{}", uuid::Uuid::new_v4().simple()));
        tokio::fs::create_dir_all(&folder).await.map_err(|e| Error::internal(format!("making {}: {e}", folder.display())))?;
        let found = self.ask_nodes_for_mark(vm, folder.clone(), wait).await;
        let _ = tokio::fs::remove_dir(&folder).await;
        found
    }

    async fn ask_nodes_for_mark(&self, vm: &VmManager, folder: std::path::PathBuf, wait: std::time::Duration) -> Result<Option<String>> {
        let mark = match tokio::time::timeout(wait, vm.mark_daemon(folder)).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => return Err(Error::validation("libvirt_uri", format!("could not tell which libvirt daemon the node is: {e}"))),
            Err(_) => return Err(Error::validation("libvirt_uri", "the node did not answer within 20 s")),
        };
        let mut found = Ok(None);
        for svc in self.node_services() {
            let node = svc.inner.cfg.node_name.clone();
            let unknown = |why: String| {
                tracing::warn!(%node, %why, "could not ask a node whether a new node is its daemon");
                Err(Error::conflict(
                    Some("libvirt_uri"),
                    format!("node '{node}' could not be asked whether this URI reaches its libvirt daemon ({why}); add the node once '{node}' answers, or remove '{node}' first"),
                ))
            };
            match tokio::time::timeout(wait, svc.inner.vm.sees_mark(&mark)).await {
                Ok(Ok(true)) => {
                    found = Ok(Some(node));
                    break;
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    found = unknown(e.to_string());
                    break;
                }
                Err(_) => {
                    found = unknown("no answer within 20 s".into());
                    break;
                }
            }
        }
        if let Err(e) = vm.unmark_daemon(&mark).await {
            tracing::warn!(%mark, err = %e, "could not remove the transient storage pool of a node check");
        }
        found
    }

    /// Drains a node (no new sites or spares go there; its sites keep running) or takes it
    /// back (`drained` false).
    pub async fn set_node_drained(&self, actor: &Actor, id: i32, drained: bool) -> Result<NodeView> {
        if !actor.is_admin {
            return Err(Error::Forbidden);
        }
        self.inner.store.set_node_drained(id, drained).await?;
        self.on(id)?.node_view().await
    }

    /// Removes an added node that has no sites left (409 otherwise). Its ready spares are
    /// deleted first; the node of the app's settings cannot be removed.
    pub async fn remove_node(&self, actor: &Actor, id: i32) -> Result<()> {
        if !actor.is_admin {
            return Err(Error::Forbidden);
        }
        let n = self.inner.store.node(id).await?.ok_or(Error::NotFound("node"))?;
        if !n.added || id == self.inner.nodes.home {
            return Err(Error::conflict(None, format!("node '{}' is the node of this app's settings; it cannot be removed", n.name)));
        }
        let sites = self.inner.store.for_node(id).count_on_node().await?;
        if sites > 0 {
            return Err(Error::conflict(None, format!("node '{}' still has {sites} site(s); drain it and move or delete them first", n.name)));
        }
        let svc = self.on(id)?;
        for spare in svc.inner.store.on_node_in(&[HostingState::Spare]).await? {
            if let Ok(Ok((_, lease))) = svc.inner.store.begin(spare.id, Operation::Delete).await {
                let _ = svc.run_delete(lease).await;
            }
        }
        let left = self.inner.store.for_node(id).count_all_on_node().await?;
        if left > 0 {
            return Err(Error::Busy(format!("node '{}' still has {left} spare(s) being made or removed; try again in a moment", n.name)));
        }
        if let Some(tasks) = self.inner.nodes.tasks.lock().unwrap().remove(&id) {
            tasks.iter().for_each(|t| t.abort());
        }
        self.inner.nodes.services.write().unwrap().remove(&id);
        self.inner.nodes.health.lock().unwrap().remove(&id);
        self.inner.store.delete_node(id).await?;
        tracing::info!(node = %n.name, "node removed");
        Ok(())
    }

    /// Every node with its health, capacity and sites (administrators only).
    pub async fn nodes_info(&self, actor: &Actor) -> Result<Vec<NodeView>> {
        if !actor.is_admin {
            return Err(Error::Forbidden);
        }
        let mut out = Vec::new();
        for svc in self.node_services() {
            out.push(svc.node_view().await?);
        }
        Ok(out)
    }

    /// The nodes a new site (or spare) may go to, the one with the most free capacity first:
    /// healthy (connected, with the image), not drained, with room for a VM of `plan` (then
    /// the full ones: a ready spare there is already counted). Free capacity is the memory
    /// limit minus what is committed (then disk, then the lower id). Also the refusal of the
    /// full node with the most room (its numbers), if any.
    pub(super) async fn placement(&self, plan: &str) -> Result<(Vec<HostingService>, Option<String>)> {
        let db = self.inner.store.db();
        let rows: HashMap<i32, NodeRow> = self.inner.store.all_nodes().await?.into_iter().map(|n| (n.id, n)).collect();
        let mut cands = Vec::new();
        let mut full = Vec::new();
        for svc in self.node_services() {
            let id = svc.node_id();
            let h = self.inner.nodes.health(id);
            if !h.connected || !h.image_ok || rows.get(&id).is_none_or(|n| n.drained) {
                continue;
            }
            let cap = &svc.inner.capacity;
            let used = svc.inner.store.committed_in(db, cap).await?;
            let free = (cap.memory_limit_mib.saturating_sub(used.memory_mib), cap.disk_limit_gib.saturating_sub(used.disk_gib));
            match cap.refusal(used, plan) {
                Some(why) => full.push((free, id, why)),
                None => cands.push((free, id, svc)),
            }
        }
        cands.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        full.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        // Full nodes last: a create there may still claim a ready spare (already counted).
        let why = full.first().map(|f| f.2.clone());
        let mut out: Vec<HostingService> = cands.into_iter().map(|c| c.2).collect();
        for (_, id, _) in full {
            out.push(self.on(id)?);
        }
        Ok((out, why))
    }

    /// Whether this node takes new spares now (healthy and not drained).
    pub(super) async fn takes_new(&self) -> Result<bool> {
        let h = self.inner.nodes.health(self.node_id());
        if !h.connected || !h.image_ok {
            return Ok(false);
        }
        let n = self.inner.store.node(self.node_id()).await?;
        Ok(n.is_some_and(|n| !n.drained))
    }

    /// This node's view: health, capacity, counts and sites.
    pub(super) async fn node_view(&self) -> Result<NodeView> {
        let store = &self.inner.store;
        let node = store.node(store.node_id()).await?.ok_or(Error::NotFound("node"))?;
        let health = self.inner.nodes.health(node.id);
        let hostings_total = store.count_on_node().await?;
        let vms_running = if health.connected {
            match self.inner.vm.list_domains().await {
                Ok(d) => d.into_iter().filter(|(_, s)| *s == crate::vm::VmState::Running).count() as u64,
                Err(_) => 0,
            }
        } else {
            0
        };
        let (total, avail) = if node.added { (node.memory_mib.max(0) as u64 * 1024, 0) } else { metrics::host_memory_kib() };
        let committed = store.committed_in(store.db(), &self.inner.capacity).await?;
        let sites = store
            .users_on_node()
            .await?
            .into_iter()
            .map(|h| NodeSite { id: h.id, slug: h.slug, state: h.state })
            .collect();
        Ok(NodeView {
            id: node.id,
            name: node.name,
            libvirt_uri: node.libvirt_uri,
            domain_type: self.inner.vm.domain_type().to_string(),
            memory_total_kib: total,
            memory_available_kib: avail,
            hostings_total,
            vms_running,
            hostings_running: store.count_on_node_in(HostingState::Running).await?,
            hostings_stopped: store.count_on_node_in(HostingState::Stopped).await?,
            hostings_sleeping: store.count_on_node_in(HostingState::Sleeping).await?,
            memory_committed_mib: committed.memory_mib,
            memory_limit_mib: self.inner.capacity.memory_limit_mib,
            disk_committed_gib: committed.disk_gib,
            disk_limit_gib: self.inner.capacity.disk_limit_gib,
            address: self.inner.cfg.forward_bind.to_string(),
            drained: node.drained,
            added: node.added,
            health,
            sites,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_uris_are_remote_libvirt_uris_without_programs_or_shell() {
        for ok in [
            "qemu+ssh://root@10.0.0.5/system",
            "qemu+ssh://vmwnode2@127.0.0.1:2222/session?keyfile=/tmp/k/id_ed25519&known_hosts=/tmp/k/known_hosts",
            "qemu+tls://host.example.com/system",
            "qemu+libssh://root@127.0.0.1:22022/session?keyfile=/var/lib/n2/id_ed25519&known_hosts=/var/lib/n2/known_hosts&sshauth=privkey",
            "qemu:///session",
            "test:///default",
            "test:///tmp/t1/node2.xml",
            "qemu+ssh://[::1]:22/system",
        ] {
            assert!(validate_uri(ok).is_ok(), "{ok}: {:?}", validate_uri(ok));
        }
        for bad in [
            "ext:///system?command=/bin/sh",
            "qemu+ext://host/system?command=/bin/sh",
            "qemu+ssh://host/system?command=rm",
            "qemu+ssh://host/system?netcat=/tmp/x",
            "qemu+ssh://host/system?keyfile=$(id)",
            "qemu+ssh://ho;st/system",
            "qemu+ssh://host/other",
            "qemu+ssh:///system",
            "qemu+ssh://-oProxyCommand=x/system",
            "qemu+ssh://host/system?keyfile=-x",
            "http://host/system",
            "qemu+ssh://host /system",
            "test:///system",
            "qemu+ssh://host",
            "test:///../etc/x.xml",
        ] {
            assert!(validate_uri(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn plaintext_uris_and_key_files_outside_the_key_folder_need_the_operators_setting() {
        let mut cfg = ServiceConfig::default();
        let field_err = |uri: &str, cfg: &ServiceConfig| match check_uri_policy(uri, cfg) {
            Err(Error::Validation { field, message }) => {
                assert_eq!(field, "libvirt_uri");
                message
            }
            other => panic!("{uri}: {other:?}"),
        };
        assert!(field_err("qemu+tcp://10.0.0.5/system", &cfg).contains("--allow-plaintext-libvirt"));
        assert!(check_uri_policy("qemu+ssh://root@10.0.0.5/system", &cfg).is_ok());
        assert!(check_uri_policy("qemu+tls://h.example/system?mode=direct", &cfg).is_ok());
        let keyed = "qemu+ssh://n2@127.0.0.1:2222/session?keyfile=/etc/vmw/keys/id_ed25519&known_hosts=/etc/vmw/keys/known_hosts";
        assert!(field_err(keyed, &cfg).contains("--node-key-dir"), "no key folder set: no key file");
        cfg.node_key_dir = Some("/etc/vmw/keys".into());
        assert!(check_uri_policy(keyed, &cfg).is_ok());
        for outside in [
            "qemu+ssh://h/system?keyfile=/root/.ssh/id_ed25519",
            "qemu+ssh://h/system?keyfile=/etc/vmw/keys/../../../root/.ssh/id_rsa",
            "qemu+ssh://h/system?known_hosts=/etc/vmw/keys2/known_hosts",
            "qemu+ssh://h/system?keyfile=etc/vmw/keys/id",
            "qemu+tls://h/system?pkipath=/etc/pki",
        ] {
            assert!(field_err(outside, &cfg).contains("/etc/vmw/keys"), "{outside}");
        }
        cfg.allow_plaintext_libvirt = true;
        assert!(check_uri_policy("qemu+tcp://10.0.0.5/system", &cfg).is_ok());
    }

    #[test]
    fn a_new_node_needs_a_name_an_ip_and_room() {
        let n = NewNode {
            name: "node-2".into(),
            libvirt_uri: "test:///default".into(),
            address: "127.0.0.1".into(),
            memory_mib: 4096,
            disk_gib: 100,
        };
        assert_eq!(n.validate().unwrap().to_string(), "127.0.0.1");
        let field = |n: NewNode| match n.validate() {
            Err(Error::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(NewNode { address: "example.com".into(), ..n.clone() }), "address");
        assert_eq!(field(NewNode { address: "0.0.0.0".into(), ..n.clone() }), "address");
        assert_eq!(field(NewNode { name: "Node 2".into(), ..n.clone() }), "name");
        assert_eq!(field(NewNode { memory_mib: 0, ..n.clone() }), "memory_mib");
        assert_eq!(field(NewNode { disk_gib: 0, ..n.clone() }), "disk_gib");
        assert_eq!(field(NewNode { libvirt_uri: "ext:///x".into(), ..n }), "libvirt_uri");
    }
}
