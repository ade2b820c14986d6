//! Reconciliation: make the database, libvirt, the VM disk folder and the nginx sites folder
//! agree. Run at start-up (a crash in the middle of an operation ends as a running site or a
//! clean failure) and periodically (orphans, VMs that stopped by themselves).
use std::collections::HashSet;

use super::pool::GOLDEN_LEASE;
use crate::hosting::cx::Cx;
use crate::hosting::lifecycle::delete::run_delete;
use crate::hosting::lifecycle::provision::spawn_fresh;
use crate::hosting::lifecycle::sleep::ASLEEP;
use crate::hosting::lifecycle::snapshots::{delete_snapshot_rows, reconcile_snapshots};
use crate::hosting::lifecycle::visit::open_ssh_waker;
use crate::hosting::saga::runner::scrub;
use crate::hosting::saga::site::site_route;
use crate::store::{HostingRow, Lease};
use crate::store::ports;
use vmw_types::{EventKind, EventStatus, HostingState, Operation};
use crate::Result;
use crate::vm::VmState;

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ReconcileReport {
    /// Interrupted creates that were cleaned up and queued again.
    pub requeued: Vec<i32>,
    /// Interrupted deletes that were finished.
    pub deletes_finished: Vec<i32>,
    /// Interrupted start/stop/restart whose state was read back from libvirt.
    pub ops_settled: Vec<i32>,
    /// Running/stopped hostings whose recorded state was corrected from libvirt.
    pub states_corrected: Vec<i32>,
    /// Failed hostings that still held resources, now removed.
    pub failed_scrubbed: Vec<i32>,
    pub orphan_domains: Vec<i32>,
    pub orphan_dirs: Vec<i32>,
    pub orphan_routes: Vec<i32>,
    pub orphan_leases: Vec<i32>,
    pub routes_restored: Vec<i32>,
    /// Warm spares that were half-made or lost their saved state.
    pub spares_removed: Vec<i32>,
}

/// Reconciles every hosting of this node that nobody holds a lease on: at start-up, the
/// leases of this instance's previous boot count as free (it is dead).
pub(crate) async fn reconcile(cx: &Cx) -> Result<ReconcileReport> {
    let mut rep = ReconcileReport::default();
    let store = &cx.store;
    let domains: Vec<(i32, VmState)> = cx.vm.list_domains().await?;
    let routes: HashSet<i32> = cx.proxy().list_routes().await?.into_iter().collect();
    for id in store.ids_on_node().await? {
        // Held by an operation or another look (in this process or another): theirs.
        let Some((row, lease)) = store.look(id).await? else {
            continue;
        };
        // One hosting's trouble does not stop the pass (nor the orphan sweep after it).
        if let Err(err) = reconcile_row(cx, row, lease, &domains, &routes, &mut rep).await {
            tracing::warn!(hosting_id = id, %err, "could not reconcile a hosting");
        }
    }
    remove_orphans(cx, &mut rep).await?;
    Ok(rep)
}

