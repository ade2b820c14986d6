//! What a VM is made of ([`VmSpec`]), the states it is seen in ([`VmState`]) and its
//! statistics ([`VmStats`]); which domain type this host can run.
use virt::domain::{Domain, DomainState};

use super::{CpuPriority, Doing, VmError};
use crate::DomainType;

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

pub(super) fn map_state(d: &Domain, name: &str) -> Result<VmState, VmError> {
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
