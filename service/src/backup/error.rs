//! What can go wrong when driving restic. The variants say what the caller does next: install
//! restic, unlock a stale lock, fix the password or the URL, retry later. Messages carry restic's
//! own words (a bounded tail of its stderr) but never the repository password: restic only ever
//! reads it from a file, and URL credentials are masked before anything is kept.
use std::path::PathBuf;
use std::time::Duration;

/// A restic operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The `restic` binary could not be started (not installed, or not at the configured path).
    #[error("restic could not be started ({}): {source}; install it (apt-get install restic)", .program.display())]
    ResticMissing {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another restic process holds the repository's lock (or a killed one left it behind:
    /// [`crate::backup::Restic::unlock`] removes stale locks).
    #[error("the backup repository is locked by another operation: {detail}")]
    Locked { detail: String },
    /// The password file does not open the repository.
    #[error("wrong password for the backup repository (or no key matches it)")]
    WrongPassword,
    /// Nothing is at the URL, or it is not an initialised restic repository.
    #[error("no backup repository at {url}: {detail}")]
    NotInitialised { url: String, detail: String },
    /// The repository settings are not valid (checked before restic runs).
    #[error("invalid backup repository settings: {0}")]
    InvalidSettings(String),
    /// An argument (tag, host, snapshot id, path, keep policy...) was refused before restic ran.
    #[error("invalid backup argument {what}: {detail}")]
    InvalidArgument { what: &'static str, detail: String },
    /// restic ran longer than its timeout and was killed.
    #[error("restic {verb} timed out after {}s and was stopped", .after.as_secs())]
    TimedOut { verb: &'static str, after: Duration },
    /// restic was ended by a signal (killed by the OS, an operator, or the OOM killer).
    #[error("restic {verb} was killed by signal {signal}")]
    Killed { verb: &'static str, signal: i32 },
    /// restic printed a line that is not what its `--json` output should be.
    #[error("could not understand restic {verb} output ({detail}): {line}")]
    Parse { verb: &'static str, line: String, detail: String },
    /// A backup finished without a summary line (so no snapshot to name).
    #[error("restic {verb} ended without a summary")]
    NoSummary { verb: &'static str },
    /// A backup made a snapshot, but some files could not be read (restic's exit code 3).
    #[error("backup {snapshot_id} is incomplete, some files could not be read: {stderr}")]
    Incomplete { snapshot_id: String, stderr: String },
    /// A local file or pipe failed (`path` is the file, or the stream's role in brackets).
    #[error("{what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Any other failure: restic's exit code and the end of what it wrote to stderr.
    #[error("restic {verb} failed (exit code {code}): {stderr}")]
    Failed { verb: &'static str, code: i32, stderr: String },
}

impl BackupError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { what, path: path.into(), source }
    }

    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        Self::InvalidArgument { what, detail: detail.into() }
    }

    /// Whether trying again later may succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Locked { .. } | Self::TimedOut { .. } | Self::Killed { .. })
    }
}
