//! Virtual machines through libvirt (the `virt` crate, blocking FFI run on
//! `spawn_blocking`): per-VM overlay disks and NoCloud seeds, domain XML, lifecycle, state,
//! stats and readiness. Domain names, disk paths and seed paths derive from hosting ids only.
mod compress;
mod connections;
mod console;
mod cpu_check;
mod delta;
mod files;
mod forwards;
mod golden;
mod guest_calls;
mod priority;
mod ready;
mod snapshots;
mod wake_feed;
mod xml;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use virt::connect::Connect;
use virt::domain::{Domain, DomainState};
use virt::error::ErrorNumber;

use crate::{DomainType, ServiceConfig};
pub use compress::Compressed;
pub use console::{INPUT_BUDGET, InputBudget, Room, Typed, VmConsole};
pub use files::SeedSpec;
pub use golden::{GoldenMeta, GoldenSpec};
pub use priority::CpuPriority;
pub use snapshots::TakeFailure;
pub use xml::{DomainXml, ImageInfo, NODE_NS};

/// What went wrong with a VM, with what was being done and the underlying error as the source.
/// Display is worded for the site's owner (the hosting page shows "<step> failed: <this>").
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// A libvirt call failed.
    #[error("libvirt could not {action}{}: {}", on(.domain), .source.message())]
    Libvirt {
        action: &'static str,
        /// The libvirt domain name, when the call was about one.
        domain: Option<String>,
        #[source]
        source: virt::error::Error,
    },
    #[error("could not connect to libvirt at {uri}: {}", .source.message())]
    Connect {
        uri: String,
        #[source]
        source: virt::error::Error,
    },
    /// The blocking task running a libvirt call panicked or was cancelled.
    #[error("the libvirt task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("domain {0} is not defined")]
    NotDefined(String),
    #[error("the VM is {0:?}, not running")]
    NotRunning(VmState),
    /// A file operation on the host.
    #[error("{what} {}: {source}", .path.display())]
    Io {
        /// "creating", "writing", "removing"...
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An external program could not be started.
    #[error("could not run {program}: {source}")]
    Spawn {
        program: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// An external program ran and failed; `stderr` is what it said.
    #[error("{program} failed ({status}): {}", .stderr.trim())]
    Command { program: &'static str, status: std::process::ExitStatus, stderr: String },
    #[error("the guest image is missing or incomplete: {}: {source}", .dir.display())]
    ImageDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the guest image is missing or incomplete: {} not found", .path.display())]
    ImageMissing { path: PathBuf },
    /// The guest did not answer in time; `missing` names what did not answer.
    #[error("the VM did not answer within {waited_secs} s: no {}", .missing.join(" and no "))]
    NotReady { waited_secs: u64, missing: Vec<&'static str> },
    /// A guest agent command failed (libvirt reports the agent's error).
    #[error("the guest agent of {domain} could not do {command}: {}", .source.message())]
    Agent {
        domain: String,
        command: &'static str,
        #[source]
        source: virt::error::Error,
    },
    /// A call into the guest that its tenant can trigger did not finish within
    /// `guest_call_timeout_secs` (its turn included: `guest_calls`). Nothing was changed on the
    /// host; the guest may still finish it.
    #[error("the guest agent of {domain} did not answer {command} within {waited_secs} s")]
    GuestTimeout { domain: String, command: &'static str, waited_secs: u64 },
    #[error("the guest agent of {domain} did not answer in time: {source}")]
    AgentUnresponsive {
        domain: String,
        #[source]
        source: Box<VmError>,
    },
    /// The agent answered something that is not what `command` returns (not trusted: the
    /// guest is its tenant's).
    #[error("the guest agent's answer to {command} is malformed: {problem}")]
    AgentReply { command: &'static str, problem: String },
    #[error("{path} in the guest: {source}")]
    GuestFile {
        path: String,
        #[source]
        source: Box<VmError>,
    },
    /// A program run in the guest exited non-zero; `stderr` is what it said (guest text).
    #[error("{path} exited with {code}: {}", .stderr.trim())]
    GuestCommand { path: String, code: i64, stderr: String },
    #[error("{path} did not finish in time")]
    GuestCommandTimeout { path: String },
    /// QEMU would not add a port forward (the port is taken, most likely).
    #[error("QEMU could not forward port {port}: {problem}")]
    Forward { port: u16, problem: String },
    /// Settings or inputs the service refuses (a bad domain prefix, equal ports, an unsafe seed).
    #[error("{0}")]
    Invalid(String),
}

fn on(domain: &Option<String>) -> String {
    domain.as_deref().map(|d| format!(" {d}")).unwrap_or_default()
}

/// Names what a libvirt call was doing when it fails.
trait Doing<T> {
    /// ... on domain `domain`.
    fn doing(self, action: &'static str, domain: &str) -> Result<T, VmError>;
    /// ... on the host (no domain).
    fn doing_host(self, action: &'static str) -> Result<T, VmError>;
}

impl<T> Doing<T> for Result<T, virt::error::Error> {
    fn doing(self, action: &'static str, domain: &str) -> Result<T, VmError> {
        self.map_err(|source| {
            crate::telemetry::libvirt_error(action);
            VmError::Libvirt { action, domain: Some(domain.to_owned()), source }
        })
    }
    fn doing_host(self, action: &'static str) -> Result<T, VmError> {
        self.map_err(|source| {
            crate::telemetry::libvirt_error(action);
            VmError::Libvirt { action, domain: None, source }
        })
    }
}

/// What one VM needs. Ports are loopback ports (see `ServiceConfig::forward_bind`).
#[derive(Clone, Debug)]
pub struct VmSpec {
    pub hosting_id: i32,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub http_port: u16,
    pub ssh_port: u16,
    /// A warm spare being made yields the CPU to users' VMs (see `priority`).
    pub priority: CpuPriority,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum VmState {
    Running,
    Paused,
    ShutOff,
    Crashed,
    Missing,
    Other,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct VmStats {
    pub cpu_time_ns: u64,
    pub vcpus: u32,
    pub memory_max_kib: u64,
    /// Resident memory of the VM's QEMU process on the host.
    pub memory_rss_kib: u64,
    pub disk_rd_bytes: u64,
    pub disk_wr_bytes: u64,
    /// Not reported with QEMU user networking (libvirt has no <interface> for it).
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
    pub sampled_at_ms: i64,
}

#[derive(Clone)]
pub struct VmManager {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: ServiceConfig,
    domain_type: DomainType,
    conns: connections::Connections,
    /// Calls into guests that tenants can trigger: bounded (`guest_calls`), on `guest_conns`.
    guest: guest_calls::GuestCalls,
    /// Their own connections, one per slot (None on libvirt's test driver: a second
    /// `test:///path` connection would be another, empty driver).
    guest_conns: Option<connections::Connections>,
    /// The service's own calls into guests (clock, hostname): a connection of their own, so a
    /// tenant's stuck agent, which they wait out, never holds one that starts, stops, saves
    /// and wakes use (None on libvirt's test driver, as above).
    own_guest_conns: Option<connections::Connections>,
    /// The golden snapshot is made, and cloned, one at a time (a clone rewrites its header).
    golden_lock: tokio::sync::Mutex<()>,
}

impl Inner {
    fn new(cfg: ServiceConfig, domain_type: DomainType) -> Self {
        let conns = connections::Connections::new(&cfg.libvirt_uri, cfg.libvirt_connections);
        let guest = guest_calls::GuestCalls::new(Duration::from_secs(cfg.guest_call_timeout_secs), cfg.guest_calls_max);
        // One connection per slot: no tenant's call shares one with another's.
        let real = !cfg.libvirt_uri.starts_with("test:");
        let guest_conns = real.then(|| connections::Connections::new(&cfg.libvirt_uri, cfg.guest_calls_max));
        let own_guest_conns = real.then(|| connections::Connections::new(&cfg.libvirt_uri, 1));
        Self { cfg, domain_type, conns, guest, guest_conns, own_guest_conns, golden_lock: tokio::sync::Mutex::new(()) }
    }
}

impl VmManager {
    /// Connects to libvirt (the first connection to qemu:///system takes seconds: capability
    /// probe) and settles the domain type: the configured one, or `kvm` only where KVM works.
    pub async fn connect(cfg: &ServiceConfig) -> Result<Self, VmError> {
        let domain_type = cfg.domain_type.unwrap_or_else(detect_domain_type);
        let p = &cfg.domain_prefix;
        if p.is_empty() || p.len() > 32 || !p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(VmError::Invalid(format!("domain prefix '{p}' must be 1-32 of a-z, 0-9 and '-'")));
        }
        // libvirt resolves paths in its own working directory: hand it absolute ones.
        let mut cfg = cfg.clone();
        cfg.data_dir = std::path::absolute(&cfg.data_dir).map_err(|source| VmError::Io {
            what: "resolving the data dir",
            path: cfg.data_dir.clone(),
            source,
        })?;
        let mgr = Self {
            inner: Arc::new(Inner::new(cfg, domain_type)),
        };
        virt::error::clear_error_callback();
        mgr.blocking(|_| Ok(())).await?;
        tracing::info!(uri = mgr.inner.cfg.libvirt_uri, domain_type = %mgr.inner.domain_type, "connected to libvirt");
        Ok(mgr)
    }

    /// A manager that connects at its first call (a node that may be down at start-up: its
    /// calls fail until it is back, and each call retries the connection).
    pub fn lazy(cfg: &ServiceConfig) -> Result<Self, VmError> {
        let domain_type = cfg.domain_type.unwrap_or_else(detect_domain_type);
        let mut cfg = cfg.clone();
        cfg.data_dir = std::path::absolute(&cfg.data_dir).map_err(|source| VmError::Io {
            what: "resolving the data dir",
            path: cfg.data_dir.clone(),
            source,
        })?;
        Ok(Self { inner: Arc::new(Inner::new(cfg, domain_type)) })
    }

    /// Connects (or checks the live connection) and answers the hypervisor's libvirt version
    /// ("9.0.0") and whether the guest image is there. On a `test:` URI the image is not looked
    /// for; on any other the image's disk must be a volume of one of the node's storage pools
    /// (`virsh pool-define-as vmw-images dir --target DIR` on the node, where DIR holds the image
    /// at the same path as here).
    pub async fn health(&self) -> Result<(String, Result<(), String>), VmError> {
        let image = self.inner.cfg.guest_image_dir.join("base.qcow2");
        let test = self.inner.cfg.libvirt_uri.starts_with("test:");
        self.blocking(move |conn| {
            let v = conn.lib_version().doing_host("read the libvirt version")?;
            let version = format!("{}.{}.{}", v / 1_000_000, (v / 1000) % 1000, v % 1000);
            if test {
                return Ok((version, Ok(())));
            }
            // The pool lists the image at its real path (the image folder is often a symlink).
            let path = image.canonicalize().or_else(|_| std::path::absolute(&image)).unwrap_or(image);
            let path = path.to_string_lossy().into_owned();
            let found = match conn.lookup_storage_vol_by_path(&path) {
                Ok(_) => Ok(()),
                Err(e) => Err(format!("the guest image {path} is not a volume of a storage pool on the node: {}", e.message())),
            };
            Ok((version, found))
        })
        .await
    }

    /// Whether the node sees `dir` of this host at the same path (shared storage): the folder
    /// where the app writes a node's overlay disks, seeds and saved states. A file made here
    /// under a random name must be found there, by a throwaway storage pool on `dir` made over
    /// the node's connection (refreshed, looked up, destroyed). On a `test:` URI nothing is
    /// looked for. `Ok(Err(why))` when the node answers but does not share it.
    pub async fn check_shared_folder(&self, dir: PathBuf) -> Result<Result<(), String>, VmError> {
        if self.inner.cfg.libvirt_uri.starts_with("test:") {
            return Ok(Ok(()));
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        let marker = format!("vmw-shared-check-{token}");
        self.blocking(move |conn| {
            // The file here (on the blocking pool, like the libvirt calls), removed again below.
            std::fs::create_dir_all(&dir).map_err(|source| VmError::Io { what: "making the node folder", path: dir.clone(), source })?;
            let dir = dir.canonicalize().map_err(|source| VmError::Io { what: "resolving the node folder", path: dir.clone(), source })?;
            let file = dir.join(&marker);
            std::fs::write(&file, b"vm-webhoster: a node's folder must be shared\n")
                .map_err(|source| VmError::Io { what: "writing the shared-folder check", path: file.clone(), source })?;
            let shown = dir.display().to_string();
            let xml = format!(
                "<pool type='dir'><name>vmw-check-{token}</name><target><path>{}</path></target></pool>",
                crate::escape::markup(&dir.to_string_lossy())
            );
            let not_shared = |why: String| {
                format!(
                    "the node does not see {shown} (this host's folder for the node's VM files, which must be shared storage at the same path there): {why}"
                )
            };
            let res = match conn.create_storage_pool_xml(&xml, 0) {
                Err(e) => Err(not_shared(e.message().to_owned())),
                Ok(pool) => {
                    let res = match pool.refresh(0) {
                        Err(e) => Err(not_shared(e.message().to_owned())),
                        Ok(_) => match pool.lookup_storage_vol_by_name(&marker) {
                            Ok(_) => Ok(()),
                            Err(_) => Err(not_shared(format!("a file written there now ({marker}) is not there on the node"))),
                        },
                    };
                    let _ = pool.destroy();
                    res
                }
            };
            let _ = std::fs::remove_file(&file);
            Ok(res)
        })
        .await
    }

    /// What the node's libvirt daemon says it is, whatever URI reached it: its driver and its
    /// host's name, from the daemon's own answers (kept in the node's row for the operator).
    /// Not its capabilities (host UUID, security labels): over `qemu+libssh` that reply never
    /// arrived (libvirt 9.0), which hung the add, and they cannot tell root's `/session` from
    /// `/system` anyway: whether two URIs reach one daemon is told by [`Self::mark_daemon`].
    /// libvirt's test driver lives in this process: each `test:///FILE.xml` is a driver of its
    /// own, so its URI is part of it.
    pub async fn identity(&self) -> Result<String, VmError> {
        self.blocking(|c| {
            let kind = c.driver_type().doing_host("read the driver type")?;
            let hostname = c.hostname().doing_host("read the host name")?;
            let mut id = format!("{}|name={}", kind.to_ascii_lowercase(), hostname.trim());
            if kind.eq_ignore_ascii_case("test") {
                let uri = c.uri().doing_host("read the URI")?;
                id.push_str(&format!("|uri={}", uri.split('?').next().unwrap_or_default()));
            }
            Ok(id)
        })
        .await
    }

    /// Leaves a mark on the node's daemon that any connection to that daemon sees: a transient
    /// storage pool (no file is written, it is gone once destroyed or the daemon restarts) named
    /// `vmw-daemon-{token}` on `dir` (a folder the node sees: its shared node folder). Two
    /// URIs reach one daemon exactly when one sees the other's mark ([`Self::sees_mark`]); the
    /// daemon's host and labels ([`Self::identity`]) cannot tell root's `/session` daemon from
    /// `/system` on one host. Returns the mark's name.
    pub async fn mark_daemon(&self, dir: PathBuf) -> Result<String, VmError> {
        let name = format!("vmw-daemon-{}", uuid::Uuid::new_v4().simple());
        let xml = format!(
            "<pool type='dir'><name>{name}</name><target><path>{}</path></target></pool>",
            crate::escape::markup(&dir.to_string_lossy())
        );
        self.blocking(move |c| {
            c.create_storage_pool_xml(&xml, 0).doing_host("make a transient storage pool")?;
            Ok(name)
        })
        .await
    }

    /// Whether this node's daemon has the mark `name` ([`Self::mark_daemon`]).
    pub async fn sees_mark(&self, name: &str) -> Result<bool, VmError> {
        let name = name.to_owned();
        self.blocking(move |c| match c.lookup_storage_pool_by_name(&name) {
            Ok(_) => Ok(true),
            Err(e) if e.code() == ErrorNumber::NoStoragePool.into() => Ok(false),
            Err(e) => Err(e).doing_host("look up a storage pool"),
        })
        .await
    }

    /// Removes the mark `name`. Missing: fine.
    pub async fn unmark_daemon(&self, name: &str) -> Result<(), VmError> {
        let name = name.to_owned();
        self.blocking(move |c| {
            if let Ok(p) = c.lookup_storage_pool_by_name(&name) {
                p.destroy().doing_host("remove a transient storage pool")?;
            }
            Ok(())
        })
        .await
    }

    pub fn domain_type(&self) -> DomainType {
        self.inner.domain_type
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.inner.cfg
    }

    pub fn domain_name(&self, hosting_id: i32) -> String {
        format!("{}{hosting_id}", self.inner.cfg.domain_prefix)
    }

    /// `{data_dir}/vms/{id}`: the overlay disk, the seed and the console log.
    pub fn vm_dir(&self, hosting_id: i32) -> PathBuf {
        self.inner.cfg.data_dir.join("vms").join(hosting_id.to_string())
    }

    /// Runs `f` with a live connection on the blocking pool, reconnecting once if it died.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connect) -> Result<T, VmError> + Send + 'static,
    ) -> Result<T, VmError> {
        self.blocking_on(|i| &i.conns, f).await
    }

    /// Runs `f`, one of the service's own calls into a guest (clock, hostname), on the
    /// connection kept for them (`own_guest_conns`).
    async fn own_guest_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connect) -> Result<T, VmError> + Send + 'static,
    ) -> Result<T, VmError> {
        self.blocking_on(|i| i.own_guest_conns.as_ref().unwrap_or(&i.conns), f).await
    }

    /// Runs `f` on the blocking pool with a live connection of the set `pick` chooses.
    async fn blocking_on<T: Send + 'static>(
        &self,
        pick: fn(&Inner) -> &connections::Connections,
        f: impl FnOnce(&Connect) -> Result<T, VmError> + Send + 'static,
    ) -> Result<T, VmError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let checkout = pick(&inner).checkout()?;
            f(&checkout.conn)
        })
        .await?
    }

    /// Runs `f` as a call into hosting `hosting_id`'s running guest that its tenant can trigger
    /// (`guest_calls`): after the site's previous one, in one of the few guest-call slots, on
    /// the guest calls' connection; `f` gets the domain, its name and the seconds left (the
    /// agent command's timeout). Answers [`VmError::GuestTimeout`] once the time is up, also
    /// while libvirt still waits for the guest (the call keeps its turn and slot until then).
    async fn guest_call<T: Send + 'static>(
        &self,
        hosting_id: i32,
        owner: i32,
        command: &'static str,
        f: impl FnOnce(&Domain, &str, i32) -> Result<T, VmError> + Send + 'static,
    ) -> Result<T, VmError> {
        /// libvirt returns at the agent's timeout; a little later the caller stops waiting.
        const GRACE: Duration = Duration::from_millis(500);
        let name = self.domain_name(hosting_id);
        let pass = self.inner.guest.enter(&name, owner, command).await?;
        let deadline = pass.deadline();
        let inner = self.inner.clone();
        let domain = name.clone();
        let call = tokio::task::spawn_blocking(move || {
            let pass = pass; // the site's turn and the slot, until libvirt returns
            let checkout = inner.guest_conns.as_ref().unwrap_or(&inner.conns).checkout()?;
            let d = Self::existing(&checkout.conn, &domain)?;
            match map_state(&d, &domain)? {
                VmState::Running => {}
                other => return Err(VmError::NotRunning(other)),
            }
            let r = f(&d, &domain, pass.agent_timeout_secs());
            drop(pass);
            r
        });
        let r = match tokio::time::timeout_at(deadline + GRACE, call).await {
            Ok(joined) => joined?,
            Err(_) => return Err(self.inner.guest.timed_out(&name, command)),
        };
        r.map_err(|e| if is_agent_timeout(&e) { self.inner.guest.timed_out(&name, command) } else { e })
    }

    /// The CPU weight spares are made at. A per-user daemon (`qemu:///session`) has no cgroups,
    /// and libvirt refuses a `<cputune>` there: its spares run at the default weight.
    fn spare_cpu_shares(&self) -> u64 {
        if self.inner.cfg.libvirt_uri.contains("/session") { priority::FOREGROUND_SHARES } else { self.inner.cfg.spare_cpu_shares }
    }

    /// Looks a domain up; Ok(None) when it does not exist.
    fn lookup(conn: &Connect, name: &str) -> Result<Option<Domain>, VmError> {
        match conn.lookup_domain_by_name(name) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.code() == ErrorNumber::NoDomain.into() => Ok(None),
            Err(e) => Err(e).doing("look up domain", name),
        }
    }

    /// Looks a domain up that must exist.
    fn existing(conn: &Connect, name: &str) -> Result<Domain, VmError> {
        Self::lookup(conn, name)?.ok_or_else(|| VmError::NotDefined(name.to_owned()))
    }

    pub async fn create_disk(&self, spec: &VmSpec) -> Result<(), VmError> {
        let image = ImageInfo::load(&self.inner.cfg.guest_image_dir)?;
        files::create_overlay(&self.vm_dir(spec.hosting_id), &image.base, spec.disk_gib).await
    }

    pub async fn write_seed(&self, hosting_id: i32, seed: &SeedSpec) -> Result<(), VmError> {
        let instance_id = self.domain_name(hosting_id);
        files::write_seed(&self.vm_dir(hosting_id), &instance_id, seed).await
    }

    /// Removes the NoCloud seed. Missing: fine.
    pub async fn remove_seed(&self, hosting_id: i32) -> Result<(), VmError> {
        let seed = self.vm_dir(hosting_id).join("seed.iso");
        match tokio::fs::remove_file(&seed).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(VmError::Io { what: "removing", path: seed, source }),
        }
    }

    pub async fn remove_files(&self, hosting_id: i32) -> Result<(), VmError> {
        files::remove_dir(&self.vm_dir(hosting_id)).await
    }

    /// The domain XML of a VM named `name` whose disk, seed and console log are in `dir`.
    fn domain_xml(&self, name: &str, dir: &std::path::Path, spec: &VmSpec) -> Result<String, VmError> {
        DomainXml {
            name: name.to_owned(),
            domain_type: self.inner.domain_type,
            vcpus: spec.vcpus,
            memory_mib: spec.memory_mib,
            disk: dir.join("disk.qcow2"),
            seed: dir.join("seed.iso"),
            console_log: dir.join("console.log"),
            image: ImageInfo::load(&self.inner.cfg.guest_image_dir)?,
            forward_bind: self.inner.cfg.forward_bind,
            http_bind: self.inner.cfg.http_forward_bind,
            http_port: spec.http_port,
            ssh_port: spec.ssh_port,
            tb_cache_mib: xml::tb_cache_mib(spec.memory_mib),
            quick_cpu_check: self.inner.cfg.quick_cpu_check,
            node: self.inner.cfg.node_name.clone(),
        }
        .render()
        .map(|xml| priority::with_priority(&xml, spec.priority, self.spare_cpu_shares()))
    }

    /// Defines the domain. Already defined under this name: left as it is.
    pub async fn define(&self, spec: &VmSpec) -> Result<(), VmError> {
        let name = self.domain_name(spec.hosting_id);
        let xml = self.domain_xml(&name, &self.vm_dir(spec.hosting_id), spec)?;
        self.blocking(move |c| {
            if Self::lookup(c, &name)?.is_none() {
                c.define_domain_xml(&xml).doing("define domain", &name)?;
            }
            Ok(())
        })
        .await
    }

    /// Starts the domain: restores its saved memory when there is some (else boots), or
    /// resumes it when paused. A restored VM listens on `http_port` (its HTTP forward) from
    /// its start but has no SSH forward yet (see `forwards`): call
    /// [`VmManager::ensure_forwards`] next.
    /// A foreground start also gives the VM the normal CPU weight (a claimed spare had a small
    /// one): a restore from its first instruction (the restore's XML), and the definition too,
    /// except after a restore from a delta (the definition's weight counts at a boot, and every
    /// boot here gives it).
    pub async fn start(&self, hosting_id: i32, priority: CpuPriority, http_port: u16) -> Result<(), VmError> {
        let name = self.domain_name(hosting_id);
        let spares = self.spare_cpu_shares();
        let http = (self.inner.cfg.http_forward_bind, http_port);
        let node = self.inner.cfg.node_name.clone();
        let quick = self.inner.cfg.quick_cpu_check;
        // Saved memory stored as a delta to the golden is served expanded, through a pipe that
        // libvirt restores from (libvirt cannot read the delta): the expansion starts now and
        // runs while libvirt and QEMU start.
        let t = Instant::now();
        let wake = self.vm_dir(hosting_id).join(delta::WAKE_FILE);
        let feed = {
            let saved = compress::managed_save_path(&name);
            tokio::task::spawn_blocking(move || if delta::is_delta(&saved) { wake_feed::Feed::start(&saved, &wake).map(Some) } else { Ok(None) })
                .await??
        };
        self.blocking(move |c| {
            let d = Self::existing(c, &name)?;
            if !d.is_active().doing("read the state of domain", &name)? {
                Self::update_definition(c, &d, &name, http.0, &node)?;
                if let Some(feed) = feed {
                    // The restore's XML gives the guest its CPU weight from its first
                    // instruction; the definition's follows at its next boot (below).
                    let xml = forwards::restore_xml(feed.xml(), (priority, spares), quick, http);
                    return Self::restore_fed(c, &d, &name, feed, &xml, t);
                }
                if d.has_managed_save(0).doing("look for a saved state of domain", &name)? {
                    forwards::prepare_saved_image(&d, &name, (priority, spares), quick, http)?;
                }
                d.create().doing("start domain", &name)?;
                tracing::debug!(domain = %name, started_ms = t.elapsed().as_millis() as u64, "domain started");
            } else if map_state(&d, &name)? == VmState::Paused {
                if priority == CpuPriority::Foreground {
                    priority::to_foreground(&d, &name)?;
                }
                d.resume().doing("resume domain", &name)?;
                return Ok(());
            }
            if priority == CpuPriority::Foreground {
                priority::to_foreground(&d, &name)?;
            }
            Ok(())
        })
        .await
    }

    /// Before a start (a boot or a restore): a definition from before the HTTP forwards moved
    /// to their own address gets its HTTP forward there, and one from before the node markers this node's
    /// marker (it is this node's VM: its row is). Unchanged definitions are left alone.
    fn update_definition(c: &Connect, d: &Domain, name: &str, http_bind: std::net::IpAddr, node: &str) -> Result<(), VmError> {
        let xml = d.xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE | virt::sys::VIR_DOMAIN_XML_SECURE).doing("read the definition of domain", name)?;
        let moved = forwards::rebind_http_forward(&xml, http_bind);
        let marked = xml::with_node_marker(&moved, node).unwrap_or(moved);
        if marked != xml {
            c.define_domain_xml(&marked).doing("update the definition of domain", name)?;
            tracing::info!(domain = %name, "updated the definition (HTTP forward address, node marker)");
        }
        Ok(())
    }

    /// Restores the domain paused from `feed` (its sleeping memory, expanded while libvirt
    /// reads it) with the domain XML `xml` (ABI-checked by libvirt against the saved one). Only
    /// when the whole memory was expanded right does it drop the sleeping save, and only then
    /// let the guest run: once it has run, no saved memory older than its disk is left to
    /// restore. Anything else stops the domain again before it ran (the sleeping save stays good).
    fn restore_fed(c: &Connect, d: &Domain, name: &str, feed: wake_feed::Feed, xml: &str, t: Instant) -> Result<(), VmError> {
        let restored_ms = Self::restore_paused_checked(c, d, name, feed, Some(xml), "restore the saved memory of domain", t)?;
        if let Err(e) = d.managed_save_remove(0).doing("drop the saved state of domain", name) {
            let _ = d.destroy();
            return Err(e);
        }
        let dropped_ms = t.elapsed().as_millis() as u64;
        d.resume().doing("resume domain", name)?;
        tracing::debug!(domain = %name, restored_ms, dropped_ms, started_ms = t.elapsed().as_millis() as u64, "domain started from its delta");
        Ok(())
    }

    /// Restores domain `d` paused from `feed` (a delta expanded while libvirt reads it) with the
    /// domain XML `xml` (None: the one saved with it; ABI-checked by libvirt against it), and
    /// checks what it was fed: Ok once the whole stream matched its checksum, else the domain is
    /// stopped again before it ran. Returns when the restore returned, in ms from `t`.
    fn restore_paused_checked(c: &Connect, d: &Domain, name: &str, feed: wake_feed::Feed, xml: Option<&str>, what: &'static str, t: Instant) -> Result<u64, VmError> {
        let restored = c.restore_domain_flags(&feed.path().display().to_string(), xml, virt::sys::VIR_DOMAIN_SAVE_PAUSED).doing(what, name);
        let restored_ms = t.elapsed().as_millis() as u64;
        let fed = feed.finish();
        restored?;
        if let Err(e) = fed {
            let _ = d.destroy();
            return Err(e);
        }
        Ok(restored_ms)
    }

    /// Finishes a wake that a process that died left halfway (see [`Self::restore_fed`]):
    /// a running or paused domain keeps no saved state, a paused one restored for a wake runs,
    /// and its pipe goes. True when something was left.
    pub async fn settle_interrupted_wake(&self, hosting_id: i32) -> Result<bool, VmError> {
        let name = self.domain_name(hosting_id);
        let wake_file = self.vm_dir(hosting_id).join(delta::WAKE_FILE);
        // The pipe goes only after the restore returned: without it, no wake was interrupted.
        if !tokio::fs::try_exists(&wake_file).await.unwrap_or(false) {
            return Ok(false);
        }
        let wake = wake_file.clone();
        self.blocking(move |c| {
            let Some(d) = Self::lookup(c, &name)? else { return Ok(()) };
            if !d.is_active().doing("read the state of domain", &name)? {
                return Ok(());
            }
            if d.has_managed_save(0).doing("look for a saved state of domain", &name)? {
                // The restore returned, but the process died before it knew whether the
                // memory it was fed was right (`Self::restore_fed`): expanded once more to see.
                let saved = compress::managed_save_path(&name);
                if map_state(&d, &name)? == VmState::Paused && delta::is_delta(&saved) {
                    if let Err(e) = wake_feed::Feed::start(&saved, &wake).and_then(wake_feed::Feed::finish) {
                        tracing::error!(domain = %name, err = %e, "a woken VM was fed saved memory that is not right: stopped, still asleep");
                        let _ = d.destroy();
                        return Err(e);
                    }
                }
                tracing::warn!(domain = %name, "a woken VM still had the saved state it was restored from: dropped");
                d.managed_save_remove(0).doing("drop the saved state of domain", &name)?;
            }
            if map_state(&d, &name)? == VmState::Paused {
                d.resume().doing("resume domain", &name)?;
            }
            Ok(())
        })
        .await?;
        let _ = tokio::fs::remove_file(&wake_file).await;
        Ok(true)
    }

    /// Gives the running VM the forwards of its HTTP and SSH ports that it lacks.
    pub async fn ensure_forwards(&self, hosting_id: i32, http_port: u16, ssh_port: u16) -> Result<(), VmError> {
        let name = self.domain_name(hosting_id);
        let (http, ssh) = ((self.inner.cfg.http_forward_bind, http_port), (self.inner.cfg.forward_bind, ssh_port));
        self.blocking(move |c| forwards::ensure(&Self::existing(c, &name)?, &name, http, ssh)).await
    }

    /// ACPI shutdown, then a hard stop if the guest has not powered off within `timeout`.
    pub async fn shutdown(&self, hosting_id: i32, timeout: Duration) -> Result<(), VmError> {
        let name = self.domain_name(hosting_id);
        let asked = {
            let name = name.clone();
            self.blocking(move |c| match Self::lookup(c, &name)? {
                Some(d) if d.is_active().doing("read the state of domain", &name)? => {
                    d.shutdown().doing("shut down domain", &name)?;
                    Ok(true)
                }
                _ => Ok(false),
            })
            .await?
        };
        if !asked {
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.state(hosting_id).await? {
                VmState::ShutOff | VmState::Missing | VmState::Crashed => return Ok(()),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        tracing::warn!(hosting_id, "guest did not power off in {timeout:?}; forcing it off");
        self.destroy(hosting_id).await
    }

    pub async fn destroy(&self, hosting_id: i32) -> Result<(), VmError> {
        let name = self.domain_name(hosting_id);
        self.blocking(move |c| {
            if let Some(d) = Self::lookup(c, &name)? {
                if d.is_active().doing("read the state of domain", &name)? {
                    d.destroy().doing("stop domain", &name)?;
                }
            }
            Ok(())
        })
        .await
    }

    /// Stops and removes the domain definition (and any managed save). Missing: fine.
    pub async fn undefine(&self, hosting_id: i32) -> Result<(), VmError> {
        let name = self.domain_name(hosting_id);
        self.blocking(move |c| {
            if let Some(d) = Self::lookup(c, &name)? {
                if d.is_active().doing("read the state of domain", &name)? {
                    d.destroy().doing("stop domain", &name)?;
                }
                // A transient domain (a clone restored but not yet defined) is gone once stopped.
                if let Some(d) = Self::lookup(c, &name)? {
                    let flags = virt::sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                        | virt::sys::VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA;
                    d.undefine_flags(flags).doing("undefine domain", &name)?;
                }
            }
            Ok(())
        })
        .await
    }

    pub async fn state(&self, hosting_id: i32) -> Result<VmState, VmError> {
        let name = self.domain_name(hosting_id);
        self.blocking(move |c| match Self::lookup(c, &name)? {
            Some(d) => map_state(&d, &name),
            None => Ok(VmState::Missing),
        })
        .await
    }

    pub async fn stats(&self, hosting_id: i32) -> Result<VmStats, VmError> {
        let name = self.domain_name(hosting_id);
        self.blocking(move |c| {
            let d = Self::existing(c, &name)?;
            let info = d.info().doing("read the statistics of domain", &name)?;
            let mut s = VmStats {
                cpu_time_ns: info.cpu_time,
                vcpus: info.nr_virt_cpu,
                memory_max_kib: info.max_mem,
                sampled_at_ms: crate::db::now_ms(),
                ..Default::default()
            };
            if let Ok(mem) = d.memory_stats(0) {
                for m in mem {
                    if m.tag == virt::sys::VIR_DOMAIN_MEMORY_STAT_RSS as u32 {
                        s.memory_rss_kib = m.val;
                    }
                }
            }
            if let Ok(b) = d.block_stats("vda") {
                s.disk_rd_bytes = b.rd_bytes.max(0) as u64;
                s.disk_wr_bytes = b.wr_bytes.max(0) as u64;
            }
            Ok(s)
        })
        .await
    }

    /// Our domains (by prefix) with their hosting ids and states.
    pub async fn list_domains(&self) -> Result<Vec<(i32, VmState)>, VmError> {
        let prefix = self.inner.cfg.domain_prefix.clone();
        self.blocking(move |c| {
            let mut out = Vec::new();
            for d in c.list_all_domains(0).doing_host("list domains")? {
                let name = d.name().doing_host("read a domain's name")?;
                // Only digits after the prefix: `vmw-n2-5` is node 2's, not this prefix's.
                let id = name.strip_prefix(&prefix).filter(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()));
                if let Some(id) = id.and_then(|r| r.parse::<i32>().ok()) {
                    out.push((id, map_state(&d, &name)?));
                }
            }
            out.sort_by_key(|(id, _)| *id);
            Ok(out)
        })
        .await
    }

    /// Removes the domain of `hosting_id` (reconciliation found no row for it) only when it
    /// carries this node's marker ([`xml::node_marker`]): a domain this node did not make (another
    /// app's, another node's of the same daemon, one from before the markers) is left alone.
    /// True when it was removed.
    pub async fn undefine_orphan(&self, hosting_id: i32) -> Result<bool, VmError> {
        let name = self.domain_name(hosting_id);
        let node = self.inner.cfg.node_name.clone();
        let ours = self
            .blocking(move |c| {
                let Some(d) = Self::lookup(c, &name)? else { return Ok(false) };
                match d.metadata(virt::sys::VIR_DOMAIN_METADATA_ELEMENT as i32, Some(xml::NODE_NS), 0) {
                    Ok(el) => Ok(xml::marks_node(&el, &node)),
                    Err(e) if e.code() == ErrorNumber::NoDomainMetadata.into() => Ok(false),
                    Err(e) => Err(e).doing("read the metadata of domain", &name),
                }
            })
            .await?;
        if !ours {
            tracing::warn!(domain = %self.domain_name(hosting_id), node = %self.inner.cfg.node_name, "a domain with this node's prefix but not its marker has no row: left alone");
            return Ok(false);
        }
        self.undefine(hosting_id).await?;
        Ok(true)
    }

    /// The last `max_lines` lines of the VM's serial console log.
    pub async fn console_tail(&self, hosting_id: i32, max_lines: usize) -> Result<Vec<String>, VmError> {
        files::tail(&self.vm_dir(hosting_id).join("console.log"), max_lines).await
    }

    /// Waits until the guest's web server answers HTTP (any status) and its SSH server sends a banner.
    /// `ssh_port` None: the web server only (a restored VM's sshd is the one that was saved).
    pub async fn wait_ready(&self, http_port: u16, ssh_port: Option<u16>, timeout: Duration) -> Result<(), VmError> {
        ready::wait(self.inner.cfg.http_forward_bind, http_port, ssh_port.map(|p| (self.inner.cfg.forward_bind, p)), timeout).await
    }
}

