//! Extractors: the calling user (bearer token or session cookie), and JSON/form bodies, path
//! parameters and query strings whose rejections use the API's error shape (never axum's
//! text/plain "Invalid URL").
use axum::extract::path::ErrorKind;
use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use service::accounts::{Actor, UserView};

use super::error::ApiError;
use app::state::AppState;

/// The authenticated caller, and the credential it came with (long-lived responses such as
/// the event stream check it again).
pub struct ApiUser(pub UserView, pub Credential);

#[derive(Clone)]
pub enum Credential {
    Token(String),
    /// A browser session: its id and the user's auth version when it was checked.
    Session(Option<tower_sessions::session::Id>, i32),
}

impl ApiUser {
    pub fn actor(&self) -> Actor {
        service::accounts::AsActor::actor(&self.0)
    }

    /// Whether the credential still holds: the token is not revoked or expired; the session
    /// was not logged out and the password (auth version) did not change; the account exists.
    pub async fn still_valid(&self, state: &AppState) -> bool {
        match &self.1 {
            Credential::Token(t) => state.accounts.user_for_token(t).await.is_ok_and(|u| u.id == self.0.id && u.is_admin == self.0.is_admin),
            Credential::Session(id, av) => {
                use tower_sessions::SessionStore;
                let Some(id) = id else { return false };
                let alive = service::accounts::session_store::DbSessionStore::new(state.db.clone()).load(id).await.is_ok_and(|r| r.is_some());
                let same_password = state.accounts.auth_version(self.0.id).await.is_ok_and(|v| v == *av);
                let same_role = state.accounts.get_user(self.0.id).await.is_ok_and(|u| u.is_admin == self.0.is_admin);
                alive && same_password && same_role
            }
        }
    }
}

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(auth) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
            let token = auth
                .strip_prefix("Bearer ")
                .or_else(|| auth.strip_prefix("bearer "))
                .ok_or(service::Error::Unauthorized)?;
            let token = token.trim();
            return Ok(ApiUser(state.accounts.user_for_token(token).await?, Credential::Token(token.to_owned())));
        }
        let session = tower_sessions::Session::from_request_parts(parts, state)
            .await
            .map_err(|_| service::Error::Unauthorized)?;
        match app::auth::session_user(&session, state).await {
            Ok(Some(u)) => {
                let av = state.accounts.auth_version(u.id).await?;
                Ok(ApiUser(u, Credential::Session(session.id(), av)))
            }
            _ => Err(service::Error::Unauthorized.into()),
        }
    }
}

/// `axum::Json` with our error shape for bad bodies.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(rej: JsonRejection) -> Self {
        let (code, msg) = match &rej {
            JsonRejection::MissingJsonContentType(_) => ("unsupported_media_type", "send Content-Type: application/json".to_string()),
            JsonRejection::JsonSyntaxError(e) => ("invalid_json", format!("the body is not valid JSON: {}", e.body_text())),
            JsonRejection::JsonDataError(e) => ("invalid_body", e.body_text()),
            other => ("invalid_body", other.body_text()),
        };
        ApiError::bad(code, msg)
    }
}

/// An optional JSON body: empty is None (the original `POST /host` takes no body).
pub struct OptionalJson<T>(pub Option<T>);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad("invalid_body", e.to_string()))?;
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(OptionalJson(None));
        }
        serde_json::from_slice(&bytes)
            .map(|v| OptionalJson(Some(v)))
            .map_err(|e| ApiError::bad("invalid_json", format!("the body is not valid JSON: {e}")))
    }
}

/// `axum::Form` with our error shape.
#[derive(FromRequest)]
#[from_request(via(axum::Form), rejection(ApiError))]
pub struct Form<T>(pub T);

impl From<FormRejection> for ApiError {
    fn from(rej: FormRejection) -> Self {
        ApiError::bad("invalid_form", rej.body_text())
    }
}

/// `axum::extract::Path` with our error shape: a path parameter of the wrong type or out of
/// range (`/hostings/abc`, `/hostings/2147483648`) is 400 `invalid_path`.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(rej: PathRejection) -> Self {
        let PathRejection::FailedToDeserializePathParams(e) = &rej else {
            // A route without the parameters its handler reads: a bug of ours, not the caller's.
            return ApiError::Service(service::Error::internal(rej.body_text()));
        };
        let message = match e.kind() {
            ErrorKind::ParseErrorAtKey { key, value, expected_type } => {
                format!("the path's `{key}` must be {}; '{value}' is not", kind_of(expected_type))
            }
            ErrorKind::ParseErrorAtIndex { value, expected_type, .. } | ErrorKind::ParseError { value, expected_type } => {
                format!("a path parameter must be {}; '{value}' is not", kind_of(expected_type))
            }
            ErrorKind::InvalidUtf8InPathParam { key } => format!("the path's `{key}` is not valid UTF-8"),
            _ => "the path does not name a resource this API has".to_owned(),
        };
        ApiError::bad("invalid_path", message)
    }
}

/// What a Rust type means to a caller of the API.
fn kind_of(rust_type: &str) -> &'static str {
    match rust_type {
        "i32" => "a whole number from -2147483648 to 2147483647",
        "i64" => "a whole number",
        "u32" | "u64" | "usize" => "a whole number from 0",
        "bool" => "true or false",
        _ => "of the documented type",
    }
}

/// `axum::extract::Query` with our error shape: a query parameter of the wrong type is 400
/// `invalid_query`.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

impl From<QueryRejection> for ApiError {
    fn from(rej: QueryRejection) -> Self {
        let detail = rej.body_text();
        let detail = detail.strip_prefix("Failed to deserialize query string: ").unwrap_or(&detail);
        ApiError::bad("invalid_query", format!("the query string is not valid: {detail}"))
    }
}
