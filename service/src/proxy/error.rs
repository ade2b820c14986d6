//! What went wrong with nginx ([`ProxyError`]), counted where it is made.
use std::path::Path;

use crate::file_error::FileError;

/// What went wrong with nginx, keeping the underlying error or nginx's own words. Display is
/// worded for the site's owner (the hosting page shows "<step> failed: <this>").
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// `nginx -t` refused the configuration; `stderr` is nginx's whole report (Display shows
    /// its first `[emerg]` line).
    #[error("nginx refused the configuration: {}", first_emerg(.stderr))]
    Rejected { stderr: String },
    /// nginx could not be run at all (`action`: "-t", "start", "reload", "quit").
    #[error("could not run nginx {action}: {source}")]
    Spawn {
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// nginx ran and failed; `stderr` is what it said.
    #[error("nginx {action} failed ({status}): {}", .stderr.trim())]
    Command { action: &'static str, status: std::process::ExitStatus, stderr: String },
    #[error("nginx (pid {pid}) did not stop")]
    DidNotStop { pid: u32 },
    /// The site does not answer through nginx; `hint` is nginx's last error log line.
    #[error("/{slug}/ answers {} through nginx: {hint}", answer(.last_status))]
    NotServing { slug: String, last_status: Option<u16>, hint: String },
    /// A file operation in nginx's prefix.
    #[error(transparent)]
    Io(#[from] FileError),
    /// A certificate nginx would read at the handshake (the sites' names: no `nginx -t` sees
    /// it) that is unreadable, not a certificate, or not its key's.
    #[error("the certificate {} cannot be served: {detail}", .chain.display())]
    Certificate { chain: std::path::PathBuf, detail: String },
    /// A value the proxy refuses to put into a configuration.
    #[error("{0}")]
    Invalid(String),
}

impl ProxyError {
    /// The error's kind, as the `vmw_nginx_errors_total` counter labels it.
    pub fn kind(&self) -> &'static str {
        match self {
            ProxyError::Rejected { .. } => "rejected",
            ProxyError::Spawn { .. } => "spawn",
            ProxyError::Command { .. } => "command",
            ProxyError::DidNotStop { .. } => "did_not_stop",
            ProxyError::NotServing { .. } => "not_serving",
            ProxyError::Io(_) => "io",
            ProxyError::Certificate { .. } => "certificate",
            ProxyError::Invalid(_) => "invalid",
        }
    }

    /// Counts this error (`vmw_nginx_errors_total`) where it is made, and returns it.
    pub(super) fn counted(self) -> Self {
        crate::telemetry::nginx_error(self.kind());
        self
    }
}

/// nginx's first `[emerg]` line (the reason), or its whole report trimmed.
fn first_emerg(stderr: &str) -> &str {
    stderr.lines().find(|l| l.contains("[emerg]")).unwrap_or(stderr).trim()
}

fn answer(status: &Option<u16>) -> String {
    match status {
        Some(code) => format!("HTTP {code}"),
        None => "no answer".into(),
    }
}

pub(super) fn io(what: &'static str, p: &Path, source: std::io::Error) -> ProxyError {
    ProxyError::Io(FileError { what, path: p.to_owned(), source }).counted()
}

