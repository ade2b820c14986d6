//! What reconciliation does about snapshots: an interrupted snapshot or restore is settled,
//! then rows and files are made to agree.
use super::{forget_snapshot, snapshot_rows};
use crate::hosting::cx::Cx;
use crate::store::HostingRow;
use vmw_types::{EventKind, EventStatus, Operation};
use vmw_types::SnapshotState;

/// Reconciliation of one live hosting, under its look lease (no operation runs on it):
/// an interrupted snapshot or restore is settled, then rows and files are made to agree.
pub(crate) async fn reconcile_snapshots(cx: &Cx, row: &HostingRow) {
    let id = row.id;
    let vm = &cx.vm;
    let rows = snapshot_rows(cx, id).await.unwrap_or_default();
    // A restore from a delta that left the VM paused: it runs once its memory is checked.
    if let Err(err) = vm.settle_interrupted_snapshot_restore(id).await {
        tracing::warn!(hosting_id = id, %err, "could not finish an interrupted snapshot restore");
    }
    let state = vm.state(id).await.ok();
    let running = matches!(state, Some(crate::vm::VmState::Running | crate::vm::VmState::Paused));
    // A restore that set the site's disk aside: the VM came up (keep the snapshot's), or not.
    if vm.has_previous_disk(id) {
        if running {
            vm.drop_previous_disk(id).await;
            let _ = vm.discard_saved_state(id).await;
        } else if let Err(err) = vm.swap_back_disk(id).await {
            tracing::warn!(hosting_id = id, %err, "could not put back the disk of an interrupted snapshot restore");
        }
    }
    // A snapshot that had saved the VM's memory but not restored it: restore it now.
    let shut_off = state == Some(crate::vm::VmState::ShutOff) && !vm.has_managed_save(id).await.unwrap_or(true);
    if row.operation == Some(Operation::Snapshot) && shut_off {
        if let Some(s) = rows.iter().find(|s| s.state == SnapshotState::Taking && vm.snapshot_memory_saved(id, s.id)) {
            if let (Some(http), Some(ssh)) = (row.http_port, row.ssh_port) {
                cx.shared.ssh_wakers.release(id).await;
                match vm.resume_from_snapshot_memory(id, s.id, http as u16, ssh as u16).await {
                    Ok(()) => tracing::info!(hosting_id = id, "restored a VM an interrupted snapshot had saved"),
                    Err(err) => tracing::warn!(hosting_id = id, %err, "could not restore a VM an interrupted snapshot had saved"),
                }
            }
        }
    }
    for s in &rows {
        let gone = s.state == SnapshotState::Ready && !vm.snapshot_complete(id, s.id);
        if s.state == SnapshotState::Taking || gone {
            if forget_snapshot(cx, id, s.id).await.is_ok() {
                let msg = if gone {
                    format!("Snapshot '{}' lost its files and was removed", s.name)
                } else {
                    format!("Snapshot '{}' was interrupted (service restart) and was removed", s.name)
                };
                cx.event(row, EventKind::Action, None, EventStatus::Failed, msg, None).await;
            }
        }
    }
    for sid in vm.snapshot_ids_on_disk(id).await {
        if !rows.iter().any(|s| s.id == sid) {
            let _ = vm.remove_snapshot_files(id, sid).await;
        }
    }
}
