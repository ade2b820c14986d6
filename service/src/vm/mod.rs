//! Virtual machines through libvirt (the `virt` crate, blocking FFI run on
//! `spawn_blocking`): per-VM overlay disks and NoCloud seeds, domain XML, lifecycle, state,
//! stats and readiness. Domain names, disk paths and seed paths derive from hosting ids only.
//!
//! [`VmManager`] is one handle whose calls are `impl VmManager` blocks, one job a file: `domain`
//! (definition, start, stop, state, stats, orphans), `files` (overlay disk, seed), `agent` (the
//! guest agent), `guest_calls` (calls a tenant can trigger, bounded), `memory` (saved memory:
//! saves, lzop, deltas, restores fed through a pipe), `golden` (the golden snapshot and its
//! clones), `snapshots`, `capture` (a site's files copied consistently for a backup),
//! `console`, `node` (the node behind the connection) and `ready`. Here:
//! the handle, its connections and the blocking runners every call goes through.
mod agent;
mod capture;
mod connections;
mod console;
mod cpu_check;
mod domain;
mod error;
mod files;
mod forwards;
mod golden;
mod guest_calls;
mod memory;
mod node;
mod priority;
mod ready;
mod restored;
mod restore_as;
mod snapshots;
mod spec;
mod xml;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use virt::connect::Connect;
use virt::domain::Domain;
use virt::error::ErrorNumber;

use crate::{DomainType, ServiceConfig};
pub use capture::{BaseKind, BaseRef, Capture, CaptureOpts, CapturedFrom, MemoryForm, rebase_overlay};
pub use restored::{backing_of, flatten_qcow2, move_file, plain_name};
pub use console::{INPUT_BUDGET, InputBudget, Room, Typed, VmConsole};
use error::{Doing, io};
pub use error::VmError;
pub use files::SeedSpec;
pub use golden::{GoldenMeta, GoldenSpec};
pub use memory::Compressed;
pub use priority::CpuPriority;
pub use snapshots::TakeFailure;
use spec::map_state;
pub use spec::{VmSpec, VmState, VmStats, detect_domain_type};
pub use xml::{DomainXml, ImageInfo, NODE_NS};

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
        let p = &cfg.domain_prefix;
        if p.is_empty() || p.len() > 32 || !p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(VmError::Invalid(format!("domain prefix '{p}' must be 1-32 of a-z, 0-9 and '-'")));
        }
        let mgr = Self::lazy(cfg)?;
        virt::error::clear_error_callback();
        mgr.blocking(|_| Ok(())).await?;
        tracing::info!(uri = mgr.inner.cfg.libvirt_uri, domain_type = %mgr.inner.domain_type, "connected to libvirt");
        Ok(mgr)
    }

    /// A manager that connects at its first call (a node that may be down at start-up: its
    /// calls fail until it is back, and each call retries the connection).
    pub fn lazy(cfg: &ServiceConfig) -> Result<Self, VmError> {
        let domain_type = cfg.domain_type.unwrap_or_else(detect_domain_type);
        // libvirt resolves paths in its own working directory: hand it absolute ones.
        let mut cfg = cfg.clone();
        cfg.data_dir = std::path::absolute(&cfg.data_dir).map_err(io("resolving the data dir", &cfg.data_dir))?;
        Ok(Self { inner: Arc::new(Inner::new(cfg, domain_type)) })
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
}
