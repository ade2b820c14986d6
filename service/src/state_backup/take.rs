//! One state backup: the database copied and the `tls` folder copied into a private staging
//! folder, sent to the repository as one snapshot tagged `kind-state`, the staging removed.
use std::path::{Path, PathBuf};

use sea_orm::DatabaseConnection;

use super::{Database, StateError, STATE_TAG};
use crate::backup::{BackupSummary, Restic, Snapshot, SnapshotFilter, Tag};

/// Backs up the service's database (`db`, found at `database`) and `{data_dir}/tls` into
/// the repository. The staging folder (`{data_dir}/backups/staging/state-{uuid}`) is always
/// removed.
pub async fn back_up_state(restic: &Restic, db: &DatabaseConnection, database: &Database, data_dir: &Path, host: &str) -> Result<BackupSummary, StateError> {
    let staging = data_dir.join("backups/staging").join(format!("state-{}", uuid::Uuid::new_v4().simple()));
    let res = async {
        make_private_dir(&staging).await?;
        database.dump(db, &staging).await?;
        let tls = data_dir.join("tls");
        if tls.is_dir() {
            copy_tree(tls, staging.join("tls")).await?;
        }
        let tags = [Tag::parse(STATE_TAG)?];
        Ok(restic.backup_files(std::slice::from_ref(&staging), &tags, host, |_| {}).await?)
    }
    .await;
    if let Err(err) = tokio::fs::remove_dir_all(&staging).await
        && err.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(%err, path = %staging.display(), "could not remove a state backup's staging folder");
    }
    res
}

/// The newest state snapshot in the repository, if any.
pub async fn latest_state_snapshot(restic: &Restic) -> Result<Option<Snapshot>, StateError> {
    let all = restic.snapshots(&SnapshotFilter::tagged([Tag::parse(STATE_TAG)?])).await?;
    Ok(all.into_iter().max_by_key(|s| s.time))
}

async fn make_private_dir(dir: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::DirBuilderExt;
    let d = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&d))
        .await
        .map_err(|e| StateError::io("creating", dir, std::io::Error::other(e)))?
        .map_err(|e| StateError::io("creating", dir, e))
}

/// Copies a folder of regular files and folders (modes kept; links and others skipped: the
/// `tls` folder has none).
pub(super) async fn copy_tree(from: PathBuf, to: PathBuf) -> Result<(), StateError> {
    tokio::task::spawn_blocking(move || copy_tree_blocking(&from, &to))
        .await
        .map_err(|e| StateError::io("copying", PathBuf::new(), std::io::Error::other(e)))?
}

fn copy_tree_blocking(from: &Path, to: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let meta = std::fs::metadata(from).map_err(|e| StateError::io("reading", from, e))?;
    std::fs::DirBuilder::new().mode(meta.permissions().mode() & 0o7777).create(to).map_err(|e| StateError::io("creating", to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| StateError::io("listing", from, e))? {
        let entry = entry.map_err(|e| StateError::io("listing", from, e))?;
        let ty = entry.file_type().map_err(|e| StateError::io("reading", entry.path(), e))?;
        let dest = to.join(entry.file_name());
        if ty.is_dir() {
            copy_tree_blocking(&entry.path(), &dest)?;
        } else if ty.is_file() {
            std::fs::copy(entry.path(), &dest).map_err(|e| StateError::io("copying", entry.path(), e))?;
        }
    }
    Ok(())
}
