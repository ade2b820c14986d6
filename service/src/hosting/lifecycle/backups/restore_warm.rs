//! The VM of a site restored from a backup (`restore_new`), started the fast way when it can
//! be: a backup with memory comes back running from that memory, renamed as the new site's
//! (`VmManager::restore_memory_as`: ~1 s instead of a cold boot's 30-50 s under TCG); without
//! memory, or when its memory cannot be restored here, the disk is booted cold and the reason
//! is told on the new site's events.
//!
//! The memory waits in the new VM's folder as [`MEMORY_FILE`] (put there with the disk, gone
//! with `CreateDisk`'s undo) and is removed once the VM runs.
use async_trait::async_trait;

use crate::hosting::cx::Cx;
use crate::hosting::saga::site::vm_spec;
use crate::hosting::saga::start::start_vm;
use crate::hosting::saga::units::Unit;
use crate::store::Lease;
use crate::Result;
use vmw_types::{EventKind, EventStatus, Step};

/// The backup's saved memory in the new VM's folder, until the VM runs.
pub(crate) const MEMORY_FILE: &str = "restored-memory.save";

/// Restores the VM from the backup's memory when it is there, else (or when that fails) defines
/// and boots it cold (`WaitReady` after it waits until it serves).
pub(crate) struct RestoreOrBoot;

#[async_trait]
impl Unit for RestoreOrBoot {
    fn step(&self) -> Step {
        Step::StartVm
    }

    async fn run(&self, cx: &Cx, lease: &Lease) -> Result<()> {
        let id = lease.hosting_id();
        let row = cx.store.require(id).await?;
        let spec = vm_spec(cx, &row)?;
        let mem = cx.vm.vm_dir(id).join(MEMORY_FILE);
        if mem.is_file() {
            let t = std::time::Instant::now();
            match cx.vm.restore_memory_as(&spec, &mem).await {
                Ok(()) => {
                    let _ = tokio::fs::remove_file(&mem).await;
                    let msg = format!("Restored running from the backup's memory ({:.1} s): no boot", t.elapsed().as_secs_f64());
                    cx.event(&row, EventKind::Action, None, EventStatus::Info, msg, Some(t.elapsed().as_millis() as i64)).await;
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(hosting_id = id, err = %e, "the backup's memory could not be restored as the new site: booting its disk cold");
                    let msg = format!("The backup's memory could not be restored here ({e}): booting its disk instead (slower)");
                    cx.event(&row, EventKind::Action, None, EventStatus::Info, msg, None).await;
                    cx.vm.undefine(id).await?;
                }
            }
            let _ = tokio::fs::remove_file(&mem).await;
        }
        cx.vm.define(&spec).await?;
        start_vm(cx, id).await.map(|_| ())
    }

    /// The VM (running or not) and its definition; its files go with `CreateDisk`'s undo.
    async fn undo(&self, cx: &Cx, lease: &Lease) -> Result<()> {
        cx.vm.destroy(lease.hosting_id()).await?;
        Ok(cx.vm.undefine(lease.hosting_id()).await?)
    }
}
