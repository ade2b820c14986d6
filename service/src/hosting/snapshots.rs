//! User snapshots of a site: take (disk and memory of the running site), list, restore (the
//! site runs again as it was then), delete. The VM side is `vm::snapshots`, the rows and the
//! per-user quota `store::snapshots`; here are the operations under the hosting's lease, and
//! what reconciliation does about them.
//!
//! - Taking one holds the hosting's lease (`Operation::Snapshot`): nothing else runs on the
//!   site meanwhile, and others get 409. The row is made first, `taking`, counted against the
//!   user's quota (count and bytes, under the user's row lock like the other per-user limits).
//! - Restoring one (`Operation::RestoreSnapshot`) keeps the site's own state until the
//!   snapshot's is up: a running site is managed-saved and its disk set aside, so a failed
//!   restore puts both back and the site runs (or stays stopped/asleep) as before.
//! - A crash: reconciliation removes `taking` rows and their files, rows whose files are gone,
//!   and folders without a row; a VM a snapshot had saved but not restored is restored from
//!   that memory, and a restore's set-aside disk is put back (or dropped, if the VM came up).
use std::time::Instant;

use super::provision::describe;
use super::store::{HostingRow, Lease, SnapshotRow};
use super::{EventKind, EventStatus, HostingService, HostingState, HostingView, Operation};
use crate::accounts::Actor;
use crate::{Error, Result};
pub use vmw_types::{SnapshotState, SnapshotView};

/// The longest snapshot name.
pub const NAME_MAX: usize = 64;

/// A snapshot's name, checked: 1-64 characters of letters, digits, space and `-_.:()`. It is
/// display text only (files are named after ids).
pub fn check_snapshot_name(name: &str) -> Result<String> {
    let n = name.trim();
    if n.is_empty() {
        return Err(Error::validation("name", "give the snapshot a name"));
    }
    if n.chars().count() > NAME_MAX {
        return Err(Error::validation("name", format!("a snapshot name has at most {NAME_MAX} characters")));
    }
    if let Some(c) = n.chars().find(|c| !(c.is_alphanumeric() || " -_.:()".contains(*c))) {
        return Err(Error::validation(
            "name",
            format!("'{}' is not allowed in a snapshot name: use letters, digits, spaces and - _ . : ( )", c.escape_default()),
        ));
    }
    Ok(n.to_owned())
}

fn view(m: &SnapshotRow) -> SnapshotView {
    SnapshotView {
        id: m.id,
        hosting_id: m.hosting_id,
        name: m.name.clone(),
        state: m.state,
        size_bytes: m.size_bytes,
        created_at: m.created_at,
    }
}

impl HostingService {
    /// The hosting's snapshots, oldest first.
    pub async fn list_snapshots(&self, actor: &Actor, id: i32) -> Result<Vec<SnapshotView>> {
        self.inner.store.owned(actor, id).await?;
        Ok(self.snapshot_rows(id).await?.iter().map(view).collect())
    }

    /// The service of the hosting's node when that is another node than this one (its VM,
    /// its files): snapshots are taken and restored there. Refused while that node is down.
    async fn other_node_of(&self, actor: &Actor, id: i32) -> Result<Option<HostingService>> {
        let row = self.inner.store.owned(actor, id).await?;
        if row.node_id == self.node_id() {
            return Ok(None);
        }
        Ok(Some(self.on_live(row.node_id)?))
    }

    async fn snapshot_rows(&self, id: i32) -> Result<Vec<SnapshotRow>> {
        self.inner.store.snapshots_of(id).await
    }

    /// Snapshot `sid` of hosting `id` (which the caller was checked to see).
    async fn snapshot_of(&self, id: i32, sid: i32) -> Result<SnapshotRow> {
        self.inner.store.snapshot_of(id, sid).await?.ok_or(Error::NotFound("snapshot"))
    }

