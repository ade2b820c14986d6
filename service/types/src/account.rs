//! What happened to an account (its owner's activity list on the settings page and the REST API).
use serde::{Deserialize, Serialize};

string_enum! {
    /// One thing that happened to an account.
    pub enum AccountEventKind {
        LoginSucceeded => "Logged in",
        LoginFailed => "Failed login",
        TokenCreated => "API token created",
        TokenRevoked => "API token revoked",
        PasswordChanged => "Password changed",
        Disabled => "Disabled by an administrator",
        Enabled => "Enabled by an administrator",
    }
}

/// One entry of an account's activity, newest first in lists.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountEventView {
    pub id: i32,
    /// What happened: `login_succeeded`, `login_failed`, `token_created`, `token_revoked`,
    /// `password_changed`, `disabled` or `enabled` (by an administrator).
    #[cfg_attr(feature = "openapi", schema(example = "login_failed"))]
    pub kind: AccountEventKind,
    /// The client's address (logins; other entries where it is known).
    pub client_ip: Option<String>,
    /// More about it: the token's name, why a login failed.
    pub detail: Option<String>,
    /// Milliseconds since the epoch.
    pub created_at: i64,
}

/// One logged-in browser session of the account (settings page, `GET /api/v1/auth/sessions`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionView {
    /// Opaque; names the session in `DELETE /api/v1/auth/sessions/{id}` (not its cookie).
    #[cfg_attr(feature = "openapi", schema(example = "k3Jw9c2mR1uQx8Zb4TfN0g"))]
    pub id: String,
    /// Logged in at (ms since the epoch).
    pub created_at: i64,
    /// Last request at (ms since the epoch), recorded at most once a minute.
    pub last_seen_at: i64,
    /// The client's address when last seen (behind nginx: the real client's).
    pub client_ip: Option<String>,
    /// The browser and system its user agent names, e.g. `Chrome on Linux`.
    #[cfg_attr(feature = "openapi", schema(example = "Chrome on Linux"))]
    pub browser: String,
    /// Whether this is the session making the request (always false for a bearer token).
    pub current: bool,
}