/// Rewrites the plain save file at `path` (of domain `name`) small: as its difference to the
/// golden's memory when `vm_dir` is given and holds a golden's clone ([`delta`]), else with
/// lzop ([`compress`]). None: left as it was (not a plain save, or it did not work: logged,
/// the plain file is still good).
fn shrink_save_file(path: &std::path::Path, vm_dir: Option<&std::path::Path>, name: &str) -> Option<compress::Compressed> {
    if let Some(reference) = vm_dir.and_then(delta::Reference::of_vm) {
        match delta::write_delta(path, &reference) {
            Ok(sizes) => return sizes,
            Err(err) => tracing::warn!(domain = %name, %err, "the saved memory is not stored as a delta (lzop instead)"),
        }
    }
    compress::compress_save_file(path)
        .inspect_err(|err| tracing::warn!(domain = %name, %err, "the saved memory stays uncompressed"))
        .ok()
        .flatten()
}

/// Whether libvirt gave up waiting for the guest agent (it did not answer within the call's
/// timeout, or another call on the domain held the agent that long).
fn is_agent_timeout(e: &VmError) -> bool {
    let code = match e {
        VmError::Agent { source, .. } | VmError::Libvirt { source, .. } => source.code(),
        VmError::GuestFile { source, .. } | VmError::AgentUnresponsive { source, .. } => return is_agent_timeout(source),
        VmError::GuestCommandTimeout { .. } => return true,
        _ => return false,
    };
    code == ErrorNumber::AgentUnresponsive.into() || code == ErrorNumber::AgentCommandTimeout.into() || code == ErrorNumber::OperationTimeout.into()
}