    /// Takes a snapshot of a site (disk and memory): a running one pauses for it, a sleeping or
    /// stopped one keeps sleeping (its saved memory is copied). Returns at once with the new
    /// snapshot `taking`. 409 when the site is busy, has no memory (powered off, failed), or
    /// the quota is used up.
    pub async fn take_snapshot(&self, actor: &Actor, id: i32, name: &str) -> Result<SnapshotView> {
        if let Some(node) = self.other_node_of(actor, id).await? {
            return Box::pin(node.take_snapshot(actor, id, name)).await;
        }
        let name = check_snapshot_name(name)?;
        let row = self.inner.store.owned(actor, id).await?;
        // The same refusals as any operation (busy, or the wrong state), before a row exists.
        if let Some(op) = row.operation {
            return Err(Error::Busy(format!("'{}' is busy: {} is in progress; try again when it finishes", row.slug, op.as_str())));
        }
        let memory_kept = match row.state {
            HostingState::Running => true,
            HostingState::Sleeping | HostingState::Stopped => self.inner.vm.has_managed_save(id).await?,
            _ => false,
        };
        if !memory_kept {
            let why = if row.state == HostingState::Stopped { "powered off (no memory to take)".to_owned() } else { row.state.to_string() };
            return Err(Error::conflict(Some("state"), format!("cannot take a snapshot of '{}' while it is {why}: start it first", row.slug)));
        }
        let owner = row.user_id.unwrap_or(actor.user_id);
        // What the snapshot's files will take, at most: a running site's memory as large as its
        // plan's, a saved one's as its file is (it is copied).
        let memory = match row.state {
            HostingState::Running => self.vm_spec(&row)?.memory_mib << 20,
            _ => self.inner.vm.saved_memory_bytes(id).await,
        };
        let estimate = memory + self.inner.vm.disk_bytes(id).await;
        // The lease first: a `taking` row is only ever seen without one after a crash (which
        // reconciliation then cleans up).
        let lease = self.begin(id, Operation::Snapshot).await?;
        // Read again under the lease: what the site is now (a running one may have fallen asleep).
        let row = self.inner.store.require(id).await?;
        let snap = match self.insert_snapshot(id, owner, &name, estimate).await {
            Ok(s) => s,
            Err(e) => {
                // Refused (the name, the quota): the site is left in the state it is in.
                self.inner.store.finish(&lease, row.state, row.state_reason.clone()).await?;
                return Err(e);
            }
        };
        let msg = if row.state == HostingState::Running {
            format!("Taking snapshot '{name}' (the site pauses for a few seconds)")
        } else {
            format!("Taking snapshot '{name}' of its saved memory and disk (it stays {})", row.state)
        };
        self.event(&row, EventKind::Action, None, EventStatus::Started, msg, None).await;
        let this = self.clone();
        let sid = snap.id;
        tokio::spawn(async move {
            let delay = this.inner.faults.op_delay();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if let Err(err) = this.run_take(lease, sid).await {
                tracing::error!(hosting_id = id, snapshot_id = sid, %err, "snapshot failed");
            }
        });
        Ok(view(&snap))
    }

    /// Makes the `taking` row if the user's quota (count and bytes, `estimate` for this one)
    /// allows it. The user's row is locked for the count and the insert.
    async fn insert_snapshot(&self, id: i32, user_id: i32, name: &str, estimate: u64) -> Result<SnapshotRow> {
        let cfg = &self.inner.cfg;
        self.inner.store.insert_snapshot(id, user_id, name, estimate, cfg.snapshots_per_user, cfg.snapshot_disk_per_user_mib).await
    }

    async fn run_take(&self, lease: Lease, sid: i32) -> Result<()> {
        let t = Instant::now();
        let id = lease.hosting_id();
        let row = self.inner.store.require(id).await?;
        let name = self.snapshot_of(id, sid).await.map(|s| s.name).unwrap_or_default();
        let spec = self.vm_spec(&row)?;
        let fail = self.inner.faults.take_snapshot_fault();
        if row.state != HostingState::Running {
            return self.run_take_of_saved(lease, &row, sid, &name, fail, t).await;
        }
        match self.inner.vm.take_snapshot(id, sid, spec.http_port, spec.ssh_port, fail).await {
            Ok(bytes) => {
                let kept = self.settle_snapshot_size_or_forget(id, sid, bytes).await;
                self.sync_clock_later(id);
                let _ = self.wait_ready(&row).await;
                match kept {
                    Ok(()) => {
                        let msg = format!("Snapshot '{name}' taken ({} MiB, {:.1} s)", bytes.div_ceil(1 << 20), t.elapsed().as_secs_f64());
                        self.finish(lease, HostingState::Running, None, msg, t).await
                    }
                    Err(over) => {
                        // Told in the event; the site's own state reason stays (it runs well).
                        let msg = format!("Snapshot '{name}' was not kept: {over}; the site kept running");
                        self.finish(lease, HostingState::Running, row.state_reason.clone(), msg, t).await
                    }
                }
            }
            Err(fail) => {
                let _ = self.forget_snapshot(id, sid).await;
                let why = describe(&fail.error.into());
                if fail.vm_running {
                    let reason = format!("Snapshot '{name}' failed: {why}; the site kept running");
                    self.finish(lease, HostingState::Running, Some(reason.clone()), reason, t).await
                } else {
                    let _ = self.inner.vm.destroy(id).await;
                    let reason = format!("Snapshot '{name}' failed: {why}; press start to boot the site again");
                    self.finish(lease, HostingState::Stopped, Some(reason.clone()), reason, t).await
                }
            }
        }
    }

