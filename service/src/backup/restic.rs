//! [`Restic`]: one repository and the restic commands the service needs, each a typed call.
//! Arguments are validated values ([`Tag`], [`SnapshotId`], [`KeepPolicy`]...); paths and ids go
//! after `--`, so nothing is ever read as a flag.
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWrite};

use super::args::{validate_host, validate_snapshot_path, validate_stdin_name, KeepPolicy, SnapshotFilter, SnapshotId, Tag};
use super::error::BackupError;
use super::output::{parse_backup_line, parse_forget, parse_json, trimmed, BackupLine, BackupSummary, ForgetResult, Progress, RawStats, Snapshot};
use super::repo::RepoSettings;
use super::run::{run, Call, Input, Output};

/// The restic driver for one repository. Cheap to clone; every call runs its own restic process.
#[derive(Clone, Debug)]
pub struct Restic {
    settings: RepoSettings,
}

impl Restic {
    /// Checks the settings (nothing is run yet).
    pub fn new(settings: RepoSettings) -> Result<Self, BackupError> {
        settings.validate()?;
        Ok(Self { settings })
    }

    pub fn settings(&self) -> &RepoSettings {
        &self.settings
    }

    /// restic's version line (`restic 0.14.0 compiled with go1.19.8 on linux/amd64`): whether it
    /// is installed, without touching the repository (startup check, admin page).
    pub async fn version(&self) -> Result<String, BackupError> {
        let mut out = Vec::new();
        let mut call = self.meta("version");
        call.output = Output::Collect(&mut out);
        run(&self.settings, call).await?;
        Ok(trimmed(&out).to_string())
    }

