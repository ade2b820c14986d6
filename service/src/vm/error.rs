//! What went wrong with a VM ([`VmError`]), and [`Doing`]: a libvirt call's error named with
//! what it was doing.
use std::path::{Path, PathBuf};

use super::VmState;
use crate::file_error::FileError;

/// What went wrong with a VM, with what was being done and the underlying error as the source.
/// Display is worded for the site's owner (the hosting page shows "<step> failed: <this>").
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// A libvirt call failed.
    #[error("libvirt could not {action}{}: {}", on(.domain), .source.message())]
    Libvirt {
        action: &'static str,
        /// The libvirt domain name, when the call was about one.
        domain: Option<String>,
        #[source]
        source: virt::error::Error,
    },
    #[error("could not connect to libvirt at {uri}: {}", .source.message())]
    Connect {
        uri: String,
        #[source]
        source: virt::error::Error,
    },
    /// The blocking task running a libvirt call panicked or was cancelled.
    #[error("the libvirt task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("domain {0} is not defined")]
    NotDefined(String),
    #[error("the VM is {0:?}, not running")]
    NotRunning(VmState),
    /// A file operation on the host.
    #[error(transparent)]
    Io(#[from] FileError),
    /// An external program could not be started.
    #[error("could not run {program}: {source}")]
    Spawn {
        program: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// An external program ran and failed; `stderr` is what it said.
    #[error("{program} failed ({status}): {}", .stderr.trim())]
    Command { program: &'static str, status: std::process::ExitStatus, stderr: String },
    #[error("the guest image is missing or incomplete: {}: {source}", .dir.display())]
    ImageDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the guest image is missing or incomplete: {} not found", .path.display())]
    ImageMissing { path: PathBuf },
    /// The guest did not answer in time; `missing` names what did not answer.
    #[error("the VM did not answer within {waited_secs} s: no {}", .missing.join(" and no "))]
    NotReady { waited_secs: u64, missing: Vec<&'static str> },
    /// A guest agent command failed (libvirt reports the agent's error).
    #[error("the guest agent of {domain} could not do {command}: {}", .source.message())]
    Agent {
        domain: String,
        command: &'static str,
        #[source]
        source: virt::error::Error,
    },
    /// A call into the guest that its tenant can trigger did not finish within
    /// `guest_call_timeout_secs` (its turn included: `guest_calls`). Nothing was changed on the
    /// host; the guest may still finish it.
    #[error("the guest agent of {domain} did not answer {command} within {waited_secs} s")]
    GuestTimeout { domain: String, command: &'static str, waited_secs: u64 },
    #[error("the guest agent of {domain} did not answer in time: {source}")]
    AgentUnresponsive {
        domain: String,
        #[source]
        source: Box<VmError>,
    },
    /// The agent answered something that is not what `command` returns (not trusted: the
    /// guest is its tenant's).
    #[error("the guest agent's answer to {command} is malformed: {problem}")]
    AgentReply { command: &'static str, problem: String },
    #[error("{path} in the guest: {source}")]
    GuestFile {
        path: String,
        #[source]
        source: Box<VmError>,
    },
    /// A program run in the guest exited non-zero; `stderr` is what it said (guest text).
    #[error("{path} exited with {code}: {}", .stderr.trim())]
    GuestCommand { path: String, code: i64, stderr: String },
    #[error("{path} did not finish in time")]
    GuestCommandTimeout { path: String },
    /// QEMU would not add a port forward (the port is taken, most likely).
    #[error("QEMU could not forward port {port}: {problem}")]
    Forward { port: u16, problem: String },
    /// A running guest's filesystems could not be frozen for a consistent copy of its disk (its
    /// agent did not answer, refused, or answered something else than a count of frozen
    /// filesystems): nothing was copied and a thaw was sent all the same. A snapshot (memory
    /// saved, the disk then quiet) is the way to capture such a site.
    #[error("the filesystems of {domain} could not be frozen for a backup: {source}")]
    FreezeFailed {
        domain: String,
        #[source]
        source: Box<VmError>,
    },
    /// Copying a frozen guest's disk took longer than the bound: abandoned, the guest thawed.
    #[error("copying the disk of {domain} took longer than {bound_ms} ms while its filesystems were frozen: abandoned")]
    FrozenTooLong { domain: String, bound_ms: u64 },
    /// The guest did not confirm a thaw after a freeze: its filesystems may still be frozen
    /// (its site then hangs on every write until it is thawed or restarted).
    #[error("the filesystems of {domain} may still be frozen: {source}")]
    ThawFailed {
        domain: String,
        #[source]
        source: Box<VmError>,
    },
    /// The VM is in a state a backup cannot copy consistently (paused, crashed: neither
    /// running with an agent nor saved).
    #[error("the VM is {0:?}: neither running nor saved, so it cannot be captured now")]
    NotCapturable(VmState),
    /// Settings or inputs the service refuses (a bad domain prefix, equal ports, an unsafe seed).
    #[error("{0}")]
    Invalid(String),
}

/// Names a failed file operation on the host: `.map_err(io("writing", &path))`.
pub(super) fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> VmError + use<> {
    let path = path.to_owned();
    move |source| VmError::Io(FileError { what, path, source })
}

fn on(domain: &Option<String>) -> String {
    domain.as_deref().map(|d| format!(" {d}")).unwrap_or_default()
}

/// Names what a libvirt call was doing when it fails.
pub(super) trait Doing<T> {
    /// ... on domain `domain`.
    fn doing(self, action: &'static str, domain: &str) -> Result<T, VmError>;
    /// ... on the host (no domain).
    fn doing_host(self, action: &'static str) -> Result<T, VmError>;
}

impl<T> Doing<T> for Result<T, virt::error::Error> {
    fn doing(self, action: &'static str, domain: &str) -> Result<T, VmError> {
        self.map_err(|source| {
            crate::telemetry::libvirt_error(action);
            VmError::Libvirt { action, domain: Some(domain.to_owned()), source }
        })
    }
    fn doing_host(self, action: &'static str) -> Result<T, VmError> {
        self.map_err(|source| {
            crate::telemetry::libvirt_error(action);
            VmError::Libvirt { action, domain: None, source }
        })
    }
}
