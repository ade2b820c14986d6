use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use service::accounts::{AccountEventView, ApiTokenView, NewUser, SshKeyView, UserView};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::extract::{ApiUser, Form, Json, Path};
use super::responses::QuotaErrors;
use super::ApiResult;
use app::state::AppState;

/// Login tokens last a day (API tokens until revoked).
const LOGIN_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// An email address (at most 254 characters).
    #[schema(format = Email, min_length = 3, max_length = 254)]
    pub email: String,
    /// 8 to 128 characters, not one character repeated.
    #[schema(format = Password, min_length = 8, max_length = 128)]
    pub password: String,
    /// 3-32 of a-z, 0-9 and '-' (taken lower case), starting with a letter, no trailing or
    /// doubled dash; some names are reserved (422 `validation_failed`).
    #[schema(min_length = 3, max_length = 32, pattern = "^[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*$")]
    pub username: String,
}

/// `POST /api/v1/auth/register` (JSON), as the original system's scripts call it. Limited
/// per client address and per instance (`--signups-per-address`, `--signups-per-hour`).
#[utoipa::path(operation_id = "accounts_register", post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, description = "The new account", body = UserView),
        (status = 409, description = "Email or username taken (`field` says which)", body = ErrorBody),
        (status = 422, description = "A field is invalid (`field` says which)", body = ErrorBody),
        (status = 429, description = "Too many sign-ups from this address or on this instance (code `rate_limited`, Retry-After)", body = ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(req): Json<RegisterRequest>,
) -> ApiResult<(StatusCode, axum::Json<UserView>)> {
    let ip = app::auth::client_from(Some(peer.ip()), Some(&headers));
    let user = state
        .accounts
        .sign_up(NewUser { email: req.email, username: req.username, password: req.password }, ip)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(user)))
}

/// The OAuth2 password form: `username` may be the email or the username.
#[derive(Deserialize, ToSchema)]
pub struct LoginForm {
    /// The email or the username (at most 254 characters; not blank).
    #[schema(min_length = 1, max_length = 254, pattern = "\\S")]
    pub username: String,
    #[schema(format = Password, min_length = 1, max_length = 1024)]
    pub password: String,
    #[serde(default)]
    pub grant_type: Option<String>,
}

/// A bearer token minted at login.
#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    pub access_token: String,
    /// Always `bearer`.
    #[schema(example = "bearer")]
    pub token_type: String,
    /// Seconds until the token stops working.
    pub expires_in: u64,
}

/// `POST /api/v1/auth/login` (application/x-www-form-urlencoded) -> a bearer token.
#[utoipa::path(operation_id = "accounts_login", post, path = "/api/v1/auth/login", tag = "auth",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "A bearer token for `Authorization: Bearer ...`", body = LoginResponse),
        (status = 401, description = "Wrong credentials (`invalid_credentials`)", body = ErrorBody),
        (status = 403, description = "Right password, but an administrator has disabled the account (`account_disabled`)", body = ErrorBody),
        (status = 422, description = "An empty or blank login or password (`validation_failed`, `field` says which)", body = ErrorBody),
        (status = 429, description = "Too many attempts (Retry-After)", body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> ApiResult<axum::Json<LoginResponse>> {
    let ip = app::auth::client_from(Some(peer.ip()), Some(&headers));
    let user = state.accounts.authenticate(&f.username, &f.password, ip).await?;
    let (token, _expires) = state.accounts.issue_login_token(user.id, LOGIN_TOKEN_TTL).await?;
    Ok(axum::Json(LoginResponse { access_token: token, token_type: "bearer".into(), expires_in: LOGIN_TOKEN_TTL.as_secs() }))
}

/// `GET /api/v1/users/me`
#[utoipa::path(operation_id = "accounts_me", get, path = "/api/v1/users/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "The calling user", body = UserView)))]
pub async fn me(user: ApiUser) -> axum::Json<UserView> {
    axum::Json(user.0)
}

#[derive(Deserialize, ToSchema)]
pub struct TokenRequest {
    /// 1 to 64 characters, no control characters, not blank.
    #[schema(min_length = 1, max_length = 64, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub name: String,
    /// The account's current password (a token outlives the session that asks for it).
    #[schema(format = Password, min_length = 1, max_length = 1024)]
    pub password: String,
    /// Days until the token stops working (1 to 3650); absent: until revoked.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<u32>,
}

#[utoipa::path(operation_id = "accounts_list_tokens", get, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    responses((status = 200, description = "Your named API tokens (never their secrets), each with `expires_at` and `last_used_at` (ms since the epoch; last use is recorded at most once a minute)", body = Vec<ApiTokenView>)))]
pub async fn list_tokens(State(state): State<AppState>, user: ApiUser) -> ApiResult<axum::Json<Vec<ApiTokenView>>> {
    Ok(axum::Json(state.accounts.list_api_tokens(&user.actor()).await?))
}

/// Creates an API token (with the current password; optionally expiring); its secret is in
/// this response only. Every token is revoked when the password changes.
#[utoipa::path(operation_id = "accounts_create_token", post, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])), request_body = TokenRequest,
    responses((status = 201, description = "The token with its secret (`token`), shown this once", body = CreatedToken), QuotaErrors,
        (status = 422, description = "Wrong password (code `wrong_password`, field `password`) or a bad name or expiry", body = ErrorBody),
        (status = 429, description = "Too many tokens created recently", body = ErrorBody)))]