/// One hosting, under a look lease that nobody else held: any operation it shows was
/// abandoned by a holder that died.
async fn reconcile_row(
    cx: &Cx,
    row: HostingRow,
    lease: Lease,
    domains: &[(i32, VmState)],
    routes: &HashSet<i32>,
    rep: &mut ReconcileReport,
) -> Result<()> {
    let store = &cx.store;
    match row.state {
        HostingState::Queued | HostingState::Provisioning => {
            // A create nobody runs any more: start it over from a clean slate.
            let errors = scrub(cx, &lease).await;
            if !errors.is_empty() {
                tracing::warn!(hosting_id = row.id, ?errors, "could not clean an interrupted create");
                return Ok(());
            }
            let r = store.requeue(&lease).await?;
            let msg = "Provisioning was interrupted (service restart); cleaned up and starting over";
            cx.event(&r, EventKind::State, None, EventStatus::Queued, msg.into(), None).await;
            spawn_fresh(cx, lease, &r.plan);
            rep.requeued.push(row.id);
        }
        HostingState::Deleting => {
            store.set_operation(&lease, Operation::Delete).await?;
            let (cx, id) = (cx.clone(), row.id);
            tokio::spawn(async move {
                if let Err(err) = run_delete(&cx, lease).await {
                    tracing::warn!(hosting_id = id, %err, "could not finish an interrupted delete");
                }
            });
            rep.deletes_finished.push(row.id);
        }
        HostingState::Failed => {
            let holds = domains.iter().any(|(id, _)| *id == row.id)
                || cx.vm.vm_dir(row.id).exists()
                || routes.contains(&row.id)
                || !ports::leased_by(store.db(), row.id).await?.is_empty();
            if holds && scrub(cx, &lease).await.is_empty() {
                rep.failed_scrubbed.push(row.id);
                // The scrub removed the snapshots' files with the VM's folder.
                let _ = delete_snapshot_rows(cx, row.id).await;
            }
            if row.operation.is_some() {
                store.finish(&lease, HostingState::Failed, row.state_reason.clone()).await?;
            } else {
                store.release(&lease).await?;
            }
        }
        HostingState::Running | HostingState::Stopped | HostingState::Sleeping => {
            // An interrupted snapshot or restore first: it may bring the VM back.
            reconcile_snapshots(cx, &row).await;
            if row.operation == Some(Operation::Backup) {
                // A backup cut short: its row failed, its staging gone (the site was never changed).
                if let Err(err) = crate::hosting::lifecycle::backups::abandoned(cx, row.id).await {
                    tracing::warn!(hosting_id = row.id, %err, "could not clean up an interrupted backup");
                }
            }
            // A wake restored from an expanded delta, interrupted before it dropped the
            // sleeping save or let the guest run.
            if let Err(err) = cx.vm.settle_interrupted_wake(row.id).await {
                tracing::warn!(hosting_id = row.id, %err, "could not finish an interrupted wake");
            }
            // Read under the lease: the pass's domain list may be older than an operation
            // that ended a moment ago.
            let actual = cx.vm.state(row.id).await.ok();
            let saved = actual == Some(VmState::ShutOff) && cx.vm.has_managed_save(row.id).await.unwrap_or(false);
            let asleep = row.state == HostingState::Sleeping || row.operation == Some(Operation::Sleep);
            let want = match actual {
                Some(VmState::Running | VmState::Paused) => HostingState::Running,
                // A sleep that saved the VM, or a wake that had not restored it yet.
                _ if saved && asleep => HostingState::Sleeping,
                _ => HostingState::Stopped,
            };
            if want == HostingState::Running && cx.guest().has_forwards() {
                // A process that died between a restore and its forwards left a VM that no
                // one can reach.
                if let (Some(http), Some(ssh)) = (row.http_port, row.ssh_port) {
                    cx.shared.ssh_wakers.release(row.id).await;
                    if let Err(err) = cx.guest().ensure_forwards(&cx.vm, row.id, http as u16, ssh as u16).await {
                        tracing::warn!(hosting_id = row.id, %err, "could not give a running VM its forwards");
                    }
                }
            }
            let changed = if row.operation.is_some() {
                rep.ops_settled.push(row.id);
                true
            } else if row.state != want {
                rep.states_corrected.push(row.id);
                true
            } else {
                false
            };
            if !routes.contains(&row.id) && row.http_port.is_some() {
                let route = site_route(cx, &row).await?;
                if cx.proxy().add_route(&route).await.is_ok() {
                    rep.routes_restored.push(row.id);
                }
            }
            if changed {
                let reason = if want == HostingState::Sleeping { Some(ASLEEP.into()) } else { row.state_reason.clone() };
                let r = store.finish(&lease, want, reason).await?;
                let msg = format!("State read back from the hypervisor: {want}");
                cx.event(&r, EventKind::State, None, want.into(), msg, None).await;
            } else {
                store.release(&lease).await?;
            }
            if want == HostingState::Sleeping {
                open_ssh_waker(cx, row.id).await;
            }
        }
        HostingState::Spare => {
            // A spare is either being made (by a process that died: remove it) or waiting:
            // paused in RAM, or shut off with its saved state.
            let waiting = match cx.vm.state(row.id).await {
                Ok(VmState::Paused) => true,
                Ok(VmState::ShutOff) => cx.vm.has_managed_save(row.id).await.unwrap_or(false),
                _ => false,
            };
            let saved = row.operation.is_none() && waiting;
            if saved {
                store.release(&lease).await?;
            } else if scrub(cx, &lease).await.is_empty() {
                store.delete(&lease).await?;
                rep.spares_removed.push(row.id);
            }
        }
    }
    Ok(())
}