fn map_state(d: &Domain, name: &str) -> Result<VmState, VmError> {
    let (state, _) = d.state().doing("read the state of domain", name)?;
    Ok(match Result::<DomainState, _>::from(state) {
        Ok(DomainState::Running | DomainState::Blocked) => VmState::Running,
        Ok(DomainState::Paused | DomainState::PMSuspended) => VmState::Paused,
        Ok(DomainState::Shutoff | DomainState::Shutdown) => VmState::ShutOff,
        Ok(DomainState::Crashed) => VmState::Crashed,
        _ => VmState::Other,
    })
}

/// `kvm` only where KVM can really run a guest: /dev/kvm present and not the PVM flavour
/// (kvm_pvm), under which stock guest kernels hang (shared/FACTS.md). Otherwise `qemu` (TCG).
pub fn detect_domain_type() -> DomainType {
    let kvm = std::path::Path::new("/dev/kvm");
    let pvm = std::path::Path::new("/sys/module/kvm_pvm");
    if kvm.exists() && !pvm.exists() && std::fs::OpenOptions::new().read(true).write(true).open(kvm).is_ok() {
        DomainType::Kvm
    } else {
        DomainType::Qemu
    }
}

/// The QEMU guest agent (warm-pool personalisation). Blocking calls, run on spawn_blocking.
/// Everything the agent answers comes from the guest and is checked, not trusted.
impl VmManager {
    /// Runs `execute` (with `arguments`, if any) through the agent of domain `name`; returns
    /// the answer's `return` value.
    fn agent(
        d: &Domain,
        name: &str,
        execute: &'static str,
        arguments: Option<serde_json::Value>,
        timeout_s: i32,
    ) -> Result<serde_json::Value, VmError> {
        let mut cmd = serde_json::json!({ "execute": execute });
        if let Some(a) = arguments {
            cmd["arguments"] = a;
        }
        let out = d
            .qemu_agent_command(&cmd.to_string(), timeout_s, 0)
            .map_err(|source| {
                crate::telemetry::libvirt_error("guest agent command");
                VmError::Agent { domain: name.to_owned(), command: execute, source }
            })?;
        let v: serde_json::Value = serde_json::from_str(&out)
            .map_err(|e| VmError::AgentReply { command: execute, problem: format!("not JSON ({e})") })?;
        // Not `v["return"]` by IndexMut: that panics on a non-object, and the guest chooses this.
        match v {
            serde_json::Value::Object(mut m) => Ok(m.remove("return").unwrap_or_default()),
            _ => Err(VmError::AgentReply { command: execute, problem: "not a JSON object".into() }),
        }
    }

