//! Making a VM run with its forwards, from whatever it is (saved, shut off, paused): the
//! `StartVm` unit's action, and what a start, a wake or a snapshot restore waits on.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::site::{vm_spec, wait_answers};
use crate::hosting::cx::Cx;
use crate::hosting::fanout::Note;
use crate::store::HostingRow;
use vmw_types::HostingState;
use crate::Result;

/// Makes the VM run with its forwards, from whatever it is (saved, shut off, paused): the
/// SSH waker gives its port back first (a boot binds the forwards at once, a restore only
/// when `ensure_forwards` adds them), then waits until it answers. Once a restore has
/// returned, held visitors go to the VM while the forwards are added and the probe waits
/// (`restored`).
pub(crate) async fn bring_up(cx: &Cx, id: i32) -> Result<()> {
    let _users_first = cx.foreground.enter();
    let t = Instant::now();
    let (restored, spec, row) = start_vm_only(cx, id).await?;
    let started_ms = t.elapsed().as_millis() as u64;
    let held = &cx.shared.restored;
    if restored {
        held.publish(id, SocketAddr::new(cx.cfg.http_forward_bind, spec.http_port));
    }
    // A boot binds both forwards at once; a restore serves HTTP before its SSH forward.
    let (f, a) = tokio::join!(add_forwards(cx, id, &spec), wait_answers(cx, &row, !restored));
    let up = f.and(a);
    held.clear(id);
    up?;
    tracing::debug!(hosting_id = id, restored, started_ms, answered_ms = t.elapsed().as_millis() as u64, "brought up");
    Ok(())
}

/// Starts (restores, boots or resumes) the VM and gives it its forwards, without waiting.
/// Ok(true) when it was restored from a saved state.
pub(crate) async fn start_vm(cx: &Cx, id: i32) -> Result<bool> {
    let (restored, spec, _) = start_vm_only(cx, id).await?;
    add_forwards(cx, id, &spec).await?;
    Ok(restored)
}

/// The forwards a restored VM lacks (libvirt's test driver has none).
async fn add_forwards(cx: &Cx, id: i32, spec: &crate::vm::VmSpec) -> Result<()> {
    cx.guest().ensure_forwards(&cx.vm, id, spec.http_port, spec.ssh_port).await
}

/// [`start_vm`] without the forwards a restore lacks; also its spec and row.
async fn start_vm_only(cx: &Cx, id: i32) -> Result<(bool, crate::vm::VmSpec, HostingRow)> {
    let row = cx.store.require(id).await?;
    let spec = vm_spec(cx, &row)?;
    let restoring = cx.vm.has_managed_save(id).await.unwrap_or(false);
    if !restoring {
        release_ssh_waker(cx, &row, true).await;
    }
    cx.vm.start(id, spec.priority, spec.http_port).await?;
    if restoring {
        release_ssh_waker(cx, &row, true).await;
    }
    Ok((restoring, spec, row))
}

/// Gives a site's SSH port back: this replica's listener, and (PostgreSQL) the leader's,
/// which listens on sleeping sites' ports. With `wait`, and the site asleep, returns once
/// the port is free (at most 3 s): its VM's forward is about to bind it.
pub(crate) async fn release_ssh_waker(cx: &Cx, row: &HostingRow, wait: bool) {
    cx.shared.ssh_wakers.release(row.id).await;
    let fanout = cx.events().fanout();
    if !fanout.enabled() || row.state != HostingState::Sleeping {
        return;
    }
    let Some(port) = row.ssh_port else { return };
    let addr = SocketAddr::new(cx.cfg.forward_bind, port as u16);
    let free = || std::net::TcpListener::bind(addr).is_ok();
    if wait && free() {
        return;
    }
    fanout.send(Note::ReleaseSshWaker { hosting_id: row.id }).await;
    let until = Instant::now() + Duration::from_secs(3);
    while wait && !free() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
