//! Putting a site to sleep: its VM is saved to disk like a stop, and it lands in `sleeping`;
//! while it sleeps the app listens on its SSH port (`ssh_waker`). Why sites sleep and how they
//! wake: see `visit`.
use std::net::SocketAddr;
use std::time::Instant;

use crate::hosting::cx::Cx;
use crate::hosting::fanout::Note;
use crate::hosting::saga::site::describe;
use crate::hosting::ssh_waker::{self, Wake};
use crate::store::Lease;
use vmw_types::HostingState;
use crate::Result;

/// What a sleeping site's state reason says (the dashboard's badge reads it too).
pub const ASLEEP: &str = "Asleep: wakes on the next visit";

/// Saves the VM to disk; the site sleeps until its next visit. Ok(true) when it went to
/// sleep (its SSH waker is the caller's to open: `visit::sleep_site`), Ok(false) when the save
/// failed and it runs on with the reason.
pub(crate) async fn run_sleep(cx: &Cx, lease: Lease, why: String) -> Result<bool> {
    let t = Instant::now();
    let id = lease.hosting_id();
    match cx.vm.sleep_save(id).await {
        Ok(sizes) => {
            if let Some(c) = sizes {
                tracing::debug!(hosting_id = id, raw = c.raw_bytes, compressed = c.compressed_bytes, "saved memory compressed");
            }
            cx.finish(lease, HostingState::Sleeping, Some(ASLEEP.into()), why, t).await?;
            crate::telemetry::record_sleep(true, t.elapsed().as_secs_f64());
            Ok(true)
        }
        Err(err) => {
            crate::telemetry::record_sleep(false, t.elapsed().as_secs_f64());
            let reason = format!("Sleep failed: {}", describe(&err.into()));
            cx.finish(lease, HostingState::Running, Some(reason.clone()), reason, t).await?;
            Ok(false)
        }
    }
}

/// Listens on a sleeping site's SSH port; a connection that identifies itself as SSH calls
/// `wake` (`ssh_waker`). Only the leader listens: another replica asks it to.
pub(crate) async fn open_ssh_waker(cx: &Cx, id: i32, wake: Wake) {
    if cx.events().fanout().enabled() && !cx.is_leader() {
        cx.events().fanout().send(Note::OpenSshWaker { hosting_id: id }).await;
        return;
    }
    let Ok(Some(row)) = cx.store.get(id).await else { return };
    let Some(port) = row.ssh_port else { return };
    // libvirt's test driver: no forward to hand the port to.
    if row.state != HostingState::Sleeping || !cx.guest().has_forwards() {
        return;
    }
    let addr = SocketAddr::new(cx.cfg.forward_bind, port as u16);
    let bounds = ssh_waker::Bounds {
        per_site: cx.cfg.ssh_waker_held_per_site.max(1),
        per_source: cx.cfg.ssh_waker_held_per_source.max(1),
        ident_wait: ssh_waker::IDENT_WAIT,
    };
    if let Err(err) = cx.shared.ssh_wakers.open(id, addr, bounds, wake) {
        tracing::warn!(hosting_id = id, %addr, %err, "cannot listen on a sleeping site's SSH port: SSH will not wake it");
    }
}
