//! Provisioning steps as units: each is declared once, with its action and its undo. The
//! orders (a cold boot, a claimed warm spare, the making of a spare) are data: lists of units.
//!
//! Every undo is idempotent and keyed on the hosting id alone, so it can run after a crash on
//! a hosting whose progress is unknown, and twice in a row without harm (the tests run each
//! undo twice: omicron's `action_failure_can_unwind_idempotently`).
use std::time::Duration;

use async_trait::async_trait;

use super::ports;
use super::store::{HostingRow, Lease};
use super::{HostingService, Step};
use crate::vm::VmState;
use crate::Result;

/// What a unit works on: the service and the hosting it holds the lease of.
pub(super) struct Cx<'a> {
    pub svc: &'a HostingService,
    pub lease: &'a Lease,
}

impl Cx<'_> {
    pub fn id(&self) -> i32 {
        self.lease.hosting_id()
    }

    async fn row(&self) -> Result<HostingRow> {
        self.svc.inner.store.require(self.id()).await
    }

    async fn spec(&self) -> Result<crate::vm::VmSpec> {
        self.svc.vm_spec(&self.row().await?)
    }
}

#[async_trait]
pub(super) trait Unit: Send + Sync {
    /// The step the user sees for this unit.
    fn step(&self) -> Step;
    async fn run(&self, cx: &Cx<'_>) -> Result<()>;
    /// Removes what `run` made (and what a half-done `run` may have made). Idempotent.
    async fn undo(&self, cx: &Cx<'_>) -> Result<()>;
    /// Done before the order ran (a spare's): undone on any failure, wherever it stands.
    fn inherited(&self) -> bool {
        false
    }
}

/// A cold create: boot from the image.
pub(super) const COLD: &[&dyn Unit] =
    &[&AllocatePorts, &CreateDisk, &WriteSeed, &DefineDomain, &StartVm, &WaitReady, &AddRoute];

/// The making of a warm spare: a cold boot without a route, then saved to disk.
pub(super) const SPARE: &[&dyn Unit] =
    &[&AllocatePorts, &CreateDisk, &WriteSeed, &DefineDomain, &StartVm, &WaitReady, &SaveSpare];

/// A create that claimed a spare: what the spare was made with is inherited (nothing to do,
/// but undone on failure like the rest), then it is resumed or restored and made the user's.
/// Readiness checks only what changed: the spare answered HTTP and SSH before it waited, and
/// the route is checked through nginx.
pub(super) const WARM: &[&dyn Unit] = &[
    &Inherited(&AllocatePorts),
    &Inherited(&CreateDisk),
    &Inherited(&DefineDomain),
    &StartVm,
    &Personalise,
    &AddRoute,
    &SetHostname,
];

/// A create when no spare is ready: a clone of the golden snapshot. The site is live once its
/// route is published; sshd starts after the clone has its own host keys.
pub(super) const CLONE: &[&dyn Unit] = &[&AllocatePorts, &CloneVm, &Personalise, &AddRoute, &SetHostname, &Reidentify];

/// A spare made as a clone of the golden snapshot, then saved to disk or paused in RAM.
pub(super) const SPARE_CLONE: &[&dyn Unit] = &[&AllocatePorts, &CloneVm, &Reidentify, &WaitReady, &SaveSpare];
pub(super) const SPARE_CLONE_PAUSED: &[&dyn Unit] = &[&AllocatePorts, &CloneVm, &Reidentify, &WaitReady, &PauseSpare];
/// A spare booted cold (no golden snapshot of its plan), paused in RAM.
pub(super) const SPARE_PAUSED: &[&dyn Unit] =
    &[&AllocatePorts, &CreateDisk, &WriteSeed, &DefineDomain, &StartVm, &WaitReady, &PauseSpare];

/// The order a create of `kind` runs.
pub(super) fn order_of(kind: vmw_types::CreateKind) -> &'static [&'static dyn Unit] {
    match kind {
        vmw_types::CreateKind::Cold => COLD,
        vmw_types::CreateKind::Clone => CLONE,
        vmw_types::CreateKind::Warm => WARM,
    }
}

/// Whatever a hosting may hold, whatever its progress: undone in reverse (cleanup after a
/// crash, delete, a spare that lost its saved state). A clone holds what a cold boot does.
pub(super) const EVERYTHING: &[&dyn Unit] = COLD;

/// Declares a unit once: the step it shows, its action and its undo.
macro_rules! unit {
    ($(#[$m:meta])* $name:ident shows $step:ident;
     run($cx:ident) $run:block
     $(#[$um:meta])* undo($ucx:ident) $undo:block) => {
        $(#[$m])*
        pub(super) struct $name;

        #[async_trait]
        impl Unit for $name {
            fn step(&self) -> Step {
                Step::$step
            }
            async fn run(&self, $cx: &Cx<'_>) -> Result<()> $run
            $(#[$um])*
            async fn undo(&self, $ucx: &Cx<'_>) -> Result<()> $undo
        }
    };
}

unit! {
    AllocatePorts shows AllocatePorts;
    run(cx) {
        let store = &cx.svc.inner.store;
        let pair = ports::lease_pair(store.db(), store.node_id(), cx.id(), &cx.svc.inner.cfg).await?;
        store.set_ports(cx.lease, Some(pair)).await?;
        Ok(())
    }
    undo(cx) {
        let store = &cx.svc.inner.store;
        ports::release_all(store.db(), cx.id()).await?;
        store.set_ports(cx.lease, None).await?;
        Ok(())
    }
}

unit! {
    CreateDisk shows CreateDisk;
    run(cx) { Ok(cx.svc.inner.vm.create_disk(&cx.spec().await?).await?) }
    undo(cx) { Ok(cx.svc.inner.vm.remove_files(cx.id()).await?) }
}

unit! {
    WriteSeed shows WriteSeed;
    run(cx) {
        let seed = cx.svc.seed(&cx.row().await?)?;
        Ok(cx.svc.inner.vm.write_seed(cx.id(), &seed).await?)
    }
    undo(cx) { Ok(cx.svc.inner.vm.remove_seed(cx.id()).await?) }
}

unit! {
    DefineDomain shows DefineDomain;
    run(cx) { Ok(cx.svc.inner.vm.define(&cx.spec().await?).await?) }
    /// Also removes a saved state (a spare's, or one a stop left).
    undo(cx) { Ok(cx.svc.inner.vm.undefine(cx.id()).await?) }
}

unit! {
    /// Boots the domain, or restores it when it has a saved state (a spare's: ~0.4 s).
    StartVm shows StartVm;
    run(cx) { cx.svc.start_vm(cx.id()).await.map(|_restored| ()) }
    undo(cx) { Ok(cx.svc.inner.vm.destroy(cx.id()).await?) }
}

unit! {
    WaitReady shows WaitReady;
    run(cx) { cx.svc.wait_ready(&cx.row().await?).await }
    /// Waiting makes nothing.
    undo(_cx) { Ok(()) }
}

unit! {
    AddRoute shows AddRoute;
    run(cx) {
        let row = cx.row().await?;
        let proxy = &cx.svc.inner.proxy;
        let route = cx.svc.site_route(&row).await?;
        proxy.add_route(&route).await?;
        if !cx.svc.inner.faults.skip_ready_probe() {
            // The VM answered on its port; make sure it also answers through nginx.
            proxy.check_route(&route, Duration::from_secs(15)).await?;
        }
        Ok(())
    }
    /// Both of the route's files (remove_route does nothing when neither is there).
    undo(cx) { Ok(cx.svc.inner.proxy.remove_route(cx.id()).await?) }
}

unit! {
    /// Its own overlay on the golden disk, and the golden memory state restored under its own
    /// name, UUID, generation id and ports: running, no boot.
    CloneVm shows CloneVm;
    run(cx) { Ok(cx.svc.inner.vm.clone_golden(&cx.spec().await?).await?) }
    /// The domain (and any saved state), then its folder.
    undo(cx) {
        cx.svc.inner.vm.undefine(cx.id()).await?;
        Ok(cx.svc.inner.vm.remove_files(cx.id()).await?)
    }
}

unit! {
    /// New machine-id and SSH host keys (host randomness mixed in first), then sshd, which a
    /// clone does not run before: no two sites ever offer the same host key.
    Reidentify shows Reidentify;
    run(cx) {
        if cx.svc.inner.faults.skip_ready_probe() {
            return Ok(()); // libvirt's test driver: no guest
        }
        let row = cx.row().await?;
        cx.svc.inner.vm.reidentify(cx.id(), Duration::from_secs(120)).await?;
        cx.svc.wait_ready(&row).await
    }
    /// Inside the VM only; the VM goes with CloneVm's undo.
    undo(_cx) { Ok(()) }
}

unit! {
    /// A spare's memory goes to disk: it waits holding no RAM.
    SaveSpare shows SaveSpare;
    run(cx) { Ok(cx.svc.inner.vm.managed_save(cx.id()).await?) }
    /// The saved state goes with the domain (DefineDomain's undo); a save that failed half-way
    /// leaves a running VM, which StartVm's undo stops.
    undo(_cx) { Ok(()) }
}

unit! {
    /// A spare in the fast tier: paused, holding its RAM, using no CPU.
    PauseSpare shows PauseSpare;
    run(cx) { Ok(cx.svc.inner.vm.suspend(cx.id()).await?) }
    /// The VM goes with StartVm's (or CloneVm's) undo.
    undo(_cx) { Ok(()) }
}

unit! {
    /// The user's SSH keys, welcome page and hostname, through the guest agent.
    Personalise shows WriteSeed;
    run(cx) {
        let seed = cx.svc.seed(&cx.row().await?)?;
        if cx.svc.inner.faults.skip_ready_probe() {
            // libvirt's test driver: no guest, so no agent to talk to.
            return units_in_test_driver(&seed);
        }
        Ok(cx.svc.inner.vm.personalise(cx.id(), &seed, Duration::from_secs(60)).await?)
    }
    /// Writes inside the VM only; the VM itself goes with the undos after it.
    undo(_cx) { Ok(()) }
}

unit! {
    /// The owner's hostname (its files and the running kernel's), after the route: a shell
    /// prompt can wait a moment, the first visitor should not.
    SetHostname shows SetHostname;
    run(cx) {
        let seed = cx.svc.seed(&cx.row().await?)?;
        if cx.svc.inner.faults.skip_ready_probe() {
            return units_in_test_driver(&seed);
        }
        Ok(cx.svc.inner.vm.set_hostname(cx.id(), &seed, Duration::from_secs(60)).await?)
    }
    /// Inside the VM only; the VM itself goes with the undos before it.
    undo(_cx) { Ok(()) }
}

/// A unit a spare already went through: nothing to do, but undone on failure like the rest.
pub(super) struct Inherited(&'static dyn Unit);

#[async_trait]
impl Unit for Inherited {
    fn step(&self) -> Step {
        self.0.step()
    }
    async fn run(&self, _cx: &Cx<'_>) -> Result<()> {
        Ok(())
    }
    async fn undo(&self, cx: &Cx<'_>) -> Result<()> {
        self.0.undo(cx).await
    }
    fn inherited(&self) -> bool {
        true
    }
}

/// With libvirt's in-memory test driver there is no guest: what would be written is still
/// checked.
fn units_in_test_driver(seed: &crate::vm::SeedSpec) -> Result<()> {
    Ok(seed.validate()?)
}

/// With libvirt's in-memory test driver nothing runs in a domain: "running" is ready.
pub(super) async fn running_is_ready(svc: &HostingService, id: i32) -> Result<()> {
    match svc.inner.vm.state(id).await? {
        VmState::Running => Ok(()),
        other => Err(crate::vm::VmError::NotRunning(other).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(order: &[&dyn Unit]) -> Vec<Step> {
        order.iter().map(|u| u.step()).collect()
    }

    fn pos(order: &[&dyn Unit], step: Step) -> usize {
        steps(order).iter().position(|s| *s == step).unwrap_or_else(|| panic!("{step:?} not in {:?}", steps(order)))
    }

    #[test]
    fn sites_are_published_only_once_the_vm_answers_and_is_theirs() {
        assert_eq!(steps(COLD).last(), Some(&Step::AddRoute));
        assert!(pos(COLD, Step::WaitReady) < pos(COLD, Step::AddRoute));
        // A claimed spare answered before it was saved; the route check goes through nginx.
        assert_eq!(steps(WARM).last(), Some(&Step::SetHostname));
        assert!(pos(WARM, Step::WriteSeed) < pos(WARM, Step::AddRoute), "the user's page before the route");
        // The hostname can wait until the site is live.
        assert!(pos(WARM, Step::AddRoute) < pos(WARM, Step::SetHostname));
        assert!(pos(CLONE, Step::AddRoute) < pos(CLONE, Step::SetHostname));
        // A clone serves the user's page before its route; SSH comes once its host keys are its own.
        assert!(pos(CLONE, Step::WriteSeed) < pos(CLONE, Step::AddRoute));
        assert_eq!(steps(CLONE).last(), Some(&Step::Reidentify));
        // Spares are never routed, and are their own before they are saved.
        for spare in [SPARE, SPARE_CLONE, SPARE_PAUSED, SPARE_CLONE_PAUSED] {
            assert!(!steps(spare).contains(&Step::AddRoute));
            assert!(matches!(steps(spare).last(), Some(Step::SaveSpare | Step::PauseSpare)));
        }
        assert!(pos(SPARE_CLONE, Step::Reidentify) < pos(SPARE_CLONE, Step::WaitReady));
    }

    #[test]
    fn everything_covers_every_step_that_makes_something() {
        let all = steps(EVERYTHING);
        for order in [COLD, WARM, SPARE, CLONE, SPARE_CLONE, SPARE_PAUSED, SPARE_CLONE_PAUSED] {
            for s in steps(order) {
                // A clone is a folder and a domain (CreateDisk's and DefineDomain's undos); a
                // reidentified or saved VM holds nothing outside itself.
                let made_of_others =
                    matches!(s, Step::CloneVm | Step::Reidentify | Step::SetHostname | Step::SaveSpare | Step::PauseSpare);
                assert!(all.contains(&s) || made_of_others, "{s:?} is not scrubbed");
            }
        }
        assert!(all.contains(&Step::CreateDisk) && all.contains(&Step::DefineDomain));
    }
}
