//! Restoring a backup (issue 31): the request checked and the operation begun here; in place
//! below, as a new site in `restore_new`, on another node in `restore_node`.
//!
//! In place, under the site's `Operation::RestoreBackup` lease, each step an event:
//! 1. the current state snapshotted ("before restoring backup N", a user snapshot like any
//!    other, counted in the quota: the way back from a wrong restore). A powered-off site has
//!    no memory to snapshot: its disk is kept aside until the restore worked, and told so;
//! 2. the backup materialised (`materialize`) into `{data_dir}/backups/restore/{bid}-{id}`:
//!    nothing of the site changed yet, a failure here leaves it untouched;
//! 3. its disk staged beside the VM's, the VM saved (running) or left down, the disks swapped
//!    (the VM's own kept aside, as a snapshot restore does);
//! 4. a backup with memory restored running; without, the site boots cold. A site that was
//!    stopped ends stopped (with the backup's memory saved, if it has one), else running,
//!    answering.
//! Any failure after the swap: the VM's own disk back, and the state from the snapshot of step 1
//! (running, then saved again if it slept); the row ends in the state it had, the reason told.
use std::path::PathBuf;
use std::time::Instant;

use super::materialize::{Materialized, materialize};
use crate::accounts::Actor;
use crate::hosting::cx::Cx;
use crate::hosting::lifecycle::begin;
use crate::hosting::lifecycle::snapshots::under_lease::{can_snapshot, take_under_lease};
use crate::hosting::lifecycle::visit::open_ssh_waker;
use crate::hosting::saga::site::{describe, vm_spec, wait_ready};
use crate::hosting::saga::start::bring_up;
use crate::store::{BackupRow, HostingRow, Lease};
use crate::{Error, Result};
use vmw_types::{BackupState, EventKind, EventStatus, HostingState, Operation, RestoreTarget};

/// The steps a restore in place tells (the page's progress bar counts them).
const STEPS: u32 = 4;

/// Backup `bid` of hosting `id`, which `actor` may see (others 404), restorable (409 if not).
pub(crate) async fn restorable(cx: &Cx, actor: &Actor, id: i32, bid: i32) -> Result<(HostingRow, BackupRow)> {
    let row = cx.store.owned(actor, id).await?;
    let b = match cx.store.backup(bid).await? {
        Some(b) if b.hosting_id == Some(id) => b,
        _ => return Err(Error::NotFound("backup")),
    };
    if b.state != BackupState::Succeeded || b.snapshot_id.is_none() {
        return Err(Error::conflict(None, format!("backup {bid} is {}: only a succeeded backup can be restored", b.state)));
    }
    Ok((row, b))
}

/// Starts restoring backup `bid` of hosting `id` to `target`; returns at once with the hosting
/// the restore brings back (the site itself, or the new one).
pub(crate) async fn restore(cx: &Cx, actor: &Actor, id: i32, bid: i32, target: RestoreTarget) -> Result<HostingRow> {
    let (row, b) = restorable(cx, actor, id, bid).await?;
    match target {
        RestoreTarget::InPlace => restore_in_place(cx, row, b).await,
        RestoreTarget::NewSite { .. } => Err(Error::internal("a restore as a new site is placed by the cluster (the facade)")),
        RestoreTarget::Node { .. } => Err(Error::internal("a restore on another node is placed by the cluster (the facade)")),
    }
}

async fn restore_in_place(cx: &Cx, row: HostingRow, b: BackupRow) -> Result<HostingRow> {
    let id = row.id;
    if let Some(op) = row.operation {
        return Err(Error::Busy(format!("'{}' is busy: {} is in progress; try again when it finishes", row.slug, op.as_str())));
    }
    // The snapshot of the current state needs room: said before anything starts.
    let owner = row.user_id.unwrap_or_default();
    if can_snapshot(cx, &row).await? && cx.store.snapshot_count(owner).await? >= u64::from(cx.cfg.snapshots_per_user) {
        let why = format!(
            "a restore in place first takes a snapshot of the site as it is now, and you have {} snapshots, the most you may keep: delete one first",
            cx.cfg.snapshots_per_user
        );
        return Err(Error::conflict(Some("snapshots"), why));
    }
    let lease = begin(cx, id, Operation::RestoreBackup).await?;
    let row = cx.store.require(id).await?;
    let msg = format!("Restoring backup {} in place", b.id);
    cx.event(&row, EventKind::Action, None, EventStatus::Started, msg, None).await;
    let cx2 = cx.clone();
    tokio::spawn(async move {
        cx2.faults().before_act().await;
        if let Err(err) = run_in_place(&cx2, lease, b).await {
            tracing::error!(hosting_id = id, %err, "backup restore failed");
        }
    });
    Ok(row)
}