    /// A snapshot of a sleeping or stopped site: its saved memory and disk are copied, and it
    /// stays as it was (a visit that comes meanwhile waits, see `visit`).
    async fn run_take_of_saved(&self, lease: Lease, row: &HostingRow, sid: i32, name: &str, fail: bool, t: Instant) -> Result<()> {
        let id = row.id;
        match self.inner.vm.take_snapshot_of_saved(id, sid, fail).await {
            Ok(bytes) => match self.settle_snapshot_size_or_forget(id, sid, bytes).await {
                Ok(()) => {
                    let msg = format!("Snapshot '{name}' taken ({} MiB, {:.1} s; the site stayed {})", bytes.div_ceil(1 << 20), t.elapsed().as_secs_f64(), row.state);
                    self.finish(lease, row.state, row.state_reason.clone(), msg, t).await
                }
                Err(over) => {
                    // Told in the event; the site keeps its state reason (a sleeping one's "wakes
                    // on the next visit").
                    let msg = format!("Snapshot '{name}' was not kept: {over}; the site is as it was");
                    self.finish(lease, row.state, row.state_reason.clone(), msg, t).await
                }
            },
            Err(err) => {
                let _ = self.forget_snapshot(id, sid).await;
                let msg = format!("Snapshot '{name}' failed: {}; the site is as it was", describe(&err.into()));
                self.finish(lease, row.state, Some(msg.clone()), msg, t).await
            }
        }
    }

    /// [`Self::settle_snapshot_size`], and when that cannot be done (the database), the snapshot
    /// is removed and the inner `Err` says so: the operation still ends, never left busy.
    async fn settle_snapshot_size_or_forget(&self, id: i32, sid: i32, bytes: u64) -> std::result::Result<(), String> {
        match self.settle_snapshot_size(id, sid, bytes).await {
            Ok(kept) => kept,
            Err(err) => {
                tracing::error!(hosting_id = id, snapshot_id = sid, %err, "could not record a snapshot's size: removing it");
                let _ = self.forget_snapshot(id, sid).await;
                Err(format!("its size could not be recorded ({})", describe(&err)))
            }
        }
    }

