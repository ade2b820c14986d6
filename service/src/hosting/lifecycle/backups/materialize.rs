//! Materialising a backup: its files brought back from the repository onto this node, ready to
//! be a VM's disk (and memory). Every restore builds on [`materialize`]: in place, as a new
//! site, on another node, the download, and the disaster recovery's `restore-node`.
//!
//! What it does, given a succeeded backup row:
//! 1. the backup's files restored from its restic snapshot into the caller's folder: only
//!    `disk.qcow2` and `memory.save`, each restored by its own `--include` of the path the
//!    backup layer gave restic (`.../backups/staging/{backup id}/{file}`); any other path in the
//!    snapshot refuses the backup, and a restored entry that is not a regular file (a symlink)
//!    is refused too. The repository is not trusted to name paths;
//! 2. the base disk the overlay backs onto made present on this node: found where the overlay
//!    names it (the same node), or where this node keeps bases of that name
//!    (`VmManager::image_build_dir`, `VmManager::golden_folder`), else restored from the
//!    repository's `base-{id}` snapshot into exactly there (a golden's image base too, and the
//!    golden's disk rebased onto it). One base restore at a time per process;
//! 3. the overlay rebased onto the local base (`rebase_overlay`: a no-op path change on the
//!    same node).
//!
//! The saved memory comes back only when the base is where it was when the backup was taken
//! (a delta names its golden's memory by path, libvirt's save names the VM's disk): on another
//! node or data dir the site boots cold from the disk. The caller owns `into` and removes it.
use std::path::{Component, Path, PathBuf};

use crate::backup::{Restic, SnapshotFilter, SnapshotId, Tag};
use crate::hosting::cx::Cx;
use crate::store::BackupRow;
use crate::vm::{BaseKind, backing_of, move_file, plain_name, rebase_overlay};
use crate::{Error, Result};
use vmw_types::BackupState;

/// The overlay's name in a backup and in the materialised folder.
pub(crate) const DISK: &str = "disk.qcow2";
/// The saved memory's name in a backup and in the materialised folder.
pub(crate) const MEMORY: &str = "memory.save";
/// The files a base snapshot may hold (`VmManager::base_files`).
const BASE_FILES: &[&str] = &["base.qcow2", "vmlinuz", "initrd.img", "image.json", "disk.qcow2", "state.save", "golden.json", "golden.xml", "golden.head"];

/// A backup's files on this node.
#[derive(Clone, Debug)]
pub(crate) struct Materialized {
    /// `{into}/disk.qcow2`, backing onto [`Materialized::base`].
    pub disk: PathBuf,
    /// `{into}/memory.save`, when the backup has memory that can be restored here.
    pub memory: Option<PathBuf>,
    /// The local base disk.
    pub base: PathBuf,
    /// Whether the base had to be restored from the repository (it was not on this node).
    pub base_restored: bool,
}

/// Restores backup `b`'s files into `into` (an empty folder of the caller's, under the data
/// dir) as the module docs say. `step` is told each step's text (for events).
pub(crate) async fn materialize(cx: &Cx, b: &BackupRow, into: &Path, step: impl Fn(String)) -> Result<Materialized> {
    let (sid, base_id) = match (&b.state, &b.snapshot_id, &b.base_id) {
        (BackupState::Succeeded, Some(s), Some(base)) => (SnapshotId::parse(s.clone())?, base.clone()),
        _ => return Err(Error::conflict(None, format!("backup {} did not succeed: there is nothing to restore", b.id))),
    };
    let restic = cx.shared.backup_repo.restic().await?;
    step("Downloading the backup from the repository".into());
    let files = restore_backup_files(restic, b.id, &sid, into).await?;
    let disk = into.join(DISK);
    let (original, kind, folder, above) =
        backing_of(&disk).ok_or_else(|| Error::internal(format!("backup {}'s disk is not an overlay on a base disk of ours", b.id)))?;
    let mut local = local_base(cx, kind, &folder, &above)?;
    if kind == BaseKind::Image && local.is_file() && !same_build(restic, &base_id_of(kind, &folder, &above), &original, &local, b.started_at).await? {
        // The image was built again under the same name (a rebuilt data dir): its bytes differ,
        // so the backup's own base comes back beside it, under a name of its own.
        let stamp = &sid.as_str()[..sid.as_str().len().min(8)];
        local = cx.vm.image_build_dir(&format!("{folder}.restored-{stamp}"))?.join("base.qcow2");
        step("This node's image of that name is another build: restoring the backup's own base image beside it".into());
    }
    let id_here = base_id_of(kind, &folder, &above);
    if id_here != base_id {
        return Err(Error::internal(format!("backup {}'s disk backs onto {id_here}, its row says {base_id}", b.id)));
    }
    let mut base_restored = false;
    if !local.is_file() {
        step("Restoring the base image from the repository (it is not on this node)".into());
        let _one = cx.shared.backup_repo.base_lock().await;
        if !local.is_file() {
            restore_base(cx, restic, &base_id, kind, &original, &local, &into.join("base")).await?;
            base_restored = true;
        }
    }
    rebase_overlay(&disk, &local).await?;
    let had_memory = files.memory.is_some();
    let memory = files.memory.filter(|_| original == local && !base_restored);
    if had_memory && memory.is_none() {
        let _ = tokio::fs::remove_file(into.join(MEMORY)).await;
    }
    Ok(Materialized { disk, memory, base: local, base_restored })
}