/// The restore's scratch folder on this node.
pub(crate) fn restore_dir(cx: &Cx, bid: i32, id: i32) -> PathBuf {
    cx.cfg.data_dir.join("backups/restore").join(format!("{bid}-{id}"))
}

async fn step(cx: &Cx, row: &HostingRow, n: u32, status: EventStatus, msg: impl Into<String>) {
    let msg = format!("Step {n} of {STEPS}: {}", msg.into());
    cx.event(row, EventKind::Action, None, status, msg, None).await;
}

pub(crate) async fn run_in_place(cx: &Cx, lease: Lease, b: BackupRow) -> Result<()> {
    let t = Instant::now();
    let id = lease.hosting_id();
    let row = cx.store.require(id).await?;
    let before = row.state;
    let bid = b.id;
    let vm = &cx.vm;
    let failed = |why: String| format!("Restoring backup {bid} failed: {why}; the site is as it was");

    // 1. The way back.
    let pre = if can_snapshot(cx, &row).await.unwrap_or(false) {
        step(cx, &row, 1, EventStatus::Started, format!("Taking snapshot 'before restoring backup {bid}' of the site as it is now")).await;
        match take_under_lease(cx, &row, &format!("before restoring backup {bid}")).await {
            Ok(sid) => Some(sid),
            Err(e) => {
                let why = describe(&e.error);
                if !e.vm_running && before == HostingState::Running {
                    let _ = vm.destroy(id).await;
                    let reason = format!("Restoring backup {bid} failed: the snapshot before it could not be taken ({why}); press start to boot the site again");
                    return cx.finish(lease, HostingState::Stopped, Some(reason.clone()), reason, t).await;
                }
                let reason = failed(format!("the snapshot before it could not be taken ({why})"));
                return cx.finish(lease, before, Some(reason.clone()), reason, t).await;
            }
        }
    } else {
        step(cx, &row, 1, EventStatus::Info, "The site is powered off (no memory to snapshot): its disk is kept aside until the restore worked").await;
        None
    };
    if pre.is_some() {
        step(cx, &row, 1, EventStatus::Succeeded, format!("Snapshot 'before restoring backup {bid}' taken: restore it to undo this restore")).await;
    }

    // 2. The backup's files here; the site untouched.
    let dir = restore_dir(cx, bid, id);
    let _ = tokio::fs::remove_dir_all(&dir).await;
    if let Err(e) = tokio::fs::create_dir_all(&dir).await {
        let reason = failed(e.to_string());
        return cx.finish(lease, before, Some(reason.clone()), reason, t).await;
    }
    step(cx, &row, 2, EventStatus::Started, "Downloading the backup from the repository").await;
    let (row2, cx2) = (row.clone(), cx.clone());
    let m = materialize(cx, &b, &dir, move |msg| {
        let (row, cx) = (row2.clone(), cx2.clone());
        tokio::spawn(async move { step(&cx, &row, 2, EventStatus::Info, msg).await });
    })
    .await;
    let m = match m {
        Ok(m) => m,
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            let reason = failed(describe(&e));
            return cx.finish(lease, before, Some(reason.clone()), reason, t).await;
        }
    };
    tracing::info!(hosting_id = id, backup_id = bid, base = %m.base.display(), base_restored = m.base_restored, memory = m.memory.is_some(), "backup materialised");
    let how = if m.memory.is_some() { "its memory and disk" } else { "its disk (the site boots from it)" };
    step(cx, &row, 2, EventStatus::Succeeded, format!("Backup {bid} downloaded: {how}")).await;

    // 3 and 4.
    step(cx, &row, 3, EventStatus::Started, "Swapping in the backup's disk").await;
    let res = swap_and_start(cx, &row, &m).await;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    match res {
        Ok(state) => {
            vm.drop_previous_disk(id).await;
            let msg = format!("Backup {bid} restored ({:.1} s); the site is {state}", t.elapsed().as_secs_f64());
            tracing::info!(hosting_id = id, backup_id = bid, secs = t.elapsed().as_secs_f64(), "backup restored in place");
            cx.finish(lease, state, None, msg, t).await
        }
        Err(e) => {
            let why = describe(&e);
            tracing::warn!(hosting_id = id, backup_id = bid, %why, "backup restore failed after the swap: putting the site back");
            let state = put_back(cx, &row, pre).await;
            let reason = if state == before { failed(why) } else { format!("Restoring backup {bid} failed: {why}; press start to try again") };
            cx.finish(lease, state, Some(reason.clone()), reason, t).await?;
            if state == HostingState::Sleeping {
                open_ssh_waker(cx, id).await;
            }
            Ok(())
        }
    }
}

