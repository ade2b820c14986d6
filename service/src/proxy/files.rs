//! The configuration's files: read, put back as they were, written atomically.
use std::path::Path;

use super::{ProxyError, io};

pub(super) async fn read_opt(p: &Path) -> Result<Option<String>, ProxyError> {
    match tokio::fs::read_to_string(p).await {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("reading", p, e)),
    }
}

/// Puts a file back as it was (None: removes it).
pub(super) async fn restore(p: &Path, content: Option<String>) -> Result<(), ProxyError> {
    match content {
        Some(c) => write_atomic(p, &c).await,
        None => match tokio::fs::remove_file(p).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("removing", p, e)),
        },
    }
}

/// Write to a temporary file beside the target, then rename: readers never see half a file.
/// The temporary name does not end in `.conf`, so nginx's include globs never pick it up.
pub(super) async fn write_atomic(p: &Path, content: &str) -> Result<(), ProxyError> {
    let tmp = p.with_extension("tmp");
    tokio::fs::write(&tmp, content).await.map_err(|e| io("writing", &tmp, e))?;
    tokio::fs::rename(&tmp, p).await.map_err(|e| io("renaming", p, e))
}

