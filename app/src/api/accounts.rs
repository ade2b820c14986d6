use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{AccountEventView, ApiTokenView, SessionView, SshKeyView, UserView};
#[cfg(feature = "ssr")]
use crate::auth;

/// The logged-in user, if any (None for visitors: not an error).
#[server(prefix = "/api/fn", endpoint = "current_user")]
pub async fn current_user() -> Result<Option<UserView>, AppError> {
    let state = auth::state()?;
    let session = auth::session().await?;
    Ok(auth::session_user(&session, &state).await?)
}

#[server(prefix = "/api/fn", endpoint = "signup")]
pub async fn signup(email: String, username: String, password: String) -> Result<(), AppError> {
    let state = auth::state()?;
    let ip = auth::client_ip().await;
    let user = state
        .accounts
        .sign_up(service::accounts::NewUser { email, username, password }, ip)
        .await?;
    let session = auth::session().await?;
    auth::login_session(&session, &state, &user).await?;
    leptos_axum::redirect("/dashboard");
    Ok(())
}

#[server(prefix = "/api/fn", endpoint = "login")]
pub async fn login(login: String, password: String) -> Result<(), AppError> {
    let state = auth::state()?;
    let ip = auth::client_ip().await;
    let user = state.accounts.authenticate(&login, &password, ip).await?;
    let session = auth::session().await?;
    auth::login_session(&session, &state, &user).await?;
    leptos_axum::redirect("/dashboard");
    Ok(())
}

#[server(prefix = "/api/fn", endpoint = "logout")]
pub async fn logout() -> Result<(), AppError> {
    let state = auth::state()?;
    let session = auth::session().await?;
    auth::logout_session(&session, &state).await?;
    leptos_axum::redirect("/login");
    Ok(())
}

/// Availability of an email or username while the person types.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Availability {
    Available,
    Taken(String),
    Invalid(String),
}

#[server(prefix = "/api/fn", endpoint = "check_signup_field")]
pub async fn check_signup_field(field: String, value: String) -> Result<Availability, AppError> {
    let state = auth::state()?;
    let res = match field.as_str() {
        "email" => state.accounts.email_available(&value).await,
        "username" => state.accounts.username_available(&value).await,
        _ => return Err(AppError::Validation { field, message: "unknown field".into() }),
    };
    Ok(match res {
        Ok(true) => Availability::Available,
        Ok(false) if field == "email" => Availability::Taken("An account with this email already exists.".into()),
        Ok(false) => Availability::Taken("This username is taken.".into()),
        Err(service::Error::Validation { message, .. }) => Availability::Invalid(message),
        Err(e) => return Err(e.into()),
    })
}

#[server(prefix = "/api/fn", endpoint = "change_password")]
pub async fn change_password(current_password: String, new_password: String) -> Result<String, AppError> {
    let (state, user, actor) = auth::require_user().await?;
    state.accounts.change_password(&actor, &current_password, &new_password).await?;
    let session = auth::session().await?;
    auth::refresh_session(&session, &state, user.id).await?;
    Ok("Password changed. Other sessions were signed out and your API tokens revoked.".into())
}

/// Deletes the account: first every hosting (VMs, disks, routes), then the account itself.
#[server(prefix = "/api/fn", endpoint = "delete_account")]
pub async fn delete_account(password: String) -> Result<(), AppError> {
    let (state, _user, actor) = auth::require_user().await?;
    state.accounts.check_password(&actor, &password).await?;
    if let Some(h) = &state.hosting {
        h.delete_all_for_user(&actor, std::time::Duration::from_secs(180)).await?;
    }
    state.accounts.delete_user(&actor, &password).await?;
    let session = auth::session().await?;
    auth::logout_session(&session, &state).await?;
    leptos_axum::redirect("/");
    Ok(())
}

#[server(prefix = "/api/fn", endpoint = "list_ssh_keys")]
pub async fn list_ssh_keys() -> Result<Vec<SshKeyView>, AppError> {
    let (state, _, actor) = auth::require_user().await?;
    Ok(state.accounts.list_ssh_keys(&actor).await?)
}

