//! The backup repository the service writes to: one [`Restic`] for every node of the process,
//! opened at first use (not at start-up: a node without backups never runs restic, and an
//! unreachable SFTP server does not hold up the app's start).
//!
//! The default password file (`{data_dir}/backups/password`) is made at first use: 32 random
//! bytes, base64, mode 0600 in a 0700 folder. Without it the repository cannot be read, so the
//! log says to keep a copy off the node.
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use base64::Engine;
use tokio::sync::OnceCell;

use crate::backup::{BackupError, RepoSettings, Restic};
use crate::ServiceConfig;

/// The repository's settings and, once opened, its driver.
pub(crate) struct BackupRepo {
    settings: RepoSettings,
    /// Whether the repository is the default folder under the data dir (on the node's disk).
    default_local: bool,
    restic: OnceCell<Restic>,
    /// Held while a base disk is looked for and stored (each once in the repository).
    base_lock: tokio::sync::Mutex<()>,
    /// When this process last pruned the repository (unix ms), and whether snapshots were
    /// forgotten since (`retention::prune_if_due`).
    prune: std::sync::Mutex<PruneState>,
}

#[derive(Default)]
struct PruneState {
    last: Option<i64>,
    forgotten_since: bool,
}

impl BackupRepo {
    pub fn new(cfg: &ServiceConfig) -> Self {
        Self { settings: cfg.backup_repo_settings(), default_local: cfg.backup.repository.is_none(), restic: OnceCell::new(), base_lock: tokio::sync::Mutex::new(()), prune: Default::default() }
    }

    /// Whether the repository is the default folder under the data dir, on the node's own disk:
    /// the pages say so. (A configured local path may be a mount of another machine's disk.)
    pub fn shares_node_disk(&self) -> bool {
        self.default_local
    }

    /// Snapshots were forgotten: their data waits for the next prune.
    pub fn note_forgotten(&self) {
        self.prune.lock().unwrap().forgotten_since = true;
    }

    /// Whether a prune is due at `now`: something was forgotten since the last, which is at
    /// least `every` old.
    pub fn prune_due(&self, now: i64, every: i64) -> bool {
        let p = self.prune.lock().unwrap();
        p.forgotten_since && p.last.is_none_or(|last| now - last >= every)
    }

    pub fn pruned(&self, now: i64) {
        *self.prune.lock().unwrap() = PruneState { last: Some(now), forgotten_since: false };
    }

    /// Held while a base disk is looked for and stored.
    pub async fn base_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.base_lock.lock().await
    }

    /// The driver, the repository made if missing (once per process; a failure is tried again
    /// at the next use).
    pub async fn restic(&self) -> Result<&Restic, BackupError> {
        self.restic
            .get_or_try_init(|| async {
                make_password_file_if_missing(&self.settings.password_file)?;
                let restic = Restic::new(self.settings.clone())?;
                restic.init_if_missing().await?;
                Ok(restic)
            })
            .await
    }
}

/// Writes a new random password to `path` unless a file is there: 32 bytes of the OS's
/// randomness, base64; the file 0600, its folder made 0700.
pub(crate) fn make_password_file_if_missing(path: &Path) -> Result<bool, BackupError> {
    if path.exists() {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| BackupError::Io { what: "creating", path: dir.to_owned(), source: e })?;
    }
    let mut key = [0u8; 32];
    rand::fill(&mut key);
    let text = base64::engine::general_purpose::STANDARD.encode(key);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| BackupError::Io { what: "creating", path: path.to_owned(), source: e })?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| BackupError::Io { what: "writing", path: path.to_owned(), source: e })?;
    tracing::warn!(
        password_file = %path.display(),
        "backup repository password made: keep a copy of this file off the node, the backups cannot be read without it"
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_password_file_is_made_once_private_and_random() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("backups/password");
        assert!(make_password_file_if_missing(&p).unwrap());
        let first = std::fs::read_to_string(&p).unwrap();
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(&first).unwrap().len(), 32);
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(p.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        assert!(!make_password_file_if_missing(&p).unwrap(), "an existing password is never replaced");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), first);
    }

    #[tokio::test]
    async fn the_default_repository_is_a_folder_under_the_data_dir_made_at_first_use() {
        if std::process::Command::new("restic").arg("version").output().is_err() {
            eprintln!("restic is not installed: skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let cfg = ServiceConfig { data_dir: dir.path().to_owned(), ..ServiceConfig::default() };
        let repo = BackupRepo::new(&cfg);
        assert!(repo.shares_node_disk());
        repo.restic().await.unwrap();
        assert!(dir.path().join("backups/repository/config").is_file());
        assert!(dir.path().join("backups/password").is_file());
        // The second use opens the same repository (no second init).
        repo.restic().await.unwrap();
    }
}
