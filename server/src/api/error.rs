//! The REST API's one error shape: `{"error": {"code", "message", "field"?}}`, mapped once
//! from the service layer's errors.
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error answer of the API.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code: `validation_failed`, `conflict`, `not_found`,
    /// `unauthorized`, `invalid_credentials`, `wrong_password`, `forbidden`, `rate_limited`,
    /// `quota_exceeded`, `node_full`, `busy`, `guest_timeout`, `hosting_unavailable`,
    /// `invalid_domain`, `domain_taken`, `domain_limit` (custom domains),
    /// `too_many_streams`, `invalid_json`, `invalid_body`, `invalid_form`, `invalid_wait`,
    /// `invalid_path`, `invalid_query`, `unsupported_media_type`, `method_not_allowed`,
    /// `payload_too_large` (from nginx) or `internal`.
    #[schema(example = "not_found")]
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The request field at fault (validation errors, taken emails or usernames, a wrong password).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorBody {
    pub(crate) fn json(code: &str, message: String, field: Option<&str>) -> Json<ErrorBody> {
        Json(ErrorBody { error: ErrorDetail { code: code.to_owned(), message, field: field.map(str::to_owned) } })
    }
}

#[derive(Debug)]
pub enum ApiError {
    Service(service::Error),
    /// Bad request bodies (not JSON, wrong types, missing fields).
    BadRequest { code: &'static str, message: String },
    /// The account holds as many event streams and long polls as it may (429).
    TooManyStreams { max: usize },
    /// A cookie-authenticated WebSocket handshake from another site (403, code `csrf`).
    CrossSite,
    /// The console takes the dashboard's session, never a token (401, code `session_required`).
    SessionRequired,
}

impl From<service::Error> for ApiError {
    fn from(e: service::Error) -> Self {
        ApiError::Service(e)
    }
}

impl ApiError {
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest { code, message: message.into() }
    }
}

/// Status codes come from the one table in `app::error::http_status` (shared with the server
/// functions): Validation and WrongPassword (code `wrong_password`, with its `field`) 422, Conflict/Busy 409, NotFound 404, Unauthorized/InvalidCredentials
/// 401, Forbidden/QuotaExceeded 403, NodeFull 507 (code `node_full`), RateLimited 429 (+ Retry-After), HostingUnavailable 503
/// (code `hosting_unavailable`: the server runs without libvirt), GuestTimeout 504 (code `guest_timeout`: the site's
/// VM did not finish a call in time), internal 500.
pub use app::error::http_status as status_of;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::BadRequest { code, message } => (StatusCode::BAD_REQUEST, ErrorBody::json(code, message, None)).into_response(),
            ApiError::CrossSite => (StatusCode::FORBIDDEN, ErrorBody::json("csrf", "cross-site request refused".to_owned(), None)).into_response(),
            ApiError::SessionRequired => {
                let msg = "the console opens with your dashboard session (sign in in the browser); API tokens cannot open it";
                (StatusCode::UNAUTHORIZED, ErrorBody::json("session_required", msg.to_owned(), None)).into_response()
            }
            ApiError::TooManyStreams { max } => {
                let message = format!(
                    "this account already holds {max} event streams and long polls (?wait=) open, the most it may; close one first"
                );
                let mut resp = (StatusCode::TOO_MANY_REQUESTS, ErrorBody::json("too_many_streams", message, None)).into_response();
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                resp
            }
            ApiError::Service(e) => {
                let status = status_of(&e);
                let message = if e.is_internal() {
                    tracing::error!(error = %e, "internal error in the REST API");
                    "internal error; it was logged".to_string()
                } else {
                    e.to_string()
                };
                let field = match &e {
                    service::Error::Validation { field, .. } | service::Error::WrongPassword { field } => Some(*field),
                    service::Error::Conflict { field, .. } => *field,
                    service::Error::Domain(_) => Some("name"),
                    _ => None,
                };
                let mut resp = (status, ErrorBody::json(e.code(), message, field)).into_response();
                match &e {
                    service::Error::RateLimited { retry_after_secs } => {
                        if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                            resp.headers_mut().insert(header::RETRY_AFTER, v);
                        }
                    }
                    service::Error::Unauthorized | service::Error::InvalidCredentials => {
                        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                    }
                    _ => {}
                }
                resp
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
