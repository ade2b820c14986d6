//! Provisioning steps as units: each is declared once, with its action and its undo. The
//! orders (a cold boot, a claimed warm spare, the making of a spare) are data: lists of units
//! (`orders`).
//!
//! Every undo is idempotent and keyed on the hosting id alone, so it can run after a crash on
//! a hosting whose progress is unknown, and twice in a row without harm (the tests run each
//! undo twice: omicron's `action_failure_can_unwind_idempotently`).
use async_trait::async_trait;

use super::site::{seed, site_route, vm_spec, wait_ready};
use super::start::start_vm;
use crate::hosting::cx::Cx;
use crate::store::ports;
use crate::store::{HostingRow, Lease};
use vmw_types::Step;
use crate::Result;

/// A unit works on the hosting whose lease it holds, through the node's [`Cx`].
#[async_trait]
pub(crate) trait Unit: Send + Sync {
    /// The step the user sees for this unit.
    fn step(&self) -> Step;
    async fn run(&self, cx: &Cx, lease: &Lease) -> Result<()>;
    /// Removes what `run` made (and what a half-done `run` may have made). Idempotent.
    async fn undo(&self, cx: &Cx, lease: &Lease) -> Result<()>;
    /// Done before the order ran (a spare's): undone on any failure, wherever it stands.
    fn inherited(&self) -> bool {
        false
    }
}

async fn row(cx: &Cx, lease: &Lease) -> Result<HostingRow> {
    cx.store.require(lease.hosting_id()).await
}

async fn spec(cx: &Cx, lease: &Lease) -> Result<crate::vm::VmSpec> {
    vm_spec(cx, &row(cx, lease).await?)
}

async fn seed_of(cx: &Cx, lease: &Lease) -> Result<crate::vm::SeedSpec> {
    seed(cx, &row(cx, lease).await?)
}

