//! The service layer's one error type. Mapped once to HTTP (server::api::error) and once to
//! the UI (app::error).
use sea_orm::DbErr;

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
    #[error("not allowed")]
    Forbidden,
    #[error("too many attempts, try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// Another operation is running on this object.
    #[error("{0}")]
    Busy(String),
    /// This process no longer holds the hosting's lease (it stalled past the expiry and
    /// another took over): it must stop changing the hosting.
    #[error("hosting {hosting_id}: its lease was lost to another process")]
    LeaseLost { hosting_id: i32 },
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    #[error("virtualisation error: {0}")]
    Vm(String),
    #[error("proxy error: {0}")]
    Proxy(String),
    #[error("internal error: {0}")]
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
            Error::Forbidden => "forbidden",
            Error::RateLimited { .. } => "rate_limited",
            Error::QuotaExceeded(_) => "quota_exceeded",
            Error::Busy(_) => "busy",
            Error::Db(_) | Error::LeaseLost { .. } | Error::Vm(_) | Error::Proxy(_) | Error::Internal(_) => "internal",
        }
    }

    /// Whether the message may be shown to the client (internal details stay in the logs).
    pub fn is_internal(&self) -> bool {
        self.code() == "internal"
    }
}
