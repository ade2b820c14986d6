//! The one error type that crosses the server-function boundary. `From<service::Error>` is the
//! only mapping from the service layer (internal details stay in the server's log).
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AppError {
    Unauthorized,
    Forbidden,
    NotFound(String),
    Validation { field: String, message: String },
    Conflict { field: Option<String>, message: String },
    RateLimited { retry_after_secs: u64 },
    Busy(String),
    /// A part of the service is switched off on this server (hosting without libvirt).
    Unavailable(String),
    Internal(String),
}

impl AppError {
    /// The message for a form field, if this error is about `field`.
    pub fn for_field(&self, field: &str) -> Option<String> {
        match self {
            AppError::Validation { field: f, message } if f == field => Some(message.clone()),
            AppError::Conflict { field: Some(f), message } if f == field => Some(message.clone()),
            _ => None,
        }
    }

    /// Whether the error belongs to one of these fields (so it is shown there, not on top).
    pub fn is_field_error(&self, fields: &[&str]) -> bool {
        fields.iter().any(|f| self.for_field(f).is_some())
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Unauthorized => f.write_str("Please log in."),
            AppError::Forbidden => f.write_str("You are not allowed to do that."),
            AppError::NotFound(what) => write!(f, "That {what} does not exist."),
            AppError::Validation { message, .. } => f.write_str(message),
            AppError::Conflict { message, .. } => f.write_str(message),
            AppError::RateLimited { retry_after_secs } => {
                write!(f, "Too many attempts. Try again in {}.", human_secs(*retry_after_secs))
            }
            AppError::Busy(m) => f.write_str(m),
            AppError::Unavailable(m) => f.write_str(m),
            AppError::Internal(m) => f.write_str(m),
        }
    }
}

fn human_secs(s: u64) -> String {
    if s >= 120 { format!("{} minutes", s.div_ceil(60)) } else { format!("{s} seconds") }
}

impl std::error::Error for AppError {}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Internal(match value {
            ServerFnErrorErr::Request(_) => "The server could not be reached. Check your connection.".into(),
            other => other.to_string(),
        })
    }
}

/// The HTTP status of a service error: the one table, used by server functions (here) and by
/// the REST API (`server::api::error`). QuotaExceeded is 403: the request is understood and
/// well-formed, but this account may not have more of the thing (the original API's choice).
#[cfg(feature = "ssr")]
pub fn http_status(e: &service::Error) -> http::StatusCode {
    use http::StatusCode as S;
    use service::Error as E;
    match e {
        E::Validation { .. } | E::WrongPassword { .. } => S::UNPROCESSABLE_ENTITY,
        E::Conflict { .. } | E::Busy(_) | E::BackupQuota(_) => S::CONFLICT,
        E::NotFound(_) => S::NOT_FOUND,
        E::Unauthorized | E::InvalidCredentials => S::UNAUTHORIZED,
        E::Forbidden | E::AccountDisabled | E::QuotaExceeded(_) => S::FORBIDDEN,
        E::NodeFull(_) => S::INSUFFICIENT_STORAGE,
        E::RateLimited { .. } => S::TOO_MANY_REQUESTS,
        E::HostingUnavailable(_) => S::SERVICE_UNAVAILABLE,
        E::GuestTimeout(_) => S::GATEWAY_TIMEOUT,
        E::Domain(service::domain_name::DomainError::Invalid(_)) => S::UNPROCESSABLE_ENTITY,
        E::Domain(_) => S::CONFLICT,
        E::Db(_) | E::LeaseLost { .. } | E::Vm(_) | E::Proxy(_) | E::Backup(_) | E::Internal(_) => S::INTERNAL_SERVER_ERROR,
    }
}