    /// Saves the running VM's memory to disk and stops it (frees its RAM); the next `start`
    /// restores it in well under a second.
    pub async fn managed_save(&self, hosting_id: i32) -> Result<(), VmError> {
        let name = self.domain_name(hosting_id);
        self.blocking(move |c| {
            let d = Self::existing(c, &name)?;
            d.managed_save(0).doing("save domain", &name)?;
            Ok(())
        })
        .await
    }

    /// A save for a site going to sleep, made small (README: the footprint settings): with
    /// `sleep_trim` the guest first drops its page cache ([`golden::SLEEP_TRIM`]; a guest that
    /// does not answer in time is saved as it is), and with
    /// `sleep_compress` the saved memory is then compressed ([`compress`]). Some(sizes) when
    /// it was compressed.
    pub async fn sleep_save(&self, hosting_id: i32) -> Result<Option<compress::Compressed>, VmError> {
        let name = self.domain_name(hosting_id);
        let (trim, shrink) = (self.inner.cfg.sleep_trim, self.shrink_against(hosting_id));
        // After the site's pending guest call (a tenant's stuck agent: saved untrimmed).
        let turn = if trim { self.inner.guest.turn(&name, Duration::from_secs(10)).await } else { None };
        if trim && turn.is_none() {
            tracing::warn!(domain = %name, "a guest call of the site is still pending: saved without trimming its memory");
        }
        self.blocking(move |c| {
            let d = Self::existing(c, &name)?;
            if let Some(_turn) = turn {
                let cmd = vec!["-c".into(), golden::SLEEP_TRIM.into()];
                if let Err(err) = Self::agent_run(&d, &name, "/bin/sh", cmd, Instant::now() + Duration::from_secs(10)) {
                    tracing::warn!(domain = %name, %err, "the guest did not trim its memory before the save (saved as it is)");
                }
            }
            d.managed_save(0).doing("save domain", &name)?;
            let Some(against) = shrink else { return Ok(None) };
            Ok(shrink_save_file(&compress::managed_save_path(&name), against.as_deref(), &name))
        })
        .await
    }

