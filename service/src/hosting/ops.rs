//! start / stop / restart / delete: one operation at a time per hosting (the store's lease),
//! run in the background; the call returns as soon as the operation has begun.
use std::time::{Duration, Instant};

use super::provision::describe;
use super::store::{Lease, Refusal};
use super::{EventKind, EventStatus, HostingService, HostingState, HostingView, Operation};
use crate::accounts::Actor;
use crate::{Error, Result};

const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an operation waits for a reconciliation look at the hosting to end.
pub(super) const LOOK_PATIENCE: Duration = Duration::from_secs(5);

impl HostingService {
    /// Starts `op` on a hosting the actor owns. Conflicts (another operation running, or a
    /// state the operation cannot start from) are refused with a specific message.
    /// Runs on the hosting's node (refused while that node is unreachable).
    pub async fn action(&self, actor: &Actor, id: i32, op: Operation) -> Result<HostingView> {
        if op == Operation::Create {
            return Err(Error::validation("action", "use create to make a new hosting"));
        }
        if matches!(op, Operation::Snapshot | Operation::RestoreSnapshot) {
            return Err(Error::validation("action", "use the snapshot calls to take or restore a snapshot"));
        }
        let row = self.inner.store.owned(actor, id).await?;
        self.on_live(row.node_id)?.action_here(id, op).await
    }

    async fn action_here(&self, id: i32, op: Operation) -> Result<HostingView> {
        let lease = if op == Operation::Wake { self.begin_wake(id).await? } else { self.begin(id, op).await? };
        let row = self.inner.store.require(id).await?;
        let msg = format!("{} requested", op.label());
        self.event(&row, EventKind::Action, None, EventStatus::Started, msg, None).await;
        let this = self.clone();
        tokio::spawn(async move {
            let delay = this.inner.faults.op_delay();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let res = match op {
                Operation::Start => this.run_start(lease).await,
                Operation::Stop => this.run_stop(lease).await,
                Operation::PowerOff => this.run_power_off(lease).await,
                Operation::Restart => this.run_restart(lease).await,
                Operation::Delete => this.run_delete(lease).await,
                Operation::Sleep => this.run_sleep(lease, "Asleep: put to sleep by hand; the next visit wakes it".into()).await,
                Operation::Wake => this.run_wake(lease, "woken by hand").await,
                Operation::Create | Operation::Snapshot | Operation::RestoreSnapshot => Ok(()),
            };
            if let Err(err) = res {
                tracing::error!(hosting_id = id, op = %op, %err, "operation failed");
            }
        });
        self.view(&row).await
    }

