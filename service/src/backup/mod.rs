//! Backups off the node (issue 31), driven through restic.
//!
//! restic does all the work that matters for a backup: it cuts files and streams into
//! content-defined chunks, stores each chunk once (deduplication across every snapshot, every
//! site and every node that writes to the same repository), encrypts everything with the
//! repository's key, and speaks to the storage (a local folder, SFTP, a REST server, S3, B2...).
//! Nothing of that is reimplemented here: [`Restic`] runs Debian's `restic` binary (0.14) with
//! `--json`, parses what it prints into typed values ([`BackupSummary`], [`Snapshot`],
//! [`Progress`]...) and sorts its failures into a [`BackupError`] the caller can act on.
//!
//! Why one repository for all nodes: deduplication works inside a repository only. Every site
//! starts from the same golden image, so with one repository the base is stored once and each
//! site's backups add only what it changed; and a node that is lost can be rebuilt on another
//! one from the repository alone, since everything (every site, the service's database) is in it.
//! Snapshots are told apart by their tags (the lead's layer decides them: site, kind...), not
//! by the host that wrote them, so a site keeps its history when it moves to another node.
//!
//! The repository password only ever reaches restic as `RESTIC_PASSWORD_FILE`: never in argv
//! (visible in `ps`), never in a log line or an error. The repository URL goes through
//! `RESTIC_REPOSITORY` too, and logs show it with any credentials masked ([`RepoSettings::redacted_url`]).
mod args;
mod error;
mod output;
mod repo;
mod restic;
mod run;

pub use args::{KeepPolicy, SnapshotFilter, SnapshotId, Tag};
pub use error::BackupError;
pub use output::{BackupSummary, ForgetResult, Progress, RawStats, Snapshot};
pub use repo::{RepoSettings, SftpCommand, Timeouts};
pub use restic::Restic;
