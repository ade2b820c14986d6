//! What can go wrong backing up or restoring the service's own state.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Repository(#[from] crate::backup::BackupError),
    /// The database URL is not one this can copy (e.g. an in-memory SQLite).
    #[error("cannot back up or restore the database at this URL: {0}")]
    UnsupportedUrl(String),
    #[error("the database copy failed: {0}")]
    Copy(#[source] sea_orm::DbErr),
    /// `pg_dump` or `pg_restore` could not start or failed.
    #[error("{tool} failed: {detail}")]
    Tool { tool: &'static str, detail: String },
    #[error("{what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No state snapshot in the repository (or not the one asked for).
    #[error("no backup of the service's state in the repository{0}")]
    NoSnapshot(String),
    /// The target database already holds accounts: a restore would overwrite them.
    #[error("the database {0} already holds accounts; restore into an empty database (or pass --force)")]
    NotEmpty(String),
    /// The snapshot does not hold what a state backup holds.
    #[error("the state snapshot {id} is not usable: {detail}")]
    Malformed { id: String, detail: String },
}

impl StateError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { what, path: path.into(), source }
    }
}