/// What [`restore_backup_files`] brought.
struct BackupFiles {
    memory: Option<PathBuf>,
}

/// Step 1: the backup's `disk.qcow2` (and `memory.save`) restored and moved to `into`.
async fn restore_backup_files(restic: &Restic, bid: i32, sid: &SnapshotId, into: &Path) -> Result<BackupFiles> {
    let snaps = restic.snapshots(&SnapshotFilter::ids([sid.clone()])).await?;
    let snap = snaps.into_iter().next().ok_or_else(|| Error::internal(format!("backup {bid}'s snapshot {sid} is not in the repository")))?;
    let mut disk_path = None;
    let mut mem_path = None;
    for p in &snap.paths {
        let p = PathBuf::from(p);
        match checked_backup_path(&p, bid) {
            Some(DISK) => disk_path = Some(p),
            Some(MEMORY) => mem_path = Some(p),
            _ => return Err(Error::internal(format!("backup {bid}'s snapshot holds {}, not a file a backup writes", p.display()))),
        }
    }
    let disk_path = disk_path.ok_or_else(|| Error::internal(format!("backup {bid}'s snapshot has no disk")))?;
    let raw = into.join("restic");
    restore_one(restic, sid, &disk_path, &raw, &into.join(DISK)).await?;
    let memory = match mem_path {
        Some(p) => Some(restore_one(restic, sid, &p, &raw, &into.join(MEMORY)).await?),
        None => None,
    };
    let _ = tokio::fs::remove_dir_all(&raw).await;
    Ok(BackupFiles { memory })
}

/// The file name of a path a backup gives restic (`/.../backups/staging/{bid}/{disk.qcow2 |
/// memory.save}`), None for anything else.
fn checked_backup_path(p: &Path, bid: i32) -> Option<&'static str> {
    if !p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir | Component::CurDir)) {
        return None;
    }
    let name = p.file_name()?.to_str()?;
    let dir = p.parent()?;
    let ok = dir.file_name()?.to_str()? == bid.to_string() && dir.parent()?.file_name()?.to_str()? == "staging";
    [DISK, MEMORY].into_iter().find(|n| *n == name).filter(|_| ok)
}

/// Restores the one file `path` of snapshot `sid` under `raw` and moves it to `to`; refused
/// unless it came back as a regular file.
async fn restore_one(restic: &Restic, sid: &SnapshotId, path: &Path, raw: &Path, to: &Path) -> Result<PathBuf> {
    restic.restore(sid, raw, Some(path)).await?;
    let rel = path.strip_prefix("/").map_err(|_| Error::internal(format!("{} is not absolute", path.display())))?;
    let got = raw.join(rel);
    match tokio::fs::symlink_metadata(&got).await {
        Ok(m) if m.file_type().is_file() => {}
        _ => return Err(Error::internal(format!("{} did not come back from the repository as a file", path.display()))),
    }
    move_file(&got, to).await?;
    Ok(to.to_owned())
}

/// Whether the image base at `local` is the build the backup's disk was made on: a base file
/// is never written after its build, so one older than the backup is; a newer one (the image
/// was built again under the same name) is when its `image.json` (which records the build's
/// time) is the one stored with the base in the repository.
async fn same_build(restic: &Restic, base_id: &str, original: &Path, local: &Path, backup_started_ms: i64) -> Result<bool> {
    let modified = tokio::fs::metadata(local).await.ok().and_then(|m| m.modified().ok());
    let modified_ms = modified.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_millis() as i64);
    if modified_ms.is_some_and(|m| m <= backup_started_ms) {
        return Ok(true);
    }
    let tags = [Tag::parse(format!("base-{base_id}"))?, Tag::parse("kind-base")?];
    let Some(snap) = restic.snapshots(&SnapshotFilter::tagged(tags)).await?.pop() else {
        // Nothing to compare with (and nothing to restore instead): take the local one.
        return Ok(true);
    };
    let odir = original.parent().ok_or_else(|| Error::internal("a base disk without a folder"))?;
    let mut stored = Vec::new();
    restic.dump(&SnapshotId::parse(snap.id.clone())?, &odir.join("image.json"), &mut stored).await?;
    let here = local.parent().map(|d| d.join("image.json")).unwrap_or_default();
    Ok(tokio::fs::read(&here).await.is_ok_and(|h| h == stored))
}

