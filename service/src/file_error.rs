//! A file operation on the host that failed: what was being done, on which path, and the
//! underlying error as the source. The VM and nginx errors both carry one (`VmError::Io`,
//! `ProxyError::Io`).
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[error("{what} {}: {source}", .path.display())]
pub struct FileError {
    /// "creating", "writing", "removing"...
    pub what: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}
