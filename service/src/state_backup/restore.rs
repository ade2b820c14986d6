//! A state backup brought back: the database loaded into an empty one, the `tls` folder put
//! back under the data dir (an existing one moved aside, never deleted).
use std::path::{Component, Path, PathBuf};

use super::take::{copy_tree, latest_state_snapshot};
use super::{Database, StateError, STATE_TAG};
use crate::backup::{Restic, Snapshot, SnapshotFilter, SnapshotId};

/// What [`restore_state`] brought back.
#[derive(Clone, Debug)]
pub struct RestoredState {
    pub snapshot: Snapshot,
    /// Where a `tls` folder that was already there was moved.
    pub tls_moved_aside: Option<PathBuf>,
}

/// Restores the state snapshot `id` (default: the newest) into `database` and
/// `{data_dir}/tls`. `holds_accounts`: whether the target database already has accounts
/// (refused unless `force`).
pub async fn restore_state(
    restic: &Restic,
    id: Option<&SnapshotId>,
    database: &Database,
    holds_accounts: bool,
    data_dir: &Path,
    force: bool,
) -> Result<RestoredState, StateError> {
    if holds_accounts && !force {
        return Err(StateError::NotEmpty(format!("{database:?}")));
    }
    let snapshot = match id {
        Some(id) => restic
            .snapshots(&SnapshotFilter::ids([id.clone()]))
            .await?
            .into_iter()
            .find(|s| s.tags.iter().any(|t| t == STATE_TAG))
            .ok_or_else(|| StateError::NoSnapshot(format!(" with the id {}", id.as_str())))?,
        None => latest_state_snapshot(restic).await?.ok_or_else(|| StateError::NoSnapshot(String::new()))?,
    };
    let target = data_dir.join("backups/staging").join(format!("restore-state-{}", uuid::Uuid::new_v4().simple()));
    let res = async {
        tokio::fs::create_dir_all(&target).await.map_err(|e| StateError::io("creating", &target, e))?;
        let sid = SnapshotId::parse(snapshot.id.clone())?;
        restic.restore(&sid, &target, None).await?;
        let root = snapshot_root(&snapshot, &target)?;
        let dump = root.join(database.dump_name());
        if !dump.is_file() {
            return Err(StateError::Malformed { id: snapshot.short_id.clone(), detail: format!("it has no {}", database.dump_name()) });
        }
        database.load(&dump).await?;
        let tls = data_dir.join("tls");
        let mut moved = None;
        if root.join("tls").is_dir() {
            if tls.exists() {
                let aside = data_dir.join(format!("tls.before-restore-{}", time::OffsetDateTime::now_utc().unix_timestamp()));
                tokio::fs::rename(&tls, &aside).await.map_err(|e| StateError::io("moving aside", &tls, e))?;
                moved = Some(aside);
            }
            copy_tree(root.join("tls"), tls).await?;
        }
        Ok(moved)
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&target).await;
    let tls_moved_aside = res?;
    tracing::info!(snapshot = %snapshot.short_id, time = %snapshot.time, "the service's state restored from the backup repository");
    Ok(RestoredState { snapshot, tls_moved_aside })
}

/// Where the snapshot's staging folder landed under `target` (restic restores absolute paths
/// below the target). Its recorded path is checked to be a plain absolute path.
fn snapshot_root(s: &Snapshot, target: &Path) -> Result<PathBuf, StateError> {
    let malformed = |detail: &str| StateError::Malformed { id: s.short_id.clone(), detail: detail.into() };
    let [path] = s.paths.as_slice() else {
        return Err(malformed("it should hold one folder"));
    };
    let p = Path::new(path);
    if !p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir | Component::CurDir)) {
        return Err(malformed("its folder is not a plain absolute path"));
    }
    Ok(target.join(p.strip_prefix("/").unwrap_or(p)))
}