pub async fn create_token(State(state): State<AppState>, user: ApiUser, Json(req): Json<TokenRequest>) -> ApiResult<(StatusCode, axum::Json<CreatedToken>)> {
    let (token, view) = state.accounts.create_api_token(&user.actor(), &req.name, &req.password, req.expires_in_days).await?;
    Ok((StatusCode::CREATED, axum::Json(CreatedToken { view, token })))
}

/// A new API token: its listing plus the secret, which no later answer repeats.
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub view: ApiTokenView,
    /// The secret, for `Authorization: Bearer ...`.
    pub token: String,
}

#[utoipa::path(operation_id = "accounts_revoke_token", delete, path = "/api/v1/tokens/{id}", tag = "tokens", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 204, description = "Revoked"), (status = 404, description = "No such token of yours", body = ErrorBody)))]
pub async fn revoke_token(State(state): State<AppState>, user: ApiUser, Path(id): Path<i32>) -> ApiResult<StatusCode> {
    state.accounts.revoke_api_token(&user.actor(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct SshKeyRequest {
    /// Up to 64 characters, no control characters (blank: the key's comment or type).
    #[serde(default)]
    #[schema(max_length = 64, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub name: String,
    /// One OpenSSH public key line: `ssh-ed25519 AAAA... comment` (ssh-ed25519, ecdsa-sha2-nistp256/384/521,
    /// ssh-rsa of 2048 to 16384 bits, or their security-key kinds).
    #[schema(min_length = 1, max_length = 16384, pattern = "^\\s*(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\\.com|sk-ecdsa-sha2-nistp256@openssh\\.com) ")]
    pub public_key: String,
}

#[utoipa::path(operation_id = "accounts_list_keys", get, path = "/api/v1/ssh-keys", tag = "ssh-keys", security(("bearer" = [])), responses((status = 200, description = "Your SSH keys", body = Vec<SshKeyView>)))]
pub async fn list_keys(State(state): State<AppState>, user: ApiUser) -> ApiResult<axum::Json<Vec<SshKeyView>>> {
    Ok(axum::Json(state.accounts.list_ssh_keys(&user.actor()).await?))
}

#[utoipa::path(operation_id = "accounts_add_key", post, path = "/api/v1/ssh-keys", tag = "ssh-keys", security(("bearer" = [])), request_body = SshKeyRequest,
    responses((status = 201, description = "The key with its fingerprint", body = SshKeyView), QuotaErrors,
        (status = 409, description = "Already added", body = ErrorBody),
        (status = 422, description = "Not a valid OpenSSH public key", body = ErrorBody)))]
pub async fn add_key(State(state): State<AppState>, user: ApiUser, Json(req): Json<SshKeyRequest>) -> ApiResult<(StatusCode, axum::Json<SshKeyView>)> {
    Ok((StatusCode::CREATED, axum::Json(state.accounts.add_ssh_key(&user.actor(), &req.name, &req.public_key).await?)))
}

#[utoipa::path(operation_id = "accounts_delete_key", delete, path = "/api/v1/ssh-keys/{id}", tag = "ssh-keys", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such key of yours", body = ErrorBody)))]
pub async fn delete_key(State(state): State<AppState>, user: ApiUser, Path(id): Path<i32>) -> ApiResult<StatusCode> {
    state.accounts.delete_ssh_key(&user.actor(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The account's newest activity entries shown (the settings page shows as many).
pub const ACTIVITY_SHOWN: u64 = 50;

/// Your account's activity, newest first (the last 50): logins with their address, API tokens
/// created and revoked, password changes.
#[utoipa::path(operation_id = "accounts_activity", get, path = "/api/v1/account/activity", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "Newest first, at most 50", body = Vec<AccountEventView>)))]
pub async fn activity(State(state): State<AppState>, user: ApiUser) -> ApiResult<axum::Json<Vec<AccountEventView>>> {
    Ok(axum::Json(state.accounts.activity(&user.actor(), ACTIVITY_SHOWN).await?))
}
