//! What runs inside a hosting's VM, as the steps and operations see it: whether it answers
//! (the readiness probes) and what its guest agent does (personalising, the hostname, new
//! identities, the clock), and the forwards that reach it.
//!
//! Two implementations: [`Agent`] probes the VM and asks its guest agent; [`TestDriver`] is for
//! libvirt's in-memory `test:///default` driver, whose domains run nothing: "running" is ready,
//! what would be written is still checked, and no agent is asked. The fault seam
//! ([`super::faults::Faults::guest`]) picks one; nothing else in production code asks which.
use std::time::Duration;

use async_trait::async_trait;

use crate::proxy::{Proxy, SiteRoute};
use crate::vm::{SeedSpec, VmManager, VmState};
use crate::Result;

#[async_trait]
pub(crate) trait Guest: Send + Sync {
    /// The VM answers HTTP on `http` (and, with `ssh`, sends its SSH banner) within `timeout`.
    async fn wait_answers(&self, vm: &VmManager, id: i32, http: u16, ssh: Option<u16>, timeout: Duration) -> Result<()>;
    /// The VM answers through nginx on its route too.
    async fn check_route(&self, proxy: &Proxy, route: &SiteRoute) -> Result<()>;
    /// New machine-id and SSH host keys, then sshd; returns once it answers again (HTTP and SSH).
    async fn reidentify(&self, vm: &VmManager, id: i32, http: u16, ssh: u16, timeout: Duration) -> Result<()>;
    /// The user's SSH keys, welcome page and hostname.
    async fn personalise(&self, vm: &VmManager, id: i32, seed: &SeedSpec) -> Result<()>;
    /// The owner's hostname (its files and the running kernel's).
    async fn set_hostname(&self, vm: &VmManager, id: i32, seed: &SeedSpec) -> Result<()>;
    /// A restored VM's clock is behind by as long as it was saved: set it, later, in the background.
    fn sync_clock_later(&self, vm: &VmManager, id: i32);
    /// The forwards a restored VM lacks.
    async fn ensure_forwards(&self, vm: &VmManager, id: i32, http: u16, ssh: u16) -> Result<()>;
    /// Whether a sleeping site's SSH port is handed to a waker (there is a VM forward to pass
    /// it back to).
    fn has_forwards(&self) -> bool;
}

/// A real guest: probed over its forwards, asked through its agent.
pub(crate) struct Agent;

#[async_trait]
impl Guest for Agent {
    async fn wait_answers(&self, vm: &VmManager, _id: i32, http: u16, ssh: Option<u16>, timeout: Duration) -> Result<()> {
        Ok(vm.wait_ready(http, ssh, timeout).await?)
    }

    async fn check_route(&self, proxy: &Proxy, route: &SiteRoute) -> Result<()> {
        // The VM answered on its port; make sure it also answers through nginx.
        Ok(proxy.check_route(route, Duration::from_secs(15)).await?)
    }

    async fn reidentify(&self, vm: &VmManager, id: i32, http: u16, ssh: u16, timeout: Duration) -> Result<()> {
        vm.reidentify(id, Duration::from_secs(120)).await?;
        Ok(vm.wait_ready(http, Some(ssh), timeout).await?)
    }

    async fn personalise(&self, vm: &VmManager, id: i32, seed: &SeedSpec) -> Result<()> {
        Ok(vm.personalise(id, seed, Duration::from_secs(60)).await?)
    }

    async fn set_hostname(&self, vm: &VmManager, id: i32, seed: &SeedSpec) -> Result<()> {
        Ok(vm.set_hostname(id, seed, Duration::from_secs(60)).await?)
    }

    fn sync_clock_later(&self, vm: &VmManager, id: i32) {
        let vm = vm.clone();
        tokio::spawn(async move {
            // Not while the guest serves its first requests: under TCG the agent's clock write
            // (it sets the hardware clock too) takes the guest's only CPU for a moment.
            tokio::time::sleep(Duration::from_secs(2)).await;
            if let Err(err) = vm.agent_sync_clock(id).await {
                tracing::warn!(hosting_id = id, %err, "could not set the guest clock");
            }
        });
    }

    async fn ensure_forwards(&self, vm: &VmManager, id: i32, http: u16, ssh: u16) -> Result<()> {
        Ok(vm.ensure_forwards(id, http, ssh).await?)
    }

    fn has_forwards(&self) -> bool {
        true
    }
}

/// libvirt's in-memory test driver: nothing runs in a domain.
pub(crate) struct TestDriver;

#[async_trait]
impl Guest for TestDriver {
    /// "Running" is ready.
    async fn wait_answers(&self, vm: &VmManager, id: i32, _http: u16, _ssh: Option<u16>, _timeout: Duration) -> Result<()> {
        match vm.state(id).await? {
            VmState::Running => Ok(()),
            other => Err(crate::vm::VmError::NotRunning(other).into()),
        }
    }

    async fn check_route(&self, _proxy: &Proxy, _route: &SiteRoute) -> Result<()> {
        Ok(())
    }

    async fn reidentify(&self, _vm: &VmManager, _id: i32, _http: u16, _ssh: u16, _timeout: Duration) -> Result<()> {
        Ok(())
    }

    /// What would be written is still checked.
    async fn personalise(&self, _vm: &VmManager, _id: i32, seed: &SeedSpec) -> Result<()> {
        Ok(seed.validate()?)
    }

    async fn set_hostname(&self, _vm: &VmManager, _id: i32, seed: &SeedSpec) -> Result<()> {
        Ok(seed.validate()?)
    }

    fn sync_clock_later(&self, _vm: &VmManager, _id: i32) {}

    async fn ensure_forwards(&self, _vm: &VmManager, _id: i32, _http: u16, _ssh: u16) -> Result<()> {
        Ok(())
    }

    fn has_forwards(&self) -> bool {
        false
    }
}