    /// Where a saved memory of this VM is stored small ([`shrink_save_file`]): the VM's folder
    /// when its memory may be a delta to its golden's (`sleep_delta`). None: not at all
    /// (`sleep_compress` off).
    fn shrink_against(&self, hosting_id: i32) -> Option<Option<PathBuf>> {
        let cfg = &self.inner.cfg;
        cfg.sleep_compress.then(|| cfg.sleep_delta.then(|| self.vm_dir(hosting_id)))
    }

    /// Drops a saved memory state, so the next start boots. None: fine.
    pub async fn discard_saved_state(&self, hosting_id: i32) -> Result<(), VmError> {
        let name = self.domain_name(hosting_id);
        self.blocking(move |c| {
            if let Some(d) = Self::lookup(c, &name)? {
                if d.has_managed_save(0).doing("look for a saved state of domain", &name)? {
                    d.managed_save_remove(0).doing("drop the saved state of domain", &name)?;
                }
            }
            Ok(())
        })
        .await
    }

    pub async fn has_managed_save(&self, hosting_id: i32) -> Result<bool, VmError> {
        let name = self.domain_name(hosting_id);
        self.blocking(move |c| match Self::lookup(c, &name)? {
            Some(d) => d.has_managed_save(0).doing("look for a saved state of domain", &name),
            None => Ok(false),
        })
        .await
    }

