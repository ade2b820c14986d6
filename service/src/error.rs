//! The service layer's one error type. Mapped once to HTTP (server::api::error) and once to
//! the UI (app::error).
use sea_orm::DbErr;

use crate::proxy::ProxyError;
use crate::vm::VmError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input for one field; `field` is the form/JSON field name.
    #[error("{message}")]
    Validation { field: &'static str, message: String },
    /// A unique thing already exists (email taken, slug taken, hosting already exists...).
    #[error("{message}")]
    Conflict { field: Option<&'static str>, message: String },
    /// Also returned for objects that exist but belong to someone else (no existence leak).
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("authentication required")]
    Unauthorized,
    #[error("wrong email/username or password")]
    InvalidCredentials,
    /// A logged-in user confirmed an action with the wrong password (`field` is its form field).
    #[error("the password is not correct")]
    WrongPassword { field: &'static str },
    #[error("not allowed")]
    Forbidden,
    /// The password was right but an administrator has disabled the account: 403, code
    /// `account_disabled`. (A wrong password still gets `InvalidCredentials`: the state of an
    /// account is told only to someone who knows its password.)
    #[error("this account has been disabled by an administrator")]
    AccountDisabled,
    #[error("too many attempts, try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The owner's backups take their whole backup storage quota: 409, code
    /// `backup_quota_exceeded` (the message names the usage and the limit).
    #[error("{0}")]
    BackupQuota(String),
    /// The node has no room for another hosting (its committed memory or disk would pass the
    /// limit): 507, code `node_full`.
    #[error("{0}")]
    NodeFull(String),
    /// Another operation is running on this object.
    #[error("{0}")]
    Busy(String),
    /// A call into a tenant's VM (its guest agent) did not finish in time (`guest_calls`):
    /// 504, code `guest_timeout`. Nothing was changed on the host.
    #[error("{0}")]
    GuestTimeout(String),
    /// This process no longer holds the hosting's lease (it stalled past the expiry and
    /// another took over): it must stop changing the hosting.
    #[error("hosting {hosting_id}: its lease was lost to another process")]
    LeaseLost { hosting_id: i32 },
    /// Hosting is switched off on this server (it runs without libvirt): 503, not a fault.
    #[error("{0}")]
    HostingUnavailable(String),
    /// A custom domain refused: a bad name (422, code `invalid_domain`), one already added
    /// (409, `domain_taken`), or over the per-user limit (409, `domain_limit`); field `name`.
    #[error(transparent)]
    Domain(#[from] crate::domain_name::DomainError),
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    /// A VM operation failed. Display is the VM error's own (worded for the site's owner);
    /// `source()` continues with its cause (the libvirt or io error).
    #[error(transparent)]
    Vm(#[from] VmError),
    /// An nginx operation failed (same shape as `Vm`).
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// A backup repository operation failed (restic; issue 31).
    #[error(transparent)]
    Backup(#[from] crate::backup::BackupError),
    /// A bug or broken invariant; the message is for the log (and the owner's failed step).
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        Error::Validation { field, message: message.into() }
    }
    pub fn conflict(field: Option<&'static str>, message: impl Into<String>) -> Self {
        Error::Conflict { field, message: message.into() }
    }
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Error::Internal(e.to_string())
    }

    /// Stable machine-readable code for API clients.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Validation { .. } => "validation_failed",
            Error::Conflict { .. } => "conflict",
            Error::NotFound(_) => "not_found",
            Error::Unauthorized => "unauthorized",
            Error::InvalidCredentials => "invalid_credentials",
            Error::WrongPassword { .. } => "wrong_password",
            Error::Forbidden => "forbidden",
            Error::AccountDisabled => "account_disabled",
            Error::RateLimited { .. } => "rate_limited",
            Error::QuotaExceeded(_) => "quota_exceeded",
            Error::BackupQuota(_) => "backup_quota_exceeded",
            Error::NodeFull(_) => "node_full",
            Error::Busy(_) => "busy",
            Error::GuestTimeout(_) => "guest_timeout",
            Error::HostingUnavailable(_) => "hosting_unavailable",
            Error::Domain(d) => d.code(),
            Error::Db(_) | Error::LeaseLost { .. } | Error::Vm(_) | Error::Proxy(_) | Error::Backup(_) | Error::Internal(_) => "internal",
        }
    }

    /// The message used when the server runs without libvirt.
    pub fn hosting_disabled() -> Self {
        Error::HostingUnavailable("hosting is disabled on this server (it runs without libvirt: --no-libvirt)".into())
    }

    /// Whether the message may be shown to the client (internal details stay in the logs).
    pub fn is_internal(&self) -> bool {
        self.code() == "internal"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_and_proxy_errors_keep_their_cause_and_stay_internal() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = Error::from(VmError::Io(crate::file_error::FileError { what: "writing", path: "/d/vms/1/seed.iso".into(), source: io }));
        assert_eq!(e.to_string(), "writing /d/vms/1/seed.iso: denied");
        let cause = std::error::Error::source(&e).expect("the io error is the cause");
        assert_eq!(cause.downcast_ref::<std::io::Error>().map(|e| e.kind()), Some(std::io::ErrorKind::PermissionDenied));
        assert!(e.is_internal());
        let e = Error::from(ProxyError::Rejected { stderr: "nginx: [warn] x\nnginx: [emerg] unknown directive \"y\"\n".into() });
        assert_eq!(e.to_string(), "nginx refused the configuration: nginx: [emerg] unknown directive \"y\"");
        assert_eq!(e.code(), "internal");
    }

    #[test]
    fn disabled_hosting_is_its_own_public_error() {
        let e = Error::hosting_disabled();
        assert_eq!(e.code(), "hosting_unavailable");
        assert!(!e.is_internal(), "the client is told why");
        assert!(e.to_string().contains("--no-libvirt"));
    }
}
