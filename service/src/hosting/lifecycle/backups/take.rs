//! Making one backup, under the site's `Operation::Backup` lease (the site keeps its state):
//! 1. capture into `{data_dir}/backups/staging/{backup id}/` (`vm::capture`): a running site's
//!    disk with its filesystems frozen, a sleeping or stopped one's disk and saved memory as
//!    they are (never woken). A running site whose agent does not freeze, or whose memory was
//!    asked for, goes through a snapshot taken for the purpose (it pauses a few seconds), whose
//!    files are moved into the staging folder;
//! 2. the base disk it backs onto stored once in the repository (a snapshot tagged
//!    `base-{id}`), looked for first;
//! 3. the staging folder sent with restic, tagged `site-{id}`, `user-{uid}`, `base-{base id}`,
//!    `backup-{backup id}`, its progress told as events;
//! 4. the row `succeeded` with what restic added, or `failed` with the reason; the staging
//!    folder is always removed; the site is left as it was.
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::backup::{BackupSummary, Progress, Restic, SnapshotFilter, Tag};
use crate::hosting::cx::Cx;
use crate::hosting::saga::site::{describe, vm_spec, wait_ready};
use crate::store::{BackupDone, HostingRow, Lease};
use crate::vm::{Capture, CaptureOpts, CapturedFrom, VmError};
use crate::{Error, Result};
use vmw_types::{BackupSource, EventKind, EventStatus, HostingState};

/// The staging folder of backup `bid`.
pub(crate) fn staging_dir(cx: &Cx, bid: i32) -> PathBuf {
    cx.cfg.data_dir.join("backups/staging").join(bid.to_string())
}

/// How a backup failed, and what the site is now when that changed (a snapshot whose memory
/// could not be restored leaves it stopped).
struct Failed {
    why: String,
    site: Option<(HostingState, String)>,
}

impl Failed {
    fn of(e: impl Into<Error>) -> Self {
        Self { why: describe(&e.into()), site: None }
    }
}

pub(crate) async fn run_take(cx: &Cx, lease: Lease, bid: i32, with_memory: bool) -> Result<()> {
    let t = Instant::now();
    let id = lease.hosting_id();
    let row = cx.store.require(id).await?;
    let staging = staging_dir(cx, bid);
    let res = back_up(cx, &row, bid, with_memory, &staging).await;
    if let Err(err) = tokio::fs::remove_dir_all(&staging).await
        && err.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(hosting_id = id, backup_id = bid, %err, "could not remove a backup's staging folder");
    }
    let secs = t.elapsed().as_secs_f64();
    match res {
        Ok((sum, bytes_total)) => {
            let done = BackupDone { snapshot_id: sum.snapshot_id.clone(), bytes_added: sum.data_added, bytes_total };
            cx.store.backup_succeeded(bid, &done).await?;
            crate::telemetry::record_backup(id, t.elapsed(), Some(sum.data_added));
            let msg = format!(
                "Backed up: {} added to the repository ({} backed up) in {secs:.1} s; the site stayed {}",
                human_bytes(sum.data_added),
                human_bytes(bytes_total),
                row.state
            );
            tracing::info!(hosting_id = id, backup_id = bid, snapshot = %sum.snapshot_id, bytes_added = sum.data_added, bytes_total, secs, "backup done");
            cx.finish(lease, row.state, row.state_reason.clone(), msg, t).await
        }
        Err(Failed { why, site }) => {
            crate::telemetry::record_backup(id, t.elapsed(), None);
            tracing::warn!(hosting_id = id, backup_id = bid, %why, "backup failed");
            cx.store.backup_failed(bid, &why).await?;
            match site {
                Some((state, reason)) => cx.finish(lease, state, Some(reason.clone()), reason, t).await,
                None => {
                    let msg = format!("Backup failed: {why}; the site is as it was");
                    cx.finish(lease, row.state, row.state_reason.clone(), msg, t).await
                }
            }
        }
    }
}

/// Steps 1 to 3; the bytes of the captured files with restic's summary.
async fn back_up(cx: &Cx, row: &HostingRow, bid: i32, with_memory: bool, staging: &Path) -> std::result::Result<(BackupSummary, u64), Failed> {
    let id = row.id;
    let restic = cx.shared.backup_repo.restic().await.map_err(Failed::of)?;
    make_private_dir(staging).await.map_err(|e| Failed::of(Error::internal(format!("creating {}: {e}", staging.display()))))?;
    step(cx, row, EventStatus::Started, "Step 1 of 2: Capturing the site's files".into()).await;
    let cap = capture(cx, row, bid, with_memory, staging).await?;
    let from = match cap.from {
        CapturedFrom::Running => BackupSource::Running,
        CapturedFrom::Saved => BackupSource::Saved,
        CapturedFrom::PoweredOff => BackupSource::PoweredOff,
    };
    cx.store.backup_captured(bid, from, &cap.base.id, cap.memory.is_some()).await.map_err(Failed::of)?;
    let frozen = cap.frozen_for.map(|d| format!(", filesystems frozen {} ms", d.as_millis())).unwrap_or_default();
    step(cx, row, EventStatus::Succeeded, format!("Step 1 of 2: Captured {} ({}{frozen})", human_bytes(cap.bytes), from.label())).await;
    let host = cx.cfg.node_name.clone();
    store_base_once(cx, restic, &cap, &host).await?;
    let owner = row.user_id.unwrap_or_default();
    let tags = [format!("site-{id}"), format!("user-{owner}"), format!("base-{}", cap.base.id), format!("backup-{bid}")]
        .into_iter()
        .map(Tag::parse)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(Failed::of)?;
    let mut paths = vec![cap.disk.clone()];
    paths.extend(cap.memory.as_ref().map(|(p, _)| p.clone()));
    step(cx, row, EventStatus::Started, "Step 2 of 2: Uploading to the backup repository: 0 %".into()).await;
    let sum = upload(cx, row, restic, &paths, &tags, &host).await.map_err(Failed::of)?;
    Ok((sum, cap.bytes))
}

