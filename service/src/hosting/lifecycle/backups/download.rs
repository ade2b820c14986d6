//! A backup's disk as one standalone qcow2 for its owner to take elsewhere: the backup
//! materialised into a folder of its own under `{data_dir}/backups/download/`, its chain (the
//! overlay on its base) flattened with `qemu-img convert -O qcow2`, everything else removed.
//! The [`BackupDownload`] owns the file: dropping it (the response sent, or the client gone)
//! removes the folder. At most [`DOWNLOADS_PER_NODE`] at once per node (each writes a whole disk
//! to the node's own disk): the next is refused with 409 until one ends.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::materialize::materialize;
use super::restore::restorable;
use crate::accounts::Actor;
use crate::hosting::cx::Cx;
use crate::vm::flatten_qcow2;
use crate::{Error, Result};

/// Downloads being prepared or sent at once per node (per data dir).
pub const DOWNLOADS_PER_NODE: usize = 2;

/// A flattened backup disk ready to send; its folder is removed when this is dropped.
#[derive(Debug)]
pub struct BackupDownload {
    /// The standalone qcow2.
    pub path: PathBuf,
    /// Its length in bytes.
    pub len: u64,
    /// `{slug}-backup-{bid}.qcow2`.
    pub filename: String,
    dir: PathBuf,
    _permit: OwnedSemaphorePermit,
}

impl Drop for BackupDownload {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.dir.display(), err = %e, "could not remove a backup download's folder");
        }
    }
}

/// The node's download slots.
fn slots(data_dir: &Path) -> Arc<Semaphore> {
    static SLOTS: OnceLock<Mutex<HashMap<PathBuf, Arc<Semaphore>>>> = OnceLock::new();
    let mut map = SLOTS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    map.entry(data_dir.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(DOWNLOADS_PER_NODE))).clone()
}

/// Prepares backup `bid` of hosting `id` for download (owner or admin; others 404). The site
/// is not touched and may run another operation meanwhile.
pub(crate) async fn prepare(cx: &Cx, actor: &Actor, id: i32, bid: i32) -> Result<BackupDownload> {
    let (row, b) = restorable(cx, actor, id, bid).await?;
    let permit = slots(&cx.cfg.data_dir).try_acquire_owned().map_err(|_| {
        Error::Busy(format!("{DOWNLOADS_PER_NODE} backup downloads are being prepared or sent on this node, the most at once: try again when one ends"))
    })?;
    let dir = cx.cfg.data_dir.join("backups/download").join(format!("{bid}-{}", uuid::Uuid::new_v4().simple()));
    tokio::fs::create_dir_all(&dir).await.map_err(|e| Error::internal(format!("creating {}: {e}", dir.display())))?;
    // From here the guard owns the folder: any failure below removes it.
    let mut out = BackupDownload { path: dir.join("download.qcow2"), len: 0, filename: download_name(&row.slug, bid), dir, _permit: permit };
    let t = std::time::Instant::now();
    let scratch = out.dir.join("backup");
    let m = materialize(cx, &b, &scratch, |_| {}).await?;
    flatten_qcow2(&m.disk, &out.path).await?;
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    out.len = tokio::fs::metadata(&out.path).await.map_err(|e| Error::internal(format!("reading {}: {e}", out.path.display())))?.len();
    tracing::info!(hosting_id = id, backup_id = bid, bytes = out.len, secs = t.elapsed().as_secs_f64(), "backup prepared for download");
    Ok(out)
}

/// `{slug}-backup-{bid}.qcow2` (a slug is `[a-z0-9-]`: nothing to escape in a header).
fn download_name(slug: &str, bid: i32) -> String {
    let slug: String = slug.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    format!("{slug}-backup-{bid}.qcow2")
}