    /// Makes sure the repository exists: `cat config`, and `init` only if nothing is there.
    /// Returns whether it was created now. A wrong password or a locked repository is an error,
    /// never a reason to initialise (that would fail, or worse, on a folder that is not empty).
    pub async fn init_if_missing(&self) -> Result<bool, BackupError> {
        self.ensure_dirs()?;
        warn_if_readable_by_others(&self.settings.password_file);
        let mut out = Vec::new();
        let mut call = self.meta("cat");
        call.flags.push("config".into());
        call.output = Output::Collect(&mut out);
        match run(&self.settings, call).await {
            Ok(_) => Ok(false),
            Err(BackupError::NotInitialised { .. }) => {
                if let Some(dir) = self.settings.local_path() {
                    // restic creates the folder itself, but 0700 keeps other users out of the
                    // (encrypted) data and its metadata.
                    create_private_dir(dir.parent().unwrap_or(dir))?;
                }
                run(&self.settings, self.meta("init")).await?;
                tracing::info!(repo = %self.settings.redacted_url(), "backup repository initialised");
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    /// Backs up files or folders (absolute paths), as one snapshot with `tags` and `host`.
    /// `on_progress` is called a few times per second.
    pub async fn backup_files(
        &self,
        paths: &[PathBuf],
        tags: &[Tag],
        host: &str,
        mut on_progress: impl FnMut(Progress) + Send,
    ) -> Result<BackupSummary, BackupError> {
        if paths.is_empty() {
            return Err(BackupError::invalid("paths", "nothing to back up"));
        }
        for p in paths {
            if !p.is_absolute() {
                return Err(BackupError::invalid("paths", format!("{} is not absolute", p.display())));
            }
        }
        let flags = self.backup_flags(tags, host)?;
        let positional = paths.iter().map(|p| p.as_os_str().to_owned()).collect();
        self.run_backup(flags, positional, None, &mut on_progress).await
    }

    /// Backs up a stream (a disk image, a database dump) as the single file `/NAME` of a new
    /// snapshot. restic cannot know the stream's length, so progress has no total.
    pub async fn backup_stdin(
        &self,
        name: &str,
        reader: &mut (dyn AsyncRead + Unpin + Send),
        tags: &[Tag],
        host: &str,
        mut on_progress: impl FnMut(Progress) + Send,
    ) -> Result<BackupSummary, BackupError> {
        validate_stdin_name(name)?;
        let mut flags = self.backup_flags(tags, host)?;
        flags.extend(["--stdin".into(), "--stdin-filename".into(), name.into()]);
        self.run_backup(flags, Vec::new(), Some(reader), &mut on_progress).await
    }

    /// [`Self::backup_stdin`] from a file (or a block device, a FIFO): stored as `/NAME`, the
    /// file's own path is not recorded.
    pub async fn backup_file_as_stdin(
        &self,
        name: &str,
        file: &Path,
        tags: &[Tag],
        host: &str,
        on_progress: impl FnMut(Progress) + Send,
    ) -> Result<BackupSummary, BackupError> {
        let mut f = tokio::fs::File::open(file).await.map_err(|e| BackupError::io("opening", file, e))?;
        self.backup_stdin(name, &mut f, tags, host, on_progress).await
    }

    /// The snapshots matching `filter`, oldest first.
    pub async fn snapshots(&self, filter: &SnapshotFilter) -> Result<Vec<Snapshot>, BackupError> {
        let (flags, ids) = filter.to_args()?;
        let mut out = Vec::new();
        let mut call = self.meta("snapshots");
        call.flags.push("--json".into());
        call.flags.extend(flags);
        call.positional = ids.into_iter().map(OsString::from).collect();
        call.output = Output::Collect(&mut out);
        run(&self.settings, call).await?;
        let text = trimmed(&out);
        if text.is_empty() || text == "null" {
            return Ok(Vec::new());
        }
        let mut snaps: Vec<Snapshot> = parse_json("snapshots", text)?;
        snaps.sort_by_key(|s| s.time);
        Ok(snaps)
    }

    /// Applies a retention policy to the snapshots matching `filter` (tags, host; not ids),
    /// grouped by their tags: a site keeps its history when it moves between nodes. With `prune`,
    /// the data no snapshot needs any more is then deleted (`restic prune`), which is what frees
    /// storage; without, only the snapshot records go.
    pub async fn forget(&self, filter: &SnapshotFilter, policy: KeepPolicy, prune: bool) -> Result<ForgetResult, BackupError> {
        self.forget_grouped(filter, policy, prune, "tags").await
    }

    /// [`Self::forget`] over the snapshots matching `filter` as one group (restic's
    /// `--group-by ''`): a site's retention, whose snapshots each carry their own `backup-{id}`
    /// tag (grouped by tags, each would be a group of one and nothing would go) and may come
    /// from different nodes and staging paths. The filter (`site-{id}`) is the group, so one
    /// site's policy never touches another's snapshots.
    pub async fn forget_as_one_group(&self, filter: &SnapshotFilter, policy: KeepPolicy) -> Result<ForgetResult, BackupError> {
        if filter.tags.is_empty() {
            return Err(BackupError::invalid("forget filter", "one group needs a tag to select it"));
        }
        self.forget_grouped(filter, policy, false, "").await
    }

    async fn forget_grouped(&self, filter: &SnapshotFilter, policy: KeepPolicy, prune: bool, group_by: &str) -> Result<ForgetResult, BackupError> {
        policy.validate()?;
        if !filter.ids.is_empty() {
            return Err(BackupError::invalid("forget filter", "a keep policy applies to tags or hosts, not to ids (use forget_ids)"));
        }
        let (flags, _) = filter.to_args()?;
        let mut out = Vec::new();
        let mut call = self.meta("forget");
        call.flags.extend(["--json".into(), "--group-by".into(), group_by.into()]);
        call.flags.extend(flags);
        call.flags.extend(policy.to_args());
        call.output = Output::Collect(&mut out);
        run(&self.settings, call).await?;
        let result = parse_forget(&out)?;
        if prune && !result.removed.is_empty() {
            self.prune().await?;
        }
        Ok(result)
    }

    /// Deletes these snapshots (one backup a user deleted). Their data is freed at the next prune.
    pub async fn forget_ids(&self, ids: &[SnapshotId]) -> Result<(), BackupError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut call = self.meta("forget");
        call.positional = ids.iter().map(|i| OsString::from(i.as_str())).collect();
        run(&self.settings, call).await?;
        Ok(())
    }

    /// Deletes the data no snapshot refers to any more (an exclusive lock: nothing else runs).
    pub async fn prune(&self) -> Result<(), BackupError> {
        run(&self.settings, self.data("prune")).await?;
        Ok(())
    }

    /// Restores a snapshot into `target` (created if missing), everything or only `include` (a
    /// file or folder as it is named in the snapshot). Existing files there are overwritten.
    pub async fn restore(&self, id: &SnapshotId, target: &Path, include: Option<&Path>) -> Result<(), BackupError> {
        if !target.is_absolute() {
            return Err(BackupError::invalid("target", format!("{} is not absolute", target.display())));
        }
        let mut call = self.data("restore");
        call.flags.push("--target".into());
        call.flags.push(target.to_str().ok_or_else(|| BackupError::invalid("target", "not UTF-8"))?.into());
        if let Some(path) = include {
            call.flags.push("--include".into());
            call.flags.push(validate_snapshot_path(path)?);
        }
        call.positional = vec![id.as_str().into()];
        run(&self.settings, call).await?;
        Ok(())
    }

    /// Streams one file of a snapshot (`/disk.qcow2` of a stdin backup) into `writer`, without a
    /// copy on disk: the download of a backup's disk image. Returns the bytes written.
    pub async fn dump(&self, id: &SnapshotId, path: &Path, writer: &mut (dyn AsyncWrite + Unpin + Send)) -> Result<u64, BackupError> {
        let path = validate_snapshot_path(path)?;
        let mut call = self.data("dump");
        call.positional = vec![id.as_str().into(), path.into()];
        call.output = Output::Writer(writer);
        Ok(run(&self.settings, call).await?.written)
    }

    /// What the selected snapshots occupy in the repository (`stats --mode raw-data`): for quota
    /// accounting. Blobs shared between the selected snapshots are counted once; blobs shared
    /// with other snapshots (the golden image) are counted too.
    pub async fn stats_raw(&self, filter: &SnapshotFilter) -> Result<RawStats, BackupError> {
        let (flags, ids) = filter.to_args()?;
        let mut out = Vec::new();
        let mut call = self.meta("stats");
        call.flags.extend(["--json".into(), "--mode".into(), "raw-data".into()]);
        call.flags.extend(flags);
        call.positional = ids.into_iter().map(OsString::from).collect();
        call.output = Output::Collect(&mut out);
        run(&self.settings, call).await?;
        parse_json("stats", trimmed(&out))
    }

    /// Checks the repository's structure (indexes, packs, trees; not every data byte).
    pub async fn check(&self) -> Result<(), BackupError> {
        run(&self.settings, self.data("check")).await?;
        Ok(())
    }

    /// Removes stale locks: those of restic processes that are gone (a killed backup). Locks of
    /// live processes stay.
    pub async fn unlock(&self) -> Result<(), BackupError> {
        run(&self.settings, self.meta("unlock")).await?;
        Ok(())
    }

    fn meta<'a>(&self, verb: &'static str) -> Call<'a> {
        Call::new(verb, self.settings.timeouts.metadata)
    }

