//! A snapshot taken by another operation that holds the site already (a backup restore takes
//! one of the current state first, so a wrong restore can be undone with the snapshot restore
//! that exists). Same files, rows and quota as a user's snapshot; no lease of its own.
use super::forget_snapshot;
use super::take::insert_snapshot;
use crate::hosting::cx::Cx;
use crate::hosting::saga::site::{describe, vm_spec, wait_ready};
use crate::store::HostingRow;
use crate::{Error, Result};
use vmw_types::HostingState;

/// Why a snapshot under another operation's lease was not taken, and whether the VM runs again
/// (a running site whose memory was saved but not restored is left shut off).
#[derive(Debug)]
pub(crate) struct NotTaken {
    pub error: Error,
    pub vm_running: bool,
}

/// Whether the site has memory a snapshot can take (running, or saved: asleep, stopped).
pub(crate) async fn can_snapshot(cx: &Cx, row: &HostingRow) -> Result<bool> {
    Ok(match row.state {
        HostingState::Running => true,
        HostingState::Sleeping | HostingState::Stopped => cx.vm.has_managed_save(row.id).await?,
        _ => false,
    })
}

/// Takes snapshot `name` of `row`'s site (the caller holds it): a running one pauses for it
/// and runs again; a saved one's memory is copied. Counted against the owner's quota (refused
/// with a `Conflict` on field `snapshots` when full). Returns the snapshot's id.
pub(crate) async fn take_under_lease(cx: &Cx, row: &HostingRow, name: &str) -> std::result::Result<i32, NotTaken> {
    let (id, owner) = (row.id, row.user_id.unwrap_or_default());
    let refused = |error: Error| NotTaken { error, vm_running: row.state == HostingState::Running };
    let spec = vm_spec(cx, row).map_err(refused)?;
    let memory = match row.state {
        HostingState::Running => spec.memory_mib << 20,
        _ => cx.vm.saved_memory_bytes(id).await,
    };
    let estimate = memory + cx.vm.disk_bytes(id).await;
    let snap = insert_snapshot(cx, id, owner, name, estimate).await.map_err(refused)?;
    let sid = snap.id;
    let taken = if row.state == HostingState::Running {
        match cx.vm.take_snapshot(id, sid, spec.http_port, spec.ssh_port, false).await {
            Ok(bytes) => {
                cx.guest().sync_clock_later(&cx.vm, id);
                let _ = wait_ready(cx, row).await;
                Ok(bytes)
            }
            Err(fail) => Err(NotTaken { error: fail.error.into(), vm_running: fail.vm_running }),
        }
    } else {
        cx.vm.take_snapshot_of_saved(id, sid, false).await.map_err(|e| NotTaken { error: e.into(), vm_running: false })
    };
    let bytes = match taken {
        Ok(b) => b,
        Err(e) => {
            let _ = forget_snapshot(cx, id, sid).await;
            return Err(e);
        }
    };
    let limit = cx.cfg.snapshot_disk_per_user_mib.saturating_mul(1 << 20);
    match cx.store.settle_snapshot_size(sid, bytes, limit).await {
        Ok(Ok(())) => Ok(sid),
        Ok(Err(used)) => {
            let _ = forget_snapshot(cx, id, sid).await;
            let why = format!(
                "the snapshot of the current state takes {} MiB, and with your other snapshots ({} MiB) that is over the {} MiB snapshots may take per user",
                bytes.div_ceil(1 << 20),
                used.div_ceil(1 << 20),
                cx.cfg.snapshot_disk_per_user_mib
            );
            Err(NotTaken { error: Error::conflict(Some("snapshots"), why), vm_running: row.state == HostingState::Running })
        }
        Err(e) => {
            let _ = forget_snapshot(cx, id, sid).await;
            Err(NotTaken { error: Error::internal(describe(&e)), vm_running: row.state == HostingState::Running })
        }
    }
}