    /// Sets the guest clock from the host's (a restored VM's clock is behind by as long as it
    /// was saved). Slow under TCG (the agent also writes the hardware clock): keep it off the
    /// path to a live site.
    pub async fn agent_sync_clock(&self, hosting_id: i32) -> Result<(), VmError> {
        let name = self.domain_name(hosting_id);
        let Some(turn) = self.inner.guest.turn(&name, Duration::from_secs(30)).await else {
            return Err(self.inner.guest.timed_out(&name, "guest-set-time"));
        };
        self.own_guest_blocking(move |c| {
            let _turn = turn;
            let d = Self::existing(c, &name)?;
            // Asleep again, or stopped, by now: its next start sets the clock.
            if map_state(&d, &name)? != VmState::Running {
                return Ok(());
            }
            let now_ns = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64;
            Self::agent(&d, &name, "guest-set-time", Some(serde_json::json!({"time": now_ns})), 30)?;
            Ok(())
        })
        .await
    }

    /// Makes a restored warm spare someone's site through the guest agent, without a shell:
    /// rewrites what the user needs at once, their SSH keys and welcome page
    /// (`SeedSpec::personal_files`). A handful of agent round trips where a script spawning a
    /// dozen processes under TCG took ~1.8 s. The hostname follows once the site is live
    /// ([`VmManager::set_hostname`]).
    pub async fn personalise(&self, hosting_id: i32, seed: &SeedSpec, timeout: Duration) -> Result<(), VmError> {
        seed.validate()?;
        let name = self.domain_name(hosting_id);
        let files = seed.personal_files();
        self.blocking(move |c| {
            let d = Self::existing(c, &name)?;
            Self::agent_wait(&d, &name, Instant::now() + timeout)?;
            for (path, bytes) in &files {
                Self::agent_write_existing(&d, &name, path, bytes)?;
            }
            Ok(())
        })
        .await
    }

