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