/// Step 1. Through a snapshot when the memory is asked for on a running site, or when its
/// filesystems could not be frozen.
async fn capture(cx: &Cx, row: &HostingRow, bid: i32, with_memory: bool, staging: &Path) -> std::result::Result<Capture, Failed> {
    let owner = row.user_id.unwrap_or_default();
    if with_memory && row.state == HostingState::Running {
        return capture_through_snapshot(cx, row, bid, staging).await;
    }
    match cx.vm.capture_for_backup(row.id, owner, staging, CaptureOpts::default()).await {
        Ok(cap) => Ok(cap),
        Err(VmError::FreezeFailed { source, .. }) if row.state == HostingState::Running => {
            let msg = format!("The site's filesystems could not be frozen ({source}): taking a snapshot instead (the site pauses a few seconds)");
            step(cx, row, EventStatus::Info, msg).await;
            capture_through_snapshot(cx, row, bid, staging).await
        }
        Err(e) => Err(Failed::of(e)),
    }
}

/// A snapshot of the running site (memory and disk; it pauses for the save and runs again),
/// its files moved into `staging`, the snapshot gone. Its folder is named after the backup
/// (`-{bid}`: never a user snapshot's id), so what a crash leaves is a folder without a row,
/// which snapshot reconciliation removes.
async fn capture_through_snapshot(cx: &Cx, row: &HostingRow, bid: i32, staging: &Path) -> std::result::Result<Capture, Failed> {
    let (id, sid) = (row.id, -bid);
    let spec = vm_spec(cx, row).map_err(Failed::of)?;
    let taken = cx.vm.take_snapshot(id, sid, spec.http_port, spec.ssh_port, false).await;
    let cap = match taken {
        Ok(_) => {
            cx.guest().sync_clock_later(&cx.vm, id);
            let _ = wait_ready(cx, row).await;
            cx.vm.capture_from_snapshot(id, sid, staging).await.map_err(Failed::of)
        }
        Err(fail) if fail.vm_running => Err(Failed::of(fail.error)),
        Err(fail) => {
            let _ = cx.vm.destroy(id).await;
            let why = describe(&fail.error.into());
            let reason = format!("Backup failed: {why}; press start to boot the site again");
            Err(Failed { why, site: Some((HostingState::Stopped, reason)) })
        }
    };
    let _ = cx.vm.remove_snapshot_files(id, sid).await;
    cap
}

/// Step 2: the base disk (and what a restore on a fresh node needs with it) backed up once,
/// unless a snapshot tagged `base-{id}` is there. One at a time in this process, so sites
/// backed up together do not each send it.
async fn store_base_once(cx: &Cx, restic: &Restic, cap: &Capture, host: &str) -> std::result::Result<(), Failed> {
    let tag = Tag::parse(format!("base-{}", cap.base.id)).map_err(Failed::of)?;
    let kind = Tag::parse("kind-base").map_err(Failed::of)?;
    let _one = cx.shared.backup_repo.base_lock().await;
    let filter = SnapshotFilter::tagged([tag.clone(), kind.clone()]);
    if !restic.snapshots(&filter).await.map_err(Failed::of)?.is_empty() {
        return Ok(());
    }
    let files = cx.vm.base_files(&cap.base);
    let t = Instant::now();
    let sum = restic.backup_files(&files, &[tag, kind], host, |_| {}).await.map_err(Failed::of)?;
    tracing::info!(base = %cap.base.id, snapshot = %sum.snapshot_id, bytes_added = sum.data_added, secs = t.elapsed().as_secs_f64(), "base disk stored in the backup repository");
    Ok(())
}

/// Step 3, with an event at every 10 % restic reports.
async fn upload(cx: &Cx, row: &HostingRow, restic: &Restic, paths: &[PathBuf], tags: &[Tag], host: &str) -> Result<BackupSummary> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
    let mut told = 0u32;
    let on_progress = move |p: Progress| {
        let tenth = ((p.percent_done.clamp(0.0, 1.0) * 10.0).floor() as u32) * 10;
        if tenth > told && tenth < 100 {
            told = tenth;
            let _ = tx.send(tenth);
        }
    };
    let tell = async {
        while let Some(pct) = rx.recv().await {
            step(cx, row, EventStatus::Info, format!("Step 2 of 2: Uploading to the backup repository: {pct} %")).await;
        }
    };
    let (sum, ()) = tokio::join!(restic.backup_files(paths, tags, host, on_progress), tell);
    Ok(sum?)
}

async fn step(cx: &Cx, row: &HostingRow, status: EventStatus, msg: String) {
    cx.event(row, EventKind::Action, None, status, msg, None).await;
}

async fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        if let Some(parent) = dir.parent() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(parent)?;
        }
        // A crash's leftover of the same id (ids are not reused, but a restored database may).
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new().mode(0o700).create(&dir)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// `12.3 MiB`.
pub(crate) fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}