/// Steps 3 and 4; the state the site ends in.
async fn swap_and_start(cx: &Cx, row: &HostingRow, m: &Materialized) -> Result<HostingState> {
    let (id, vm) = (row.id, &cx.vm);
    let spec = vm_spec(cx, row)?;
    vm.stage_restored_disk(id, &m.disk).await?;
    if row.state == HostingState::Running {
        vm.managed_save(id).await?;
    }
    cx.shared.ssh_wakers.release(id).await;
    vm.swap_in_staged_disk(id).await?;
    if cx.faults().take_snapshot_fault() {
        return Err(Error::internal("the restore failed (injected failure)"));
    }
    step(cx, row, 3, EventStatus::Succeeded, "The backup's disk is the site's").await;
    let end = if row.state == HostingState::Stopped { HostingState::Stopped } else { HostingState::Running };
    match (&m.memory, end) {
        (Some(mem), _) => {
            step(cx, row, 4, EventStatus::Started, "Restoring the backup's memory (the site runs as it was then)").await;
            vm.restore_from_memory_file(id, mem, spec.http_port, spec.ssh_port).await?;
            let _ = vm.discard_saved_state(id).await;
            wait_ready(cx, row).await?;
            cx.guest().sync_clock_later(&cx.vm, id);
            if end == HostingState::Stopped {
                vm.managed_save(id).await?;
            }
        }
        (None, HostingState::Stopped) => {
            vm.discard_saved_state(id).await?;
            step(cx, row, 4, EventStatus::Info, "The site stays stopped: it boots from the backup's disk at its next start").await;
        }
        (None, _) => {
            step(cx, row, 4, EventStatus::Started, "Booting the site from the backup's disk").await;
            vm.discard_saved_state(id).await?;
            bring_up(cx, id).await?;
        }
    }
    if end == HostingState::Running {
        step(cx, row, 4, EventStatus::Succeeded, "The site answers").await;
    }
    Ok(end)
}

/// After a failed swap: the VM's own disk back, and the site's state from the snapshot taken
/// first (running; saved again if it was asleep or stopped). Returns the state it is in.
async fn put_back(cx: &Cx, row: &HostingRow, pre: Option<i32>) -> HostingState {
    let (id, vm, before) = (row.id, &cx.vm, row.state);
    let _ = vm.destroy(id).await;
    if vm.swap_back_disk(id).await.is_err() {
        return HostingState::Stopped;
    }
    let Some(sid) = pre else {
        // Powered off: its disk is back, nothing else was changed.
        let _ = vm.discard_saved_state(id).await;
        return before;
    };
    let Ok(spec) = vm_spec(cx, row) else { return HostingState::Stopped };
    let back = async {
        let _ = vm.discard_saved_state(id).await;
        vm.stage_snapshot_disk(id, sid).await?;
        vm.swap_in_staged_disk(id).await?;
        vm.restore_snapshot_memory(id, sid, spec.http_port, spec.ssh_port).await?;
        vm.drop_previous_disk(id).await;
        wait_ready(cx, row).await?;
        if before != HostingState::Running {
            vm.managed_save(id).await?;
        }
        Ok::<_, Error>(())
    }
    .await;
    match back {
        Ok(()) => before,
        Err(e) => {
            tracing::error!(hosting_id = id, err = %describe(&e), "could not bring the site back from its snapshot after a failed backup restore");
            let _ = vm.destroy(id).await;
            let _ = vm.swap_back_disk(id).await;
            HostingState::Stopped
        }
    }
}
