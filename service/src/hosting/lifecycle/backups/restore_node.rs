//! Restoring a backup on another node (issue 31): the site moves there, the way a site leaves
//! a drained or lost node.
//!
//! Who: an administrator, for any site; the owner only when the site's node is drained or
//! unreachable (a healthy node's sites are the operator's to move). Where: the given node, or
//! the placement's first; it must be another node, healthy, not drained, with room for the
//! site's plan (else 409, saying why).
//!
//! Under the site's `Operation::RestoreBackup` lease, each step an event:
//! 1. the backup materialised on the target node and a port pair leased there: nothing of the
//!    site changed yet, a failure here leaves it as it was;
//! 2. the row re-homed (node, ports), its disk (and memory) put in its folder on the target
//!    node, its VM restored from the memory or booted (`restore_warm`), answering, its route
//!    pointed at the new node. A failure here removes what was made on the target node and
//!    re-homes the row back on its old ports: the site is as it was;
//! 3. the old VM and files removed when the old node answers, else left to that node's
//!    reconciliation (an orphan domain of its own marker and a folder without a row there: it
//!    removes them; the moved row is on another node and under no lease then, so it is not
//!    touched); the old node's ports released. The site ends running (its identity kept: the
//!    same site, moved).
//! User snapshots live beside the VM on its node: they stay behind on the old node.
use std::time::Instant;

use super::materialize::materialize;
use super::restore::restore_dir;
use super::restore_warm::{MEMORY_FILE, RestoreOrBoot};
use crate::accounts::Actor;
use crate::hosting::cx::Cx;
use crate::hosting::lifecycle::begin;
use crate::hosting::saga::site::{describe, site_route, wait_ready};
use crate::hosting::saga::units::Unit;
use crate::store::{BackupRow, HostingRow, Lease, ports};
use crate::vm::move_file;
use crate::{Error, Result};
use vmw_types::{EventKind, EventStatus, HostingState, Operation};

/// The steps a restore on another node tells.
const STEPS: u32 = 3;

/// Whether `actor` may move `row`, whose node is `from`: an administrator always, its owner
/// when that node is drained or unreachable.
pub(crate) async fn may_move(actor: &Actor, from: &Cx) -> Result<()> {
    if actor.is_admin || !from.health().connected {
        return Ok(());
    }
    if from.store.node(from.node_id()).await?.is_some_and(|n| n.drained) {
        return Ok(());
    }
    Err(Error::conflict(Some("target"), "the site's server is healthy: only an administrator moves its sites to another node (restore in place or as a new site instead)"))
}

/// The node the site goes to: `wanted`, checked, or the first of `placed` (the placement's
/// order) that is not `from` and has room for `plan`.
pub(crate) async fn target(placed: Vec<Cx>, from: i32, plan: &str, wanted: Option<i32>) -> Result<Cx> {
    let mut why = None;
    for cx in placed {
        if cx.node_id() == from || wanted.is_some_and(|w| w != cx.node_id()) {
            continue;
        }
        let used = cx.store.committed_in(cx.store.db(), &cx.capacity).await?;
        match cx.capacity.refusal(used, plan) {
            None => return Ok(cx),
            Some(full) => why = Some(full),
        }
    }
    let msg = match (wanted, why) {
        (Some(n), _) if n == from => "the site is on that node already".to_owned(),
        (Some(n), Some(full)) => format!("node {n} has no room for this site: {full}"),
        (Some(n), None) => format!("node {n} cannot take this site: it is not a healthy, undrained node"),
        (None, Some(full)) => format!("no other node has room for this site: {full}"),
        (None, None) => "there is no other node this site can move to (healthy and not drained)".to_owned(),
    };
    Err(Error::conflict(Some("node_id"), msg))
}

/// Starts moving `row` from node `from` to node `to` from its backup `b`; returns at once.
pub(crate) async fn restore_on_node(from: Cx, to: Cx, row: HostingRow, b: BackupRow) -> Result<HostingRow> {
    let id = row.id;
    if let Some(op) = row.operation {
        return Err(Error::Busy(format!("'{}' is busy: {} is in progress; try again when it finishes", row.slug, op.as_str())));
    }
    let lease = begin(&to, id, Operation::RestoreBackup).await?;
    let row = to.store.require(id).await?;
    let msg = format!("Restoring backup {} on node '{}': the site moves there from '{}'", b.id, to.cfg.node_name, from.cfg.node_name);
    to.event(&row, EventKind::Action, None, EventStatus::Started, msg, None).await;
    let shown = row.clone();
    tokio::spawn(async move {
        if let Err(err) = run_move(&from, &to, lease, row, b).await {
            tracing::error!(hosting_id = id, %err, "restoring a backup on another node failed");
        }
    });
    Ok(shown)
}

async fn step(cx: &Cx, row: &HostingRow, n: u32, status: EventStatus, msg: impl Into<String>) {
    let msg = format!("Step {n} of {STEPS}: {}", msg.into());
    cx.event(row, EventKind::Action, None, status, msg, None).await;
}

