//! start / stop / power off / restart: each under the hosting's lease, settled in a state
//! with the reason, and told to the owner.
use std::time::{Duration, Instant};

use crate::hosting::cx::Cx;
use crate::hosting::saga::site::{describe, site_route, vm_spec};
use crate::hosting::saga::start::{bring_up, release_ssh_waker};
use crate::store::Lease;
use vmw_types::HostingState;
use crate::Result;

const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) async fn run_start(cx: &Cx, lease: Lease) -> Result<()> {
    let t = Instant::now();
    let id = lease.hosting_id();
    let restored = cx.vm.has_managed_save(id).await.unwrap_or(false);
    match boot(cx, id).await {
        Ok(()) => {
            if restored {
                cx.guest().sync_clock_later(&cx.vm, id);
            }
            let msg = if restored { "Started: restored from disk" } else { "Started (a full boot)" };
            cx.finish(lease, HostingState::Running, None, msg.into(), t).await
        }
        Err(err) => {
            let _ = cx.vm.destroy(id).await;
            let reason = format!("Start failed: {}", describe(&err));
            cx.finish(lease, HostingState::Stopped, Some(reason.clone()), reason, t).await
        }
    }
}

/// Defines (if the domain went missing), starts and waits for readiness.
async fn boot(cx: &Cx, id: i32) -> Result<()> {
    let row = cx.store.require(id).await?;
    let spec = vm_spec(cx, &row)?;
    cx.vm.define(&spec).await?;
    bring_up(cx, id).await?;
    // The route may have been dropped by a failed reload; make sure it is there.
    if !cx.proxy().site_file(id).exists() {
        let route = site_route(cx, &row).await?;
        cx.proxy().add_route(&route).await?;
    }
    Ok(())
}

/// Stop saves the VM's memory to disk (its RAM is freed) so that start restores it.
pub(crate) async fn run_stop(cx: &Cx, lease: Lease) -> Result<()> {
    let (t, id) = (Instant::now(), lease.hosting_id());
    // A sleeping site is already saved: it only stops answering visits.
    let res = if released_if_asleep(cx, id).await? { Ok(()) } else { cx.vm.managed_save(id).await };
    settle_halt(cx, lease, res, t, "Stopped: saved to disk (start restores it in under a second)", "Stop").await
}

/// A real power-off (ACPI shutdown, forced after a while): the next start boots.
pub(crate) async fn run_power_off(cx: &Cx, lease: Lease) -> Result<()> {
    let (t, id) = (Instant::now(), lease.hosting_id());
    // A sleeping VM has no guest to shut down: dropping its saved state is the power-off.
    let res = if released_if_asleep(cx, id).await? { cx.vm.discard_saved_state(id).await } else { cx.vm.shutdown(id, SHUTDOWN_TIMEOUT).await };
    settle_halt(cx, lease, res, t, "Powered off (the next start is a full boot)", "Power off").await
}

/// Whether the site sleeps; if so its SSH port is given back (a stopped site wakes on nothing).
async fn released_if_asleep(cx: &Cx, id: i32) -> Result<bool> {
    let row = cx.store.require(id).await?;
    let asleep = row.state == HostingState::Sleeping;
    if asleep {
        release_ssh_waker(cx, &row, false).await;
    }
    Ok(asleep)
}

/// A stop or power-off ended: stopped, or still running with the reason.
async fn settle_halt(
    cx: &Cx,
    lease: Lease,
    res: std::result::Result<(), crate::vm::VmError>,
    t: Instant,
    done: &str,
    what: &str,
) -> Result<()> {
    match res {
        // The reason stays on the hosting: the API and the page say how it was stopped.
        Ok(()) => cx.finish(lease, HostingState::Stopped, Some(done.into()), done.into(), t).await,
        Err(err) => {
            let reason = format!("{what} failed: {}", describe(&err.into()));
            cx.finish(lease, HostingState::Running, Some(reason.clone()), reason, t).await
        }
    }
}

pub(crate) async fn run_restart(cx: &Cx, lease: Lease) -> Result<()> {
    let t = Instant::now();
    let id = lease.hosting_id();
    let res = async {
        // A real reboot: a stopped VM's saved memory is dropped, not restored.
        cx.vm.shutdown(id, SHUTDOWN_TIMEOUT).await?;
        cx.vm.discard_saved_state(id).await?;
        boot(cx, id).await
    }
    .await;
    match res {
        Ok(()) => cx.finish(lease, HostingState::Running, None, "Restarted".into(), t).await,
        Err(err) => {
            let _ = cx.vm.destroy(id).await;
            let reason = format!("Restart failed: {}", describe(&err));
            cx.finish(lease, HostingState::Stopped, Some(reason.clone()), reason, t).await
        }
    }
}