    /// Takes the hosting's lease for `op`, waiting out a reconciliation look for a moment;
    /// refuses at once when another operation runs or the state does not allow it.
    pub(super) async fn begin(&self, id: i32, op: Operation) -> Result<Lease> {
        let deadline = tokio::time::Instant::now() + LOOK_PATIENCE;
        loop {
            match self.inner.store.begin(id, op).await? {
                Ok((_, lease)) => return Ok(lease),
                Err(r) => refused(op, r, deadline)?,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Deletes every hosting of the actor and waits until they are gone (account deletion).
    pub async fn delete_all_for_user(&self, actor: &Actor, timeout: Duration) -> Result<()> {
        let rows = self.inner.store.list_for_user(actor.user_id).await?;
        for row in &rows {
            if row.operation.is_some() {
                self.wait_settled(actor, row.id, timeout).await?;
            }
            match self.action(actor, row.id, Operation::Delete).await {
                Ok(_) | Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        for row in &rows {
            if self.wait_settled(actor, row.id, timeout).await?.is_some() {
                return Err(Error::Busy(format!("hosting '{}' could not be deleted", row.slug)));
            }
        }
        Ok(())
    }

    /// Settles the operation under `lease` in `state` and tells the owner.
    pub(super) async fn finish(&self, lease: Lease, state: HostingState, reason: Option<String>, message: String, t: Instant) -> Result<()> {
        let row = self.inner.store.finish(&lease, state, reason).await?;
        let ms = Some(t.elapsed().as_millis() as i64);
        self.event(&row, EventKind::State, None, state.into(), message, ms).await;
        Ok(())
    }

    async fn run_start(&self, lease: Lease) -> Result<()> {
        let t = Instant::now();
        let id = lease.hosting_id();
        let restored = self.inner.vm.has_managed_save(id).await.unwrap_or(false);
        match self.boot(id).await {
            Ok(()) => {
                if restored {
                    self.sync_clock_later(id);
                }
                let msg = if restored { "Started: restored from disk" } else { "Started (a full boot)" };
                self.finish(lease, HostingState::Running, None, msg.into(), t).await
            }
            Err(err) => {
                let _ = self.inner.vm.destroy(id).await;
                let reason = format!("Start failed: {}", describe(&err));
                self.finish(lease, HostingState::Stopped, Some(reason.clone()), reason, t).await
            }
        }
    }

    /// Defines (if the domain went missing), starts and waits for readiness.
    async fn boot(&self, id: i32) -> Result<()> {
        let row = self.inner.store.require(id).await?;
        let spec = self.vm_spec(&row)?;
        self.inner.vm.define(&spec).await?;
        self.bring_up(id).await?;
        // The route may have been dropped by a failed reload; make sure it is there.
        if !self.inner.proxy.site_file(id).exists() {
            let route = self.site_route(&row).await?;
            self.inner.proxy.add_route(&route).await?;
        }
        Ok(())
    }

    /// Stop saves the VM's memory to disk (its RAM is freed) so that start restores it.
    async fn run_stop(&self, lease: Lease) -> Result<()> {
        let t = Instant::now();
        let id = lease.hosting_id();
        let row = self.inner.store.require(id).await?;
        if row.state == HostingState::Sleeping {
            // Already saved: it only stops answering visits.
            self.release_ssh_waker(&row, false).await;
            let done = "Stopped: saved to disk (start restores it in under a second)";
            return self.finish(lease, HostingState::Stopped, Some(done.into()), done.into(), t).await;
        }
        let res = self.inner.vm.managed_save(id).await;
        self.settle_halt(lease, res, t, "Stopped: saved to disk (start restores it in under a second)", "Stop").await
    }

    /// A real power-off (ACPI shutdown, forced after a while): the next start boots.
    async fn run_power_off(&self, lease: Lease) -> Result<()> {
        let t = Instant::now();
        let id = lease.hosting_id();
        let row = self.inner.store.require(id).await?;
        if row.state == HostingState::Sleeping {
            // A sleeping VM has no guest to shut down: dropping its saved state is the power-off.
            self.release_ssh_waker(&row, false).await;
            let res = self.inner.vm.discard_saved_state(id).await;
            return self.settle_halt(lease, res, t, "Powered off (the next start is a full boot)", "Power off").await;
        }
        let res = self.inner.vm.shutdown(id, SHUTDOWN_TIMEOUT).await;
        self.settle_halt(lease, res, t, "Powered off (the next start is a full boot)", "Power off").await
    }

    /// A stop or power-off ended: stopped, or still running with the reason.
    async fn settle_halt(
        &self,
        lease: Lease,
        res: std::result::Result<(), crate::vm::VmError>,
        t: Instant,
        done: &str,
        what: &str,
    ) -> Result<()> {
        match res {
            // The reason stays on the hosting: the API and the page say how it was stopped.
            Ok(()) => self.finish(lease, HostingState::Stopped, Some(done.into()), done.into(), t).await,
            Err(err) => {
                let reason = format!("{what} failed: {}", describe(&err.into()));
                self.finish(lease, HostingState::Running, Some(reason.clone()), reason, t).await
            }
        }
    }

    async fn run_restart(&self, lease: Lease) -> Result<()> {
        let t = Instant::now();
        let id = lease.hosting_id();
        let res = async {
            // A real reboot: a stopped VM's saved memory is dropped, not restored.
            self.inner.vm.shutdown(id, SHUTDOWN_TIMEOUT).await?;
            self.inner.vm.discard_saved_state(id).await?;
            self.boot(id).await
        }
        .await;
        match res {
            Ok(()) => self.finish(lease, HostingState::Running, None, "Restarted".into(), t).await,
            Err(err) => {
                let _ = self.inner.vm.destroy(id).await;
                let reason = format!("Restart failed: {}", describe(&err));
                self.finish(lease, HostingState::Stopped, Some(reason.clone()), reason, t).await
            }
        }
    }

    /// Removes everything the hosting holds, then its row. A spare has no owner to tell.
    pub(super) async fn run_delete(&self, lease: Lease) -> Result<()> {
        let t = Instant::now();
        let id = lease.hosting_id();
        let row = self.inner.store.require(id).await?;
        let errors = self.scrub(&lease).await;
        if !errors.is_empty() {
            let reason = format!("Delete incomplete: {}. Press delete again to retry.", errors.join("; "));
            return self.finish(lease, HostingState::Failed, Some(reason.clone()), reason, t).await;
        }
        // The scrub released the ports (AllocatePorts' undo) and removed the snapshots' files.
        self.delete_snapshot_rows(id).await?;
        self.inner.store.delete(&lease).await?;
        let ms = Some(t.elapsed().as_millis() as i64);
        let msg = format!("Hosting '{}' deleted", row.slug);
        self.event(&row, EventKind::State, None, EventStatus::Deleted, msg, ms).await;
        self.inner.metrics.forget(id);
        if let Some(user_id) = row.user_id {
            self.reroute_user_path(user_id).await;
        }
        Ok(())
    }

    /// After a user's first site is gone (deleted, or its create failed), `/{user_id}/` moves
    /// to their next live one.
    pub(super) async fn reroute_user_path(&self, user_id: i32) {
        let next = self
            .inner
            .store
            .first_for_user_in(user_id, &[HostingState::Running, HostingState::Stopped, HostingState::Sleeping])
            .await;
        if let Ok(Some(next)) = next {
            if let Ok(route) = self.site_route(&next).await {
                if let Err(err) = self.inner.proxy.add_route(&route).await {
                    tracing::warn!(hosting_id = next.id, %err, "could not move the user path route");
                }
            }
        }
    }
}

/// The error for an operation that could not begin; Ok when only a reconciliation look holds
/// the hosting and `deadline` has not passed (the caller tries again in a moment).
pub(super) fn refused(op: Operation, r: Refusal, deadline: tokio::time::Instant) -> Result<()> {
    match r {
        Refusal::Gone => Err(Error::NotFound("hosting")),
        Refusal::Busy(now) => {
            let running = now.operation.map(|o| o.as_str()).unwrap_or("an operation");
            Err(Error::Busy(format!("'{}' is busy: {running} is in progress; try again when it finishes", now.slug)))
        }
        Refusal::WrongState(now) => Err(Error::conflict(Some("state"), format!("cannot {op} '{}' while it is {}", now.slug, now.state))),
        Refusal::Looked(now) if tokio::time::Instant::now() >= deadline => {
            Err(Error::Busy(format!("'{}' is being checked; try again in a moment", now.slug)))
        }
        Refusal::Looked(_) => Ok(()),
    }
}