async fn run_move(from: &Cx, to: &Cx, lease: Lease, row: HostingRow, b: BackupRow) -> Result<()> {
    let t = Instant::now();
    let (id, bid, before) = (row.id, b.id, row.state);
    let old = (row.node_id, row.http_port, row.ssh_port);
    let failed = |why: String| format!("Restoring backup {bid} on node '{}' failed: {why}; the site is as it was", to.cfg.node_name);

    // 1. The backup and ports on the target node; the site untouched.
    step(to, &row, 1, EventStatus::Started, format!("Downloading the backup onto node '{}'", to.cfg.node_name)).await;
    let dir = restore_dir(to, bid, id);
    let _ = tokio::fs::remove_dir_all(&dir).await;
    let got = async {
        tokio::fs::create_dir_all(&dir).await.map_err(|e| Error::internal(format!("creating {}: {e}", dir.display())))?;
        let (row2, cx2) = (row.clone(), to.clone());
        let m = materialize(to, &b, &dir, move |msg| {
            let (row, cx) = (row2.clone(), cx2.clone());
            tokio::spawn(async move { step(&cx, &row, 1, EventStatus::Info, msg).await });
        })
        .await?;
        let pair = ports::lease_pair(to.store.db(), to.node_id(), id, &to.cfg).await?;
        Ok::<_, Error>((m, pair))
    }
    .await;
    let (m, pair) = match got {
        Ok(g) => g,
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            let _ = ports::release_on_node(to.store.db(), to.node_id(), id).await;
            let reason = failed(describe(&e));
            return to.finish(lease, before, Some(reason.clone()), reason, t).await;
        }
    };
    step(to, &row, 1, EventStatus::Succeeded, format!("Backup {bid} is on node '{}'", to.cfg.node_name)).await;

    // 2. The site on the target node.
    step(to, &row, 2, EventStatus::Started, "Starting the site there and pointing its address at it").await;
    let moved = async {
        let row = to.store.rehome(&lease, to.node_id(), pair).await?;
        move_file(&m.disk, &to.vm.vm_dir(id).join("disk.qcow2")).await?;
        if let Some(mem) = &m.memory {
            move_file(mem, &to.vm.vm_dir(id).join(MEMORY_FILE)).await?;
        }
        to.vm.write_inert_seed(id).await?;
        RestoreOrBoot.run(to, &lease).await?;
        wait_ready(to, &row).await?;
        let route = site_route(to, &row).await?;
        to.proxy().add_route(&route).await?;
        to.guest().check_route(&to.proxy(), &route).await
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    if let Err(e) = moved {
        let why = describe(&e);
        tracing::warn!(hosting_id = id, backup_id = bid, %why, "restoring a backup on another node failed: putting the site back");
        let _ = RestoreOrBoot.undo(to, &lease).await;
        let _ = to.vm.remove_files(id).await;
        let back = async {
            if let (Some(h), Some(s)) = (old.1, old.2) {
                let row = to.store.rehome(&lease, old.0, (h as u16, s as u16)).await?;
                let route = site_route(from, &row).await?;
                from.proxy().add_route(&route).await?;
            }
            Ok::<_, Error>(())
        }
        .await;
        let _ = ports::release_on_node(to.store.db(), to.node_id(), id).await;
        let reason = match back {
            Ok(()) => failed(why),
            Err(e) => format!("Restoring backup {bid} on node '{}' failed: {why}; putting the site back failed too: {}", to.cfg.node_name, describe(&e)),
        };
        return from.finish(lease, before, Some(reason.clone()), reason, t).await;
    }
    step(to, &row, 2, EventStatus::Succeeded, format!("The site runs on node '{}' and answers", to.cfg.node_name)).await;

    // 3. The old node's VM and files.
    // A sleeping site's SSH waker (this process's) holds its old port: let it go first.
    from.shared.ssh_wakers.release(id).await;
    let _ = ports::release_on_node(to.store.db(), old.0, id).await;
    if from.health().connected {
        let gone = async {
            from.vm.undefine(id).await?;
            // Each node has a data folder of its own; never the moved site's own files.
            if from.vm.vm_dir(id) != to.vm.vm_dir(id) {
                from.vm.remove_files(id).await?;
            }
            Ok::<_, Error>(())
        }
        .await;
        match gone {
            Ok(()) => step(to, &row, 3, EventStatus::Succeeded, format!("Its old VM and files on node '{}' removed", from.cfg.node_name)).await,
            Err(e) => {
                let msg = format!("Its old VM on node '{}' could not be removed now ({}): that node's reconciliation removes it", from.cfg.node_name, describe(&e));
                step(to, &row, 3, EventStatus::Info, msg).await
            }
        }
    } else {
        let msg = format!("Node '{}' does not answer: its reconciliation removes the old VM and files when it is back", from.cfg.node_name);
        step(to, &row, 3, EventStatus::Info, msg).await;
    }
    let msg = format!("Backup {bid} restored on node '{}' ({:.1} s): the site moved from '{}'", to.cfg.node_name, t.elapsed().as_secs_f64(), from.cfg.node_name);
    tracing::info!(hosting_id = id, backup_id = bid, from = %from.cfg.node_name, to = %to.cfg.node_name, secs = t.elapsed().as_secs_f64(), "site moved to another node from its backup");
    to.finish(lease, HostingState::Running, None, msg, t).await
}