#[server(prefix = "/api/fn", endpoint = "add_ssh_key")]
pub async fn add_ssh_key(name: String, public_key: String) -> Result<SshKeyView, AppError> {
    let (state, _, actor) = auth::require_user().await?;
    Ok(state.accounts.add_ssh_key(&actor, &name, &public_key).await?)
}

#[server(prefix = "/api/fn", endpoint = "delete_ssh_key")]
pub async fn delete_ssh_key(id: i32) -> Result<(), AppError> {
    let (state, _, actor) = auth::require_user().await?;
    Ok(state.accounts.delete_ssh_key(&actor, id).await?)
}

#[server(prefix = "/api/fn", endpoint = "list_api_tokens")]
pub async fn list_api_tokens() -> Result<Vec<ApiTokenView>, AppError> {
    let (state, _, actor) = auth::require_user().await?;
    Ok(state.accounts.list_api_tokens(&actor).await?)
}

/// Creates a named API token (needs the current password; `expires_in_days` empty = no
/// expiry); the secret is shown once.
#[server(prefix = "/api/fn", endpoint = "create_api_token")]
pub async fn create_api_token(
    name: String,
    password: String,
    #[server(default)] expires_in_days: String,
) -> Result<(ApiTokenView, String), AppError> {
    let (state, _, actor) = auth::require_user().await?;
    let days = match expires_in_days.trim() {
        "" => None,
        d => Some(d.parse::<u32>().map_err(|_| AppError::Validation {
            field: "expires_in_days".into(),
            message: "Enter a number of days, or leave it empty for no expiry.".into(),
        })?),
    };
    let (secret, view) = state.accounts.create_api_token(&actor, &name, &password, days).await?;
    Ok((view, secret))
}

#[server(prefix = "/api/fn", endpoint = "revoke_api_token")]
pub async fn revoke_api_token(id: i32) -> Result<(), AppError> {
    let (state, _, actor) = auth::require_user().await?;
    Ok(state.accounts.revoke_api_token(&actor, id).await?)
}

/// The caller's own account activity, newest first (the last 50).
#[server(prefix = "/api/fn", endpoint = "account_activity")]
pub async fn account_activity() -> Result<Vec<AccountEventView>, AppError> {
    let (state, _, actor) = auth::require_user().await?;
    Ok(state.accounts.activity(&actor, 50).await?)
}

/// The caller's logged-in browser sessions, newest first, this one marked `current`.
#[server(prefix = "/api/fn", endpoint = "list_sessions")]
pub async fn list_sessions() -> Result<Vec<SessionView>, AppError> {
    // The session is extracted once, first: a page's resource runs this during SSR, where
    // the request's parts may be out of reach after other awaits.
    let (state, actor, session) = user_and_session().await?;
    let current = auth::login_id(&session).await;
    Ok(state.accounts.list_sessions(&actor, current.as_deref()).await?)
}

#[cfg(feature = "ssr")]
async fn user_and_session() -> Result<(crate::state::AppState, service::accounts::Actor, tower_sessions::Session), AppError> {
    use service::accounts::AsActor;
    let state = auth::state()?;
    let session = auth::session().await?;
    let user = auth::session_user(&session, &state).await?.ok_or(AppError::Unauthorized)?;
    Ok((state, user.actor(), session))
}

/// Ends one of the caller's sessions (its browser is logged out on its next request).
#[server(prefix = "/api/fn", endpoint = "end_session")]
pub async fn end_session(id: String) -> Result<(), AppError> {
    let (state, _, actor) = auth::require_user().await?;
    Ok(state.accounts.end_session(&actor, &id).await?)
}

/// Ends every session of the caller but this one; how many.
#[server(prefix = "/api/fn", endpoint = "end_other_sessions")]
pub async fn end_other_sessions() -> Result<u64, AppError> {
    let (state, actor, session) = user_and_session().await?;
    let current = auth::login_id(&session).await;
    Ok(state.accounts.end_sessions(&actor, current.as_deref()).await?)
}
