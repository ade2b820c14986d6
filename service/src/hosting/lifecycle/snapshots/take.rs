//! Taking a snapshot: the quota checked (count and bytes), the `taking` row, then disk and
//! memory written (a running site pauses for it; a sleeping or stopped one's saved memory is
//! copied), and the quota checked again against what the files really take.
use std::time::Instant;

use super::{forget_snapshot, snapshot_of};
use crate::hosting::cx::Cx;
use crate::hosting::saga::site::{describe, vm_spec, wait_ready};
use crate::store::{HostingRow, Lease, SnapshotRow};
use vmw_types::HostingState;
use crate::Result;

/// Makes the `taking` row if the user's quota (count and bytes, `estimate` for this one)
/// allows it. The user's row is locked for the count and the insert.
pub(crate) async fn insert_snapshot(cx: &Cx, id: i32, user_id: i32, name: &str, estimate: u64) -> Result<SnapshotRow> {
    let cfg = &cx.cfg;
    cx.store.insert_snapshot(id, user_id, name, estimate, cfg.snapshots_per_user, cfg.snapshot_disk_per_user_mib).await
}

pub(crate) async fn run_take(cx: &Cx, lease: Lease, sid: i32) -> Result<()> {
    let t = Instant::now();
    let id = lease.hosting_id();
    let row = cx.store.require(id).await?;
    let name = snapshot_of(cx, id, sid).await.map(|s| s.name).unwrap_or_default();
    let spec = vm_spec(cx, &row)?;
    let fail = cx.faults().take_snapshot_fault();
    if row.state != HostingState::Running {
        return run_take_of_saved(cx, lease, &row, sid, &name, fail, t).await;
    }
    match cx.vm.take_snapshot(id, sid, spec.http_port, spec.ssh_port, fail).await {
        Ok(bytes) => {
            let kept = settle_snapshot_size_or_forget(cx, id, sid, bytes).await;
            cx.guest().sync_clock_later(&cx.vm, id);
            let _ = wait_ready(cx, &row).await;
            match kept {
                Ok(()) => {
                    let msg = format!("Snapshot '{name}' taken ({} MiB, {:.1} s)", bytes.div_ceil(1 << 20), t.elapsed().as_secs_f64());
                    cx.finish(lease, HostingState::Running, None, msg, t).await
                }
                Err(over) => {
                    // Told in the event; the site's own state reason stays (it runs well).
                    let msg = format!("Snapshot '{name}' was not kept: {over}; the site kept running");
                    cx.finish(lease, HostingState::Running, row.state_reason.clone(), msg, t).await
                }
            }
        }
        Err(fail) => {
            let _ = forget_snapshot(cx, id, sid).await;
            let why = describe(&fail.error.into());
            if fail.vm_running {
                let reason = format!("Snapshot '{name}' failed: {why}; the site kept running");
                cx.finish(lease, HostingState::Running, Some(reason.clone()), reason, t).await
            } else {
                let _ = cx.vm.destroy(id).await;
                let reason = format!("Snapshot '{name}' failed: {why}; press start to boot the site again");
                cx.finish(lease, HostingState::Stopped, Some(reason.clone()), reason, t).await
            }
        }
    }
}

/// A snapshot of a sleeping or stopped site: its saved memory and disk are copied, and it
/// stays as it was (a visit that comes meanwhile waits, see `visit`).
async fn run_take_of_saved(cx: &Cx, lease: Lease, row: &HostingRow, sid: i32, name: &str, fail: bool, t: Instant) -> Result<()> {
    let id = row.id;
    match cx.vm.take_snapshot_of_saved(id, sid, fail).await {
        Ok(bytes) => match settle_snapshot_size_or_forget(cx, id, sid, bytes).await {
            Ok(()) => {
                let msg = format!("Snapshot '{name}' taken ({} MiB, {:.1} s; the site stayed {})", bytes.div_ceil(1 << 20), t.elapsed().as_secs_f64(), row.state);
                cx.finish(lease, row.state, row.state_reason.clone(), msg, t).await
            }
            Err(over) => {
                // Told in the event; the site keeps its state reason (a sleeping one's "wakes
                // on the next visit").
                let msg = format!("Snapshot '{name}' was not kept: {over}; the site is as it was");
                cx.finish(lease, row.state, row.state_reason.clone(), msg, t).await
            }
        },
        Err(err) => {
            let _ = forget_snapshot(cx, id, sid).await;
            let msg = format!("Snapshot '{name}' failed: {}; the site is as it was", describe(&err.into()));
            cx.finish(lease, row.state, Some(msg.clone()), msg, t).await
        }
    }
}

/// [`settle_snapshot_size`], and when that cannot be done (the database), the snapshot
/// is removed and the inner `Err` says so: the operation still ends, never left busy.
async fn settle_snapshot_size_or_forget(cx: &Cx, id: i32, sid: i32, bytes: u64) -> std::result::Result<(), String> {
    match settle_snapshot_size(cx, id, sid, bytes).await {
        Ok(kept) => kept,
        Err(err) => {
            tracing::error!(hosting_id = id, snapshot_id = sid, %err, "could not record a snapshot's size: removing it");
            let _ = forget_snapshot(cx, id, sid).await;
            Err(format!("its size could not be recorded ({})", describe(&err)))
        }
    }
}

/// The quota checked again against what snapshot `sid`'s files really take (`bytes`): the
/// site's disk may have grown since the estimate. Within the quota the row is `ready` with
/// its real size; over it the snapshot is removed (row, then files: a crash in between
/// leaves a folder without a row, which reconciliation removes) and the inner `Err` says
/// why. Under the owner's row lock, like the check that made the row.
async fn settle_snapshot_size(cx: &Cx, id: i32, sid: i32, bytes: u64) -> Result<std::result::Result<(), String>> {
    let limit_mib = cx.cfg.snapshot_disk_per_user_mib;
    if let Err(used) = cx.store.settle_snapshot_size(sid, bytes, limit_mib.saturating_mul(1 << 20)).await? {
        if let Err(err) = cx.vm.remove_snapshot_files(id, sid).await {
            tracing::warn!(hosting_id = id, snapshot_id = sid, %err, "could not remove an over-quota snapshot's files (reconciliation will)");
        }
        tracing::info!(hosting_id = id, snapshot_id = sid, bytes, used, limit_mib, "snapshot over the quota once written: removed");
        return Ok(Err(format!(
            "it takes {} MiB once written, and with your other snapshots ({} MiB) that is over the {} MiB snapshots may take per user",
            bytes.div_ceil(1 << 20),
            used.div_ceil(1 << 20),
            limit_mib
        )));
    }
    Ok(Ok(()))
}