    /// The quota checked again against what snapshot `sid`'s files really take (`bytes`): the
    /// site's disk may have grown since the estimate. Within the quota the row is `ready` with
    /// its real size; over it the snapshot is removed (row, then files: a crash in between
    /// leaves a folder without a row, which reconciliation removes) and the inner `Err` says
    /// why. Under the owner's row lock, like the check that made the row.
    async fn settle_snapshot_size(&self, id: i32, sid: i32, bytes: u64) -> Result<std::result::Result<(), String>> {
        let limit_mib = self.inner.cfg.snapshot_disk_per_user_mib;
        if let Err(used) = self.inner.store.settle_snapshot_size(sid, bytes, limit_mib.saturating_mul(1 << 20)).await? {
            if let Err(err) = self.inner.vm.remove_snapshot_files(id, sid).await {
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

    /// Removes a snapshot's files and row.
    async fn forget_snapshot(&self, id: i32, sid: i32) -> Result<()> {
        self.inner.vm.remove_snapshot_files(id, sid).await?;
        self.inner.store.delete_snapshot(sid).await
    }

    /// Brings the site back to snapshot `sid`, running. Returns at once (the hosting busy).
    pub async fn restore_snapshot(&self, actor: &Actor, id: i32, sid: i32) -> Result<HostingView> {
        if let Some(node) = self.other_node_of(actor, id).await? {
            return Box::pin(node.restore_snapshot(actor, id, sid)).await;
        }
        self.inner.store.owned(actor, id).await?;
        let snap = self.snapshot_of(id, sid).await?;
        if snap.state != SnapshotState::Ready {
            return Err(Error::conflict(None, format!("snapshot '{}' is still being taken", snap.name)));
        }
        let lease = self.begin(id, Operation::RestoreSnapshot).await?;
        let row = self.inner.store.require(id).await?;
        let msg = format!("Restoring snapshot '{}'", snap.name);
        self.event(&row, EventKind::Action, None, EventStatus::Started, msg, None).await;
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(err) = this.run_restore(lease, sid, row.state).await {
                tracing::error!(hosting_id = id, snapshot_id = sid, %err, "snapshot restore failed");
            }
        });
        self.view(&row).await
    }

    async fn run_restore(&self, lease: Lease, sid: i32, before: HostingState) -> Result<()> {
        let t = Instant::now();
        let id = lease.hosting_id();
        let row = self.inner.store.require(id).await?;
        let name = self.snapshot_of(id, sid).await.map(|s| s.name).unwrap_or_default();
        let spec = self.vm_spec(&row)?;
        let vm = &self.inner.vm;
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
            return self.finish(lease, before, Some(reason.clone()), reason, t).await;
        }
        // 3. The disks swap and the snapshot's memory is restored.
        self.inner.ssh_wakers.release(id).await;
        let fail = self.inner.faults.take_snapshot_fault();
        let restored = async {
            vm.swap_in_staged_disk(id).await?;
            if fail {
                return Err(crate::vm::VmError::Invalid("the restore failed (injected failure)".into()).into());
            }
            vm.restore_snapshot_memory(id, sid, spec.http_port, spec.ssh_port).await?;
            self.wait_ready(&row).await
        }
        .await;
        match restored {
            Ok(()) => {
                vm.drop_previous_disk(id).await;
                let _ = vm.discard_saved_state(id).await;
                self.sync_clock_later(id);
                let msg = format!("Snapshot '{name}' restored ({:.1} s)", t.elapsed().as_secs_f64());
                self.finish(lease, HostingState::Running, None, msg, t).await
            }
            Err(err) => {
                let why = describe(&err);
                let _ = vm.destroy(id).await;
                let back = vm.swap_back_disk(id).await;
                let state = match (back, before) {
                    (Err(_), _) => HostingState::Stopped,
                    (Ok(_), HostingState::Running) => match self.bring_up(id).await {
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
                self.finish(lease, state, Some(reason.clone()), reason, t).await?;
                if state == HostingState::Sleeping {
                    self.open_ssh_waker(id).await;
                }
                Ok(())
            }
        }
    }

    /// Deletes a snapshot (its files and row). 409 while the site is busy (a snapshot or a
    /// restore may be using it).
    pub async fn delete_snapshot(&self, actor: &Actor, id: i32, sid: i32) -> Result<()> {
        if let Some(node) = self.other_node_of(actor, id).await? {
            return Box::pin(node.delete_snapshot(actor, id, sid)).await;
        }
        let row = self.inner.store.owned(actor, id).await?;
        let snap = self.snapshot_of(id, sid).await?;
        let busy = || Error::Busy(format!("'{}' is busy; try again when it finishes", row.slug));
        if row.operation.is_some() {
            return Err(busy());
        }
        // A short lease of our own (a reconciliation look may hold it for a moment: wait that out).
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        let (now, lease) = loop {
            match self.inner.store.look(id).await? {
                Some((now, lease)) if now.operation.is_none() => break (now, lease),
                Some((_, lease)) => {
                    self.inner.store.release(&lease).await?;
                    return Err(busy());
                }
                None if tokio::time::Instant::now() < deadline => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                None => return Err(busy()),
            }
        };
        let res = self.forget_snapshot(id, sid).await;
        self.inner.store.release(&lease).await?;
        res?;
        let msg = format!("Snapshot '{}' deleted", snap.name);
        self.event(&now, EventKind::Action, None, EventStatus::Succeeded, msg, None).await;
        Ok(())
    }

    /// A deleted hosting's snapshot rows (its folder, with their files, is gone already).
    pub(super) async fn delete_snapshot_rows(&self, id: i32) -> Result<()> {
        self.inner.store.delete_snapshots_of(id).await
    }

    /// How many snapshots a user has (tests and the dashboard's hints).
    pub async fn snapshot_count(&self, user_id: i32) -> Result<u64> {
        self.inner.store.snapshot_count(user_id).await
    }

    /// Reconciliation of one live hosting, under its look lease (no operation runs on it):
    /// an interrupted snapshot or restore is settled, then rows and files are made to agree.
    pub(super) async fn reconcile_snapshots(&self, row: &HostingRow) {
        let id = row.id;
        let vm = &self.inner.vm;
        let rows = self.snapshot_rows(id).await.unwrap_or_default();
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
                    self.inner.ssh_wakers.release(id).await;
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
                if self.forget_snapshot(id, s.id).await.is_ok() {
                    let msg = if gone {
                        format!("Snapshot '{}' lost its files and was removed", s.name)
                    } else {
                        format!("Snapshot '{}' was interrupted (service restart) and was removed", s.name)
                    };
                    self.event(row, EventKind::Action, None, EventStatus::Failed, msg, None).await;
                }
            }
        }
        for sid in vm.snapshot_ids_on_disk(id).await {
            if !rows.iter().any(|s| s.id == sid) {
                let _ = vm.remove_snapshot_files(id, sid).await;
            }
        }
    }
}