/// The service layer (and the shared name rule) words its messages for logs and APIs ("the
/// password must be ..."); on a form they read as sentences.
pub fn sentence(message: String) -> String {
    let mut chars = message.chars();
    let Some(first) = chars.next() else { return message };
    let mut out: String = first.to_uppercase().chain(chars).collect();
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

#[cfg(feature = "ssr")]
impl From<service::Error> for AppError {
    /// The HTTP status follows the error for fetch calls. A no-JavaScript form post gets none:
    /// leptos answers it with a redirect back to the form (the error in the URL), which a
    /// status would break.
    fn from(e: service::Error) -> Self {
        use service::Error as E;
        let from_plain_form = leptos::prelude::use_context::<http::request::Parts>()
            .and_then(|p| p.headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).map(|v| v.contains("text/html")))
            .unwrap_or(false);
        if !from_plain_form {
            if let Some(opts) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
                opts.set_status(http_status(&e));
            }
        }
        match e {
            E::Validation { field, message } => AppError::Validation { field: field.into(), message: sentence(message) },
            E::Conflict { field, message } => AppError::Conflict { field: field.map(Into::into), message: sentence(message) },
            E::NotFound(what) => AppError::NotFound(what.into()),
            E::Unauthorized => AppError::Unauthorized,
            E::InvalidCredentials => {
                AppError::Validation { field: "login".into(), message: "Wrong email/username or password.".into() }
            }
            E::WrongPassword { field } => AppError::Validation { field: field.into(), message: "The password is not correct.".into() },
            E::Forbidden => AppError::Forbidden,
            E::AccountDisabled => AppError::Validation {
                field: "login".into(),
                message: "This account has been disabled by an administrator, so it cannot log in. Ask them to enable it again.".into(),
            },
            E::RateLimited { retry_after_secs } => AppError::RateLimited { retry_after_secs },
            E::QuotaExceeded(m) => AppError::Conflict { field: None, message: format!("Quota exceeded: {m}") },
            E::BackupQuota(m) => AppError::Conflict { field: None, message: m },
            E::NodeFull(m) => AppError::Conflict { field: None, message: sentence(m) },
            E::Busy(m) | E::GuestTimeout(m) => AppError::Busy(m),
            E::Domain(d @ service::domain_name::DomainError::Invalid(_)) => {
                AppError::Validation { field: "name".into(), message: sentence(d.to_string()) }
            }
            E::Domain(d) => AppError::Conflict { field: Some("name".into()), message: sentence(d.to_string()) },
            E::HostingUnavailable(_) => AppError::Unavailable(
                "Hosting is disabled on this server (it was started without libvirt), so sites cannot be created or managed here."
                    .into(),
            ),
            other => {
                tracing::error!(error = %other, "internal error in a server function");
                AppError::Internal("Something went wrong on our side. Please try again.".into())
            }
        }
    }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;

    #[test]
    fn custom_domain_refusals_are_errors_of_the_name_field() {
        use service::domain_name::{DomainError, DomainNameError};
        let e = service::Error::from(DomainError::Invalid(DomainNameError::Wildcard));
        assert_eq!(http_status(&e), http::StatusCode::UNPROCESSABLE_ENTITY);
        let msg = AppError::from(e).for_field("name").expect("a field error");
        assert!(msg.starts_with("Wildcard names") && msg.ends_with('.'), "{msg}");
        for (e, code) in [(DomainError::Taken("a.example".into()), "domain_taken"), (DomainError::Limit(3), "domain_limit")] {
            let e = service::Error::from(e);
            assert_eq!((http_status(&e), e.code()), (http::StatusCode::CONFLICT, code));
            assert!(AppError::from(e).for_field("name").is_some());
        }
    }

    #[test]
    fn service_errors_become_form_messages() {
        let e = AppError::from(service::Error::validation("password", "the password must be at least 8 characters long"));
        assert_eq!(e.for_field("password").as_deref(), Some("The password must be at least 8 characters long."));
        assert_eq!(e.for_field("email"), None);
        let e = AppError::from(service::Error::InvalidCredentials);
        assert_eq!(e.for_field("login").as_deref(), Some("Wrong email/username or password."));
        let e = AppError::from(service::Error::Internal("db password is hunter2".into()));
        assert!(!e.to_string().contains("hunter2"), "internal detail stays in the log");
        assert_eq!(http_status(&service::Error::RateLimited { retry_after_secs: 3 }), http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(http_status(&service::Error::hosting_disabled()), http::StatusCode::SERVICE_UNAVAILABLE);
        let full = service::Error::NodeFull("this server is full: 512 MiB of memory is committed and the limit is 600 MiB".into());
        assert_eq!(http_status(&full), http::StatusCode::INSUFFICIENT_STORAGE);
        let e = AppError::from(full);
        assert!(matches!(&e, AppError::Conflict { field: None, message } if message.starts_with("This server is full") && message.contains("600 MiB")), "{e:?}");
        assert!(!e.is_field_error(&["slug", "plan"]), "the form shows it on top");
        let e = AppError::from(service::Error::hosting_disabled());
        assert!(matches!(&e, AppError::Unavailable(m) if m.contains("without libvirt")), "{e:?}");
    }
}
