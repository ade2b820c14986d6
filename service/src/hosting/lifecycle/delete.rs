//! Deleting a hosting: everything it holds is removed (every undo, in reverse), then its row.
use std::time::Instant;

use super::{domains, snapshots};
use crate::hosting::cx::Cx;
use crate::hosting::saga::runner::scrub;
use crate::hosting::saga::site::reroute_user_path;
use crate::store::Lease;
use vmw_types::{EventKind, EventStatus, HostingState};
use crate::Result;

/// Removes everything the hosting holds, then its row. A spare has no owner to tell.
pub(crate) async fn run_delete(cx: &Cx, lease: Lease) -> Result<()> {
    let t = Instant::now();
    let id = lease.hosting_id();
    let row = cx.store.require(id).await?;
    let errors = scrub(cx, &lease).await;
    if !errors.is_empty() {
        let reason = format!("Delete incomplete: {}. Press delete again to retry.", errors.join("; "));
        return cx.finish(lease, HostingState::Failed, Some(reason.clone()), reason, t).await;
    }
    // The scrub released the ports (AllocatePorts' undo) and removed the snapshots' files.
    snapshots::delete_snapshot_rows(cx, id).await?;
    // Its custom domains' certificates (files and rows), then the domains.
    domains::forget_domains_of(cx, id).await?;
    cx.store.delete(&lease).await?;
    let ms = Some(t.elapsed().as_millis() as i64);
    let msg = format!("Hosting '{}' deleted", row.slug);
    cx.event(&row, EventKind::State, None, EventStatus::Deleted, msg, ms).await;
    cx.shared.metrics.forget(id);
    if let Some(user_id) = row.user_id {
        reroute_user_path(cx, user_id).await;
    }
    Ok(())
}