/// Things named after a hosting id that has no row. They are listed first, then the rows:
/// a hosting's row is made before anything named after it and removed after it. A domain
/// goes only when it carries this node's marker (`VmManager::undefine_orphan`).
async fn remove_orphans(cx: &Cx, rep: &mut ReconcileReport) -> Result<()> {
    let store = &cx.store;
    let domains: Vec<(i32, VmState)> = cx.vm.list_domains().await?;
    let dirs = vm_dirs(cx).await;
    let routes: HashSet<i32> = cx.proxy().list_routes().await?.into_iter().collect();
    let leases = ports::leased_on_node(store.db(), store.node_id()).await?;
    let mut known: HashSet<i32> = store.ids_on_node().await?.into_iter().collect();
    // A site being moved to another node (its row re-homed there, under a lease) may come
    // back here if the move fails: nothing of it is an orphan until its operation ended.
    let named: Vec<i32> = domains.iter().map(|(id, _)| *id).chain(dirs.iter().copied()).collect();
    for id in named {
        if !known.contains(&id) && store.get(id).await?.is_some_and(|r| r.operation.is_some()) {
            known.insert(id);
        }
    }
    // Only a domain this node made (its marker) is removed: one of another node of the same
    // daemon, another app's or one from before the markers is left alone (and logged).
    for (id, _) in &domains {
        if !known.contains(id) && matches!(cx.vm.undefine_orphan(*id).await, Ok(true)) {
            let _ = cx.vm.remove_files(*id).await;
            rep.orphan_domains.push(*id);
        }
    }
    for id in dirs {
        if !known.contains(&id) && cx.vm.remove_files(id).await.is_ok() {
            rep.orphan_dirs.push(id);
        }
    }
    // nginx is shared by every node: a route is an orphan only when no node has its row.
    for id in &routes {
        if !known.contains(id) && store.get(*id).await?.is_none() && cx.proxy().remove_route(*id).await.is_ok() {
            rep.orphan_routes.push(*id);
        }
    }
    for hosting_id in leases {
        // The golden VM's ports while it is made belong to no row.
        if hosting_id == GOLDEN_LEASE {
            continue;
        }
        if !known.contains(&hosting_id) && !rep.orphan_leases.contains(&hosting_id) {
            // This node's only: a site moved to another node holds its ports there.
            ports::release_on_node(store.db(), store.node_id(), hosting_id).await?;
            rep.orphan_leases.push(hosting_id);
        }
    }
    Ok(())
}

/// Hosting ids that have a folder under `{data_dir}/vms/`.
async fn vm_dirs(cx: &Cx) -> Vec<i32> {
    let root = cx.cfg.data_dir.join("vms");
    let mut out = Vec::new();
    let Ok(mut rd) = tokio::fs::read_dir(&root).await else {
        return out;
    };
    while let Ok(Some(entry)) = rd.next_entry().await {
        if let Some(id) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
            if cx.vm.vm_dir(id) == entry.path() {
                out.push(id);
            }
        }
    }
    out
}
