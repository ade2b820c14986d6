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
use crate::accounts::Actor;
use crate::hosting::cx::Cx;
use crate::hosting::lifecycle::begin;
use crate::store::{HostingRow, SnapshotRow};
use crate::hosting::saga::site::vm_spec;
use vmw_types::{EventKind, EventStatus, HostingState, Operation};
use crate::{Error, Result};
pub use vmw_types::{SnapshotState, SnapshotView};

mod reconcile;
mod restore;
mod take;
pub(crate) mod under_lease;

pub(crate) use reconcile::reconcile_snapshots;

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

pub(crate) fn view(m: &SnapshotRow) -> SnapshotView {
    SnapshotView {
        id: m.id,
        hosting_id: m.hosting_id,
        name: m.name.clone(),
        state: m.state,
        size_bytes: m.size_bytes,
        created_at: m.created_at,
    }
}

/// The hosting's snapshots, oldest first (the caller checked the actor may see it).
pub(crate) async fn list(cx: &Cx, id: i32) -> Result<Vec<SnapshotView>> {
    Ok(snapshot_rows(cx, id).await?.iter().map(view).collect())
}

pub(crate) async fn snapshot_rows(cx: &Cx, id: i32) -> Result<Vec<SnapshotRow>> {
    cx.store.snapshots_of(id).await
}

/// Snapshot `sid` of hosting `id` (which the caller was checked to see).
pub(crate) async fn snapshot_of(cx: &Cx, id: i32, sid: i32) -> Result<SnapshotRow> {
    cx.store.snapshot_of(id, sid).await?.ok_or(Error::NotFound("snapshot"))
}

/// Takes a snapshot of a site (disk and memory): a running one pauses for it, a sleeping or
/// stopped one keeps sleeping (its saved memory is copied). Returns at once with the new
/// snapshot `taking`. 409 when the site is busy, has no memory (powered off, failed), or
/// the quota is used up.
pub(crate) async fn take(cx: &Cx, actor: &Actor, id: i32, name: &str) -> Result<SnapshotView> {
    let name = check_snapshot_name(name)?;
    let row = cx.store.owned(actor, id).await?;
    // The same refusals as any operation (busy, or the wrong state), before a row exists.
    if let Some(op) = row.operation {
        return Err(Error::Busy(format!("'{}' is busy: {} is in progress; try again when it finishes", row.slug, op.as_str())));
    }
    let memory_kept = match row.state {
        HostingState::Running => true,
        HostingState::Sleeping | HostingState::Stopped => cx.vm.has_managed_save(id).await?,
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
        HostingState::Running => vm_spec(cx, &row)?.memory_mib << 20,
        _ => cx.vm.saved_memory_bytes(id).await,
    };
    let estimate = memory + cx.vm.disk_bytes(id).await;
    // The lease first: a `taking` row is only ever seen without one after a crash (which
    // reconciliation then cleans up).
    let lease = begin(cx, id, Operation::Snapshot).await?;
    // Read again under the lease: what the site is now (a running one may have fallen asleep).
    let row = cx.store.require(id).await?;
    let snap = match take::insert_snapshot(cx, id, owner, &name, estimate).await {
        Ok(s) => s,
        Err(e) => {
            // Refused (the name, the quota): the site is left in the state it is in.
            cx.store.finish(&lease, row.state, row.state_reason.clone()).await?;
            return Err(e);
        }
    };
    let msg = if row.state == HostingState::Running {
        format!("Taking snapshot '{name}' (the site pauses for a few seconds)")
    } else {
        format!("Taking snapshot '{name}' of its saved memory and disk (it stays {})", row.state)
    };
    cx.event(&row, EventKind::Action, None, EventStatus::Started, msg, None).await;
    let cx = cx.clone();
    let sid = snap.id;
    tokio::spawn(async move {
        cx.faults().before_act().await;
        if let Err(err) = take::run_take(&cx, lease, sid).await {
            tracing::error!(hosting_id = id, snapshot_id = sid, %err, "snapshot failed");
        }
    });
    Ok(view(&snap))
}

/// Brings the site back to snapshot `sid`, running. Returns at once (the hosting busy).
pub(crate) async fn restore(cx: &Cx, actor: &Actor, id: i32, sid: i32) -> Result<HostingRow> {
    cx.store.owned(actor, id).await?;
    let snap = snapshot_of(cx, id, sid).await?;
    if snap.state != SnapshotState::Ready {
        return Err(Error::conflict(None, format!("snapshot '{}' is still being taken", snap.name)));
    }
    let lease = begin(cx, id, Operation::RestoreSnapshot).await?;
    let row = cx.store.require(id).await?;
    let msg = format!("Restoring snapshot '{}'", snap.name);
    cx.event(&row, EventKind::Action, None, EventStatus::Started, msg, None).await;
    let (cx, before) = (cx.clone(), row.state);
    tokio::spawn(async move {
        if let Err(err) = restore::run_restore(&cx, lease, sid, before).await {
            tracing::error!(hosting_id = id, snapshot_id = sid, %err, "snapshot restore failed");
        }
    });
    Ok(row)
}

/// Deletes a snapshot (its files and row). 409 while the site is busy (a snapshot or a
/// restore may be using it).
pub(crate) async fn delete(cx: &Cx, actor: &Actor, id: i32, sid: i32) -> Result<()> {
    let row = cx.store.owned(actor, id).await?;
    let snap = snapshot_of(cx, id, sid).await?;
    let busy = || Error::Busy(format!("'{}' is busy; try again when it finishes", row.slug));
    if row.operation.is_some() {
        return Err(busy());
    }
    // A short lease of our own (a reconciliation look may hold it for a moment: wait that out).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let (now, lease) = loop {
        match cx.store.look(id).await? {
            Some((now, lease)) if now.operation.is_none() => break (now, lease),
            Some((_, lease)) => {
                cx.store.release(&lease).await?;
                return Err(busy());
            }
            None if tokio::time::Instant::now() < deadline => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            None => return Err(busy()),
        }
    };
    let res = forget_snapshot(cx, id, sid).await;
    cx.store.release(&lease).await?;
    res?;
    let msg = format!("Snapshot '{}' deleted", snap.name);
    cx.event(&now, EventKind::Action, None, EventStatus::Succeeded, msg, None).await;
    Ok(())
}

/// Removes a snapshot's files and row.
pub(crate) async fn forget_snapshot(cx: &Cx, id: i32, sid: i32) -> Result<()> {
    cx.vm.remove_snapshot_files(id, sid).await?;
    cx.store.delete_snapshot(sid).await
}

/// A deleted hosting's snapshot rows (its folder, with their files, is gone already).
pub(crate) async fn delete_snapshot_rows(cx: &Cx, id: i32) -> Result<()> {
    cx.store.delete_snapshots_of(id).await
}

/// How many snapshots a user has (tests and the dashboard's hints).
pub(crate) async fn snapshot_count(cx: &Cx, user_id: i32) -> Result<u64> {
    cx.store.snapshot_count(user_id).await
}
