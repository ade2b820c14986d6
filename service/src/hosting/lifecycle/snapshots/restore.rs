//! Restoring a snapshot: the site's own disk and memory are kept until the snapshot's are up,
//! so a failed restore puts them back and the site is as it was.
use std::time::Instant;

use super::snapshot_of;
use crate::hosting::cx::Cx;
use crate::hosting::lifecycle::visit::open_ssh_waker;
use crate::hosting::saga::site::{describe, vm_spec, wait_ready};
use crate::hosting::saga::start::bring_up;
use crate::store::Lease;
use vmw_types::HostingState;
use crate::Result;

pub(crate) async fn run_restore(cx: &Cx, lease: Lease, sid: i32, before: HostingState) -> Result<()> {
    let t = Instant::now();
    let id = lease.hosting_id();
    let row = cx.store.require(id).await?;
    let name = snapshot_of(cx, id, sid).await.map(|s| s.name).unwrap_or_default();
    let spec = vm_spec(cx, &row)?;
    let vm = &cx.vm;
    // 1. The snapshot's disk is copied next to the site's: nothing of the site changed yet.
    // 2. A running site is saved to disk (its own memory kept for a failure).
    let prepared = async {
        vm.stage_snapshot_disk(id, sid).await?;
        if before == HostingState::Running {
            vm.managed_save(id).await?;
        }
        Ok::<_, crate::vm::VmError>(())
    }
    .await;
    if let Err(err) = prepared {
        let _ = vm.swap_back_disk(id).await;
        let reason = format!("Restoring snapshot '{name}' failed: {}; the site is as it was", describe(&err.into()));
        return cx.finish(lease, before, Some(reason.clone()), reason, t).await;
    }
    // 3. The disks swap and the snapshot's memory is restored.
    cx.shared.ssh_wakers.release(id).await;
    let fail = cx.faults().take_snapshot_fault();
    let restored = async {
        vm.swap_in_staged_disk(id).await?;
        if fail {
            return Err(crate::vm::VmError::Invalid("the restore failed (injected failure)".into()).into());
        }
        vm.restore_snapshot_memory(id, sid, spec.http_port, spec.ssh_port).await?;
        wait_ready(cx, &row).await
    }
    .await;
    match restored {
        Ok(()) => {
            vm.drop_previous_disk(id).await;
            let _ = vm.discard_saved_state(id).await;
            cx.guest().sync_clock_later(&cx.vm, id);
            let msg = format!("Snapshot '{name}' restored ({:.1} s)", t.elapsed().as_secs_f64());
            cx.finish(lease, HostingState::Running, None, msg, t).await
        }
        Err(err) => {
            let why = describe(&err);
            let _ = vm.destroy(id).await;
            let back = vm.swap_back_disk(id).await;
            let state = match (back, before) {
                (Err(_), _) => HostingState::Stopped,
                (Ok(_), HostingState::Running) => match bring_up(cx, id).await {
                    Ok(()) => HostingState::Running,
                    Err(_) => HostingState::Stopped,
                },
                (Ok(_), other) => other,
            };
            let reason = if state == before {
                format!("Restoring snapshot '{name}' failed: {why}; the site is as it was")
            } else {
                format!("Restoring snapshot '{name}' failed: {why}; press start to try again")
            };
            cx.finish(lease, state, Some(reason.clone()), reason, t).await?;
            if state == HostingState::Sleeping {
                open_ssh_waker(cx, id).await;
            }
            Ok(())
        }
    }
}