/// Declares a unit once: the step it shows, its action and its undo.
macro_rules! unit {
    ($(#[$m:meta])* $name:ident shows $step:ident;
     run($cx:ident, $lease:ident) $run:block
     $(#[$um:meta])* undo($ucx:ident, $ulease:ident) $undo:block) => {
        $(#[$m])*
        pub(crate) struct $name;

        #[async_trait]
        impl Unit for $name {
            fn step(&self) -> Step {
                Step::$step
            }
            #[allow(unused_variables)]
            async fn run(&self, $cx: &Cx, $lease: &Lease) -> Result<()> $run
            $(#[$um])*
            #[allow(unused_variables)]
            async fn undo(&self, $ucx: &Cx, $ulease: &Lease) -> Result<()> $undo
        }
    };
}

unit! {
    AllocatePorts shows AllocatePorts;
    run(cx, lease) {
        let store = &cx.store;
        let pair = ports::lease_pair(store.db(), store.node_id(), lease.hosting_id(), &cx.cfg).await?;
        store.set_ports(lease, Some(pair)).await?;
        Ok(())
    }
    undo(cx, lease) {
        let store = &cx.store;
        ports::release_all(store.db(), lease.hosting_id()).await?;
        store.set_ports(lease, None).await?;
        Ok(())
    }
}

unit! {
    CreateDisk shows CreateDisk;
    run(cx, lease) { Ok(cx.vm.create_disk(&spec(cx, lease).await?).await?) }
    undo(cx, lease) { Ok(cx.vm.remove_files(lease.hosting_id()).await?) }
}

unit! {
    WriteSeed shows WriteSeed;
    run(cx, lease) { Ok(cx.vm.write_seed(lease.hosting_id(), &seed_of(cx, lease).await?).await?) }
    undo(cx, lease) { Ok(cx.vm.remove_seed(lease.hosting_id()).await?) }
}

unit! {
    DefineDomain shows DefineDomain;
    run(cx, lease) { Ok(cx.vm.define(&spec(cx, lease).await?).await?) }
    /// Also removes a saved state (a spare's, or one a stop left).
    undo(cx, lease) { Ok(cx.vm.undefine(lease.hosting_id()).await?) }
}

unit! {
    /// Boots the domain, or restores it when it has a saved state (a spare's: ~0.4 s).
    StartVm shows StartVm;
    run(cx, lease) { start_vm(cx, lease.hosting_id()).await.map(|_restored| ()) }
    undo(cx, lease) { Ok(cx.vm.destroy(lease.hosting_id()).await?) }
}

unit! {
    WaitReady shows WaitReady;
    run(cx, lease) { wait_ready(cx, &row(cx, lease).await?).await }
    /// Waiting makes nothing.
    undo(cx, lease) { Ok(()) }
}

unit! {
    AddRoute shows AddRoute;
    run(cx, lease) {
        let row = row(cx, lease).await?;
        let route = site_route(cx, &row).await?;
        cx.proxy().add_route(&route).await?;
        cx.guest().check_route(&cx.proxy(), &route).await
    }
    /// Both of the route's files (remove_route does nothing when neither is there).
    undo(cx, lease) { Ok(cx.proxy().remove_route(lease.hosting_id()).await?) }
}

unit! {
    /// Its own overlay on the golden disk, and the golden memory state restored under its own
    /// name, UUID, generation id and ports: running, no boot.
    CloneVm shows CloneVm;
    run(cx, lease) { Ok(cx.vm.clone_golden(&spec(cx, lease).await?).await?) }
    /// The domain (and any saved state), then its folder.
    undo(cx, lease) {
        cx.vm.undefine(lease.hosting_id()).await?;
        Ok(cx.vm.remove_files(lease.hosting_id()).await?)
    }
}

unit! {
    /// New machine-id and SSH host keys (host randomness mixed in first), then sshd, which a
    /// clone does not run before: no two sites ever offer the same host key.
    Reidentify shows Reidentify;
    run(cx, lease) {
        // libvirt's test driver: no guest (the guest seam does nothing).
        let spec = spec(cx, lease).await?;
        let timeout = std::time::Duration::from_secs(cx.cfg.ready_timeout_secs);
        cx.guest().reidentify(&cx.vm, lease.hosting_id(), spec.http_port, spec.ssh_port, timeout).await
    }
    /// Inside the VM only; the VM goes with CloneVm's undo.
    undo(cx, lease) { Ok(()) }
}

unit! {
    /// A spare's memory goes to disk: it waits holding no RAM.
    SaveSpare shows SaveSpare;
    run(cx, lease) { Ok(cx.vm.managed_save(lease.hosting_id()).await?) }
    /// The saved state goes with the domain (DefineDomain's undo); a save that failed half-way
    /// leaves a running VM, which StartVm's undo stops.
    undo(cx, lease) { Ok(()) }
}

unit! {
    /// A spare in the fast tier: paused, holding its RAM, using no CPU.
    PauseSpare shows PauseSpare;
    run(cx, lease) { Ok(cx.vm.suspend(lease.hosting_id()).await?) }
    /// The VM goes with StartVm's (or CloneVm's) undo.
    undo(cx, lease) { Ok(()) }
}

unit! {
    /// The user's SSH keys, welcome page and hostname, through the guest agent.
    Personalise shows WriteSeed;
    run(cx, lease) { cx.guest().personalise(&cx.vm, lease.hosting_id(), &seed_of(cx, lease).await?).await }
    /// Writes inside the VM only; the VM itself goes with the undos after it.
    undo(cx, lease) { Ok(()) }
}

unit! {
    /// The owner's hostname (its files and the running kernel's), after the route: a shell
    /// prompt can wait a moment, the first visitor should not.
    SetHostname shows SetHostname;
    run(cx, lease) { cx.guest().set_hostname(&cx.vm, lease.hosting_id(), &seed_of(cx, lease).await?).await }
    /// Inside the VM only; the VM itself goes with the undos before it.
    undo(cx, lease) { Ok(()) }
}

/// A unit a spare already went through: nothing to do, but undone on failure like the rest.
pub(crate) struct Inherited(pub &'static dyn Unit);

#[async_trait]
impl Unit for Inherited {
    fn step(&self) -> Step {
        self.0.step()
    }
    async fn run(&self, _cx: &Cx, _lease: &Lease) -> Result<()> {
        Ok(())
    }
    async fn undo(&self, cx: &Cx, lease: &Lease) -> Result<()> {
        self.0.undo(cx, lease).await
    }
    fn inherited(&self) -> bool {
        true
    }
}
