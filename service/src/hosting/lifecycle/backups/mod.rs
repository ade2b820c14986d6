//! "Back up now" for a site (issue 31): its files captured (`vm::capture`), sent to the backup
//! repository with restic (`crate::backup`), one row per backup (`store::backups`).
//!
//! - A backup holds the hosting's lease (`Operation::Backup`) from the capture to the end of
//!   the upload: nothing else runs on the site meanwhile, others get 409. The site's state does
//!   not change: a running site keeps running (its filesystems frozen for the copy, at most a
//!   second or two), a sleeping or stopped one is not woken (a visit meanwhile waits for the
//!   backup to end, then wakes it).
//! - The row is made `running` under the lease; it ends `succeeded` (with restic's snapshot
//!   and the bytes added) or `failed` (with the reason). A crash leaves it `running`: the next
//!   backup of the site marks it failed and removes its staging folder.
//! - Rows outlive their site (`hosting_id` NULL, slug and owner kept): its backups stay in the
//!   repository, for the restore layer.
use crate::accounts::Actor;
use crate::hosting::cx::Cx;
use crate::hosting::lifecycle::begin;
use crate::store::BackupRow;
use crate::{Error, Result};
pub use vmw_types::BackupTrigger;
use vmw_types::{EventKind, EventStatus, HostingState, Operation};
pub use vmw_types::{BackupSource, BackupState, BackupView, BackupsOverview};

pub(crate) mod download;
pub(crate) mod materialize;
pub(crate) mod recover;
mod repo;
mod restore;
pub(crate) mod restore_new;
mod restore_warm;
pub(crate) mod restore_node;
mod take;
pub(crate) mod plan;
pub(crate) mod quota;
pub(crate) mod retention;
pub(crate) mod schedule;
pub(crate) mod scheduler;

pub(crate) use repo::BackupRepo;
pub use recover::RecoveryReport;
pub(crate) use restore::{restorable, restore};
pub use download::{BackupDownload, DOWNLOADS_PER_NODE};

pub(crate) fn view(b: &BackupRow) -> BackupView {
    BackupView {
        id: b.id,
        hosting_id: b.hosting_id,
        slug: b.slug.clone(),
        state: b.state,
        trigger: b.trigger,
        captured_from: b.captured_from,
        with_memory: b.with_memory,
        snapshot_id: b.snapshot_id.clone(),
        base_id: b.base_id.clone(),
        started_at: b.started_at,
        finished_at: b.finished_at,
        bytes_added: b.bytes_added,
        bytes_total: b.bytes_total,
        error: b.error.clone(),
    }
}

/// Backup `bid` of hosting `id` (which the caller was checked to see).
pub(crate) async fn backup_of(cx: &Cx, id: i32, bid: i32) -> Result<BackupView> {
    match cx.store.backup(bid).await? {
        Some(b) if b.hosting_id == Some(id) => Ok(view(&b)),
        _ => Err(Error::NotFound("backup")),
    }
}

/// The hosting's backups, newest first (the caller checked the actor may see it).
pub(crate) async fn list(cx: &Cx, id: i32) -> Result<Vec<BackupView>> {
    Ok(cx.store.backups_of(id).await?.iter().map(view).collect())
}

pub(crate) async fn overview(cx: &Cx, id: i32) -> Result<BackupsOverview> {
    let backups = list(cx, id).await?;
    let last_success = backups.iter().find(|b| b.state == BackupState::Succeeded).cloned();
    let schedule = Some(schedule::view(cx, &cx.store.require(id).await?).await?);
    Ok(BackupsOverview { backups, last_success, repository_on_node_disk: cx.shared.backup_repo.shares_node_disk(), schedule })
}

/// A crash's leftovers of hosting `id`'s backups (called by the holder of its lease, so none
/// is being made): the rows still `running` failed, their staging folders (and the snapshot
/// taken for one) removed.
pub(crate) async fn abandoned(cx: &Cx, id: i32) -> Result<()> {
    for stale in cx.store.fail_running_backups_of(id, "the service stopped while it ran").await? {
        tracing::warn!(hosting_id = id, backup_id = stale, "a backup was cut short by the service stopping: marked failed");
        let _ = tokio::fs::remove_dir_all(take::staging_dir(cx, stale)).await;
        let _ = cx.vm.remove_snapshot_files(id, -stale).await;
    }
    Ok(())
}

/// Backs up a site now: a running one keeps running (or, `with_memory`, pauses a few seconds
/// for a snapshot of its memory and disk), a sleeping or stopped one is not woken. Returns at
/// once with the new backup `running`. 409 while another operation runs on the site, or in a
/// state a backup cannot begin from (failed, being made or deleted).
pub(crate) async fn take(cx: &Cx, actor: &Actor, id: i32, with_memory: bool, trigger: BackupTrigger) -> Result<BackupView> {
    let row = cx.store.owned(actor, id).await?;
    if let Some(op) = row.operation {
        return Err(Error::Busy(format!("'{}' is busy: {} is in progress; try again when it finishes", row.slug, op.as_str())));
    }
    quota::check(cx, row.user_id.unwrap_or(actor.user_id)).await?;
    let lease = begin(cx, id, Operation::Backup).await?;
    let row = cx.store.require(id).await?;
    let owner = row.user_id.unwrap_or(actor.user_id);
    let made = async {
        abandoned(cx, id).await?;
        cx.store.insert_backup(&row, owner, with_memory && row.state == HostingState::Running, trigger).await
    }
    .await;
    let b = match made {
        Ok(b) => b,
        Err(e) => {
            cx.store.finish(&lease, row.state, row.state_reason.clone()).await?;
            return Err(e);
        }
    };
    let msg = match (row.state, with_memory) {
        (HostingState::Running, true) => "Backing up its memory and disk (the site pauses a few seconds)".to_owned(),
        (HostingState::Running, false) => "Backing up (the site keeps running)".to_owned(),
        (state, _) => format!("Backing up its saved files (it stays {state})"),
    };
    cx.event(&row, EventKind::Action, None, EventStatus::Started, msg, None).await;
    let cx = cx.clone();
    let bid = b.id;
    let with_memory = b.with_memory;
    tokio::spawn(async move {
        cx.faults().before_act().await;
        if let Err(err) = take::run_take(&cx, lease, bid, with_memory).await {
            tracing::error!(hosting_id = id, backup_id = bid, %err, "backup failed");
        }
    });
    Ok(view(&b))
}