    /// A claimed spare's hostname: its files (`SeedSpec::hostname_files`), then `hostname NAME`.
    pub async fn set_hostname(&self, hosting_id: i32, seed: &SeedSpec, timeout: Duration) -> Result<(), VmError> {
        seed.validate()?;
        let name = self.domain_name(hosting_id);
        let files = seed.hostname_files();
        let hostname = seed.hostname.clone();
        let Some(turn) = self.inner.guest.turn(&name, timeout).await else {
            return Err(self.inner.guest.timed_out(&name, "guest-exec"));
        };
        self.own_guest_blocking(move |c| {
            let _turn = turn;
            let d = Self::existing(c, &name)?;
            let deadline = Instant::now() + timeout;
            for (path, bytes) in &files {
                Self::agent_write_existing(&d, &name, path, bytes)?;
            }
            Self::agent_run(&d, &name, "/usr/bin/hostname", vec![hostname], deadline)
        })
        .await
    }

    /// Waits until the guest agent answers a ping.
    fn agent_wait(d: &Domain, name: &str, deadline: Instant) -> Result<(), VmError> {
        loop {
            match Self::agent(d, name, "guest-ping", None, 2) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(VmError::AgentUnresponsive { domain: name.to_owned(), source: Box::new(e) });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Replaces the content of an existing guest file. `w` truncates an existing file and
    /// keeps its owner and mode, but would create a missing one as root with mode 0600 (the
    /// login user could not edit it, sshd could not read it): so check it exists first.
    fn agent_write_existing(d: &Domain, name: &str, path: &str, bytes: &[u8]) -> Result<(), VmError> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let in_guest = |e: VmError| VmError::GuestFile { path: path.to_owned(), source: Box::new(e) };
        let open = |mode: &str| -> Result<i64, VmError> {
            let h = Self::agent(d, name, "guest-file-open", Some(serde_json::json!({"path": path, "mode": mode})), 10)
                .map_err(in_guest)?;
            h.as_i64().ok_or_else(|| VmError::AgentReply { command: "guest-file-open", problem: "no file handle".into() })
        };
        let close = |h: i64| Self::agent(d, name, "guest-file-close", Some(serde_json::json!({"handle": h})), 10).map(|_| ());
        close(open("r")?)?;
        let h = open("w")?;
        let written = Self::agent(d, name, "guest-file-write", Some(serde_json::json!({"handle": h, "buf-b64": b64.encode(bytes)})), 10);
        let closed = close(h);
        written.map_err(in_guest)?;
        closed
    }

    /// Runs `path args...` in the guest and waits for it to exit 0; no agent command waits
    /// past `deadline` (give or take a second).
    fn agent_run(d: &Domain, name: &str, path: &str, args: Vec<String>, deadline: Instant) -> Result<(), VmError> {
        let secs = |most: i32| (deadline.saturating_duration_since(Instant::now()).as_secs_f64().ceil() as i32).clamp(1, most);
        let started = Self::agent(
            d,
            name,
            "guest-exec",
            Some(serde_json::json!({"path": path, "arg": args, "capture-output": true})),
            secs(10),
        )?;
        let pid = started["pid"]
            .as_i64()
            .ok_or_else(|| VmError::AgentReply { command: "guest-exec", problem: "no pid".into() })?;
        loop {
            let st = Self::agent(d, name, "guest-exec-status", Some(serde_json::json!({"pid": pid})), secs(5))?;
            if st["exited"].as_bool() == Some(true) {
                let code = st["exitcode"].as_i64().unwrap_or(-1);
                if code == 0 {
                    return Ok(());
                }
                let stderr = st["err-data"].as_str().map(|b| {
                    use base64::Engine;
                    String::from_utf8_lossy(&base64::engine::general_purpose::STANDARD.decode(b).unwrap_or_default()).into_owned()
                });
                return Err(VmError::GuestCommand { path: path.to_owned(), code, stderr: stderr.unwrap_or_default() });
            }
            if Instant::now() >= deadline {
                return Err(VmError::GuestCommandTimeout { path: path.to_owned() });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