    fn data<'a>(&self, verb: &'static str) -> Call<'a> {
        Call::new(verb, self.settings.timeouts.data)
    }

    fn backup_flags(&self, tags: &[Tag], host: &str) -> Result<Vec<String>, BackupError> {
        validate_host(host)?;
        self.ensure_dirs()?;
        let mut flags = vec!["--json".into(), "--host".into(), host.into()];
        for t in tags {
            flags.extend(["--tag".into(), t.as_str().into()]);
        }
        Ok(flags)
    }

    async fn run_backup(
        &self,
        flags: Vec<String>,
        positional: Vec<OsString>,
        input: Option<&mut (dyn AsyncRead + Unpin + Send)>,
        on_progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<BackupSummary, BackupError> {
        let mut summary = None;
        let mut on_line = |line: &str| -> Result<(), BackupError> {
            if !line.starts_with('{') {
                tracing::debug!(line, "restic backup: not a JSON line");
                return Ok(());
            }
            match parse_backup_line(line)? {
                BackupLine::Status(p) => on_progress(p),
                BackupLine::Summary(s) => summary = Some(s),
                BackupLine::Other => {}
            }
            Ok(())
        };
        let mut call = self.data("backup");
        call.flags = flags;
        call.positional = positional;
        call.ok_codes = &[0, 3];
        call.input = match input {
            Some(r) => Input::Reader(r),
            None => Input::Closed,
        };
        call.output = Output::Lines(&mut on_line);
        let finished = run(&self.settings, call).await?;
        let summary = summary.ok_or(BackupError::NoSummary { verb: "backup" })?;
        if finished.code == 3 {
            return Err(BackupError::Incomplete { snapshot_id: summary.snapshot_id, stderr: finished.stderr });
        }
        tracing::info!(
            repo = %self.settings.redacted_url(),
            snapshot = %summary.snapshot_id,
            data_added = summary.data_added,
            bytes = summary.total_bytes_processed,
            "backup done"
        );
        Ok(summary)
    }

    fn ensure_dirs(&self) -> Result<(), BackupError> {
        create_private_dir(&self.settings.cache_dir)
    }
}

/// The password opens every backup of every site: a file others can read is worth a warning
/// (not an error: the operator may have reasons, e.g. a group the service runs in).
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777), "the backup password file is readable by others than its owner (chmod 600)");
    }
}

fn create_private_dir(dir: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| BackupError::io("creating", dir, e))
}