/// The base id `capture::base_of` gives a base of this kind in these folders.
fn base_id_of(kind: BaseKind, folder: &str, above: &str) -> String {
    match kind {
        BaseKind::Image => format!("image-{folder}"),
        BaseKind::Golden => format!("golden-{above}-{folder}"),
    }
}

/// Where this node keeps the base of this kind in these folders.
fn local_base(cx: &Cx, kind: BaseKind, folder: &str, above: &str) -> Result<PathBuf> {
    Ok(match kind {
        BaseKind::Image => cx.vm.image_build_dir(folder)?.join("base.qcow2"),
        BaseKind::Golden => cx.vm.golden_folder(above, folder)?.join("disk.qcow2"),
    })
}

/// Step 2 when the base is not here: its snapshot restored file by file under `scratch`, each
/// moved into its local folder (a golden's image files into the image's, when missing), and a
/// golden's disk rebased onto the local image base. `original` is where the base was when the
/// backup was taken (its snapshot names it so), `local` where it goes.
async fn restore_base(cx: &Cx, restic: &Restic, base_id: &str, kind: BaseKind, original: &Path, local: &Path, scratch: &Path) -> Result<()> {
    let tags = [Tag::parse(format!("base-{base_id}"))?, Tag::parse("kind-base")?];
    let snaps = restic.snapshots(&SnapshotFilter::tagged(tags)).await?;
    let snap = snaps.last().ok_or_else(|| Error::internal(format!("the base {base_id} is not in the backup repository")))?;
    let sid = SnapshotId::parse(snap.id.clone())?;
    let odir = original.parent().ok_or_else(|| Error::internal("a base disk without a folder"))?;
    let ldir = local.parent().ok_or_else(|| Error::internal("a base disk without a folder"))?;
    let mut image_base = None;
    for p in snap.paths.iter().map(PathBuf::from) {
        let Some(name) = p.file_name().and_then(|n| n.to_str()).filter(|n| BASE_FILES.contains(n)) else {
            return Err(Error::internal(format!("the base snapshot of {base_id} holds {}, not a base file", p.display())));
        };
        if p.components().any(|c| matches!(c, Component::ParentDir | Component::CurDir)) || !p.is_absolute() {
            return Err(Error::internal(format!("the base snapshot of {base_id} names {}", p.display())));
        }
        let to = if p.parent() == Some(odir) {
            ldir.join(name)
        } else if kind == BaseKind::Golden && ["base.qcow2", "vmlinuz", "initrd.img", "image.json"].contains(&name) {
            // The golden's image, beside this node's images.
            let build = p.parent().and_then(Path::file_name).and_then(|n| n.to_str()).filter(|n| plain_name(n));
            let build = build.ok_or_else(|| Error::internal(format!("the base snapshot of {base_id} names {}", p.display())))?;
            let to = cx.vm.image_build_dir(build)?.join(name);
            if name == "base.qcow2" {
                image_base = Some(to.clone());
            }
            if to.is_file() {
                continue;
            }
            to
        } else {
            return Err(Error::internal(format!("the base snapshot of {base_id} holds {}, outside its folders", p.display())));
        };
        restore_one(restic, &sid, &p, scratch, &to).await?;
    }
    let _ = tokio::fs::remove_dir_all(scratch).await;
    if !local.is_file() {
        return Err(Error::internal(format!("the base snapshot of {base_id} has no base disk")));
    }
    if kind == BaseKind::Golden {
        let image = image_base.ok_or_else(|| Error::internal(format!("the base snapshot of {base_id} lacks its image")))?;
        rebase_overlay(local, &image).await?;
    }
    tracing::info!(base = base_id, path = %local.display(), "base disk restored from the backup repository");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_files_a_backup_writes_are_taken_from_its_snapshot() {
        assert_eq!(checked_backup_path(Path::new("/d/backups/staging/7/disk.qcow2"), 7), Some(DISK));
        assert_eq!(checked_backup_path(Path::new("/d/backups/staging/7/memory.save"), 7), Some(MEMORY));
        for bad in ["/d/backups/staging/8/disk.qcow2", "/etc/passwd", "d/backups/staging/7/disk.qcow2", "/d/backups/staging/7/../7/disk.qcow2", "/d/other/7/disk.qcow2"] {
            assert_eq!(checked_backup_path(Path::new(bad), 7), None, "{bad}");
        }
    }
}
