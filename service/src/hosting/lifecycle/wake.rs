//! Waking a sleeping site: its VM is restored from disk (see `visit` for who asks).
use std::time::Instant;

use crate::db::now_ms;
use crate::hosting::cx::Cx;
use crate::hosting::saga::site::describe;
use crate::hosting::saga::start::bring_up;
use crate::store::Lease;
use vmw_types::HostingState;
use crate::Result;

/// Restores a sleeping site. A restore that fails leaves it stopped with the reason (its
/// saved state is kept: start tries again), not asleep: visitors would only wake it again.
pub(crate) async fn run_wake(cx: &Cx, lease: Lease, why: &str) -> Result<()> {
    let t = Instant::now();
    let id = lease.hosting_id();
    match bring_up(cx, id).await {
        Ok(()) => {
            let _ = cx.store.mark_active(id, now_ms()).await;
            cx.guest().sync_clock_later(&cx.vm, id);
            crate::telemetry::record_wake(true, t.elapsed().as_secs_f64());
            let msg = format!("Awake: {why} (restored from disk in {:.1} s)", t.elapsed().as_secs_f64());
            cx.finish(lease, HostingState::Running, None, msg, t).await
        }
        Err(err) => {
            crate::telemetry::record_wake(false, t.elapsed().as_secs_f64());
            let _ = cx.vm.destroy(id).await;
            let reason = format!("Wake failed: {}; press start to try again", describe(&err));
            cx.finish(lease, HostingState::Stopped, Some(reason.clone()), reason, t).await
        }
    }
}
