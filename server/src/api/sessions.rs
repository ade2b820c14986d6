//! `/api/v1/auth/sessions`: the caller's logged-in browser sessions, listed and ended (one, or
//! all but the current). A bearer-token caller has no current session: "all others" is all.
//! Ending a session deletes its record, so its cookie fails on the next request and its open
//! event streams and consoles close at their next recheck (`ApiUser::still_valid`).
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use service::accounts::SessionView;
use utoipa::{IntoParams, ToSchema};

use super::ApiResult;
use super::error::ErrorBody;
use super::extract::{ApiUser, Credential, Path, Query};
use app::state::AppState;

/// The calling browser session's id, None for a bearer token.
async fn current(user: &ApiUser, session: &tower_sessions::Session) -> Option<String> {
    match user.1 {
        Credential::Session(..) => app::auth::login_id(session).await,
        Credential::Token(_) => None,
    }
}

#[utoipa::path(operation_id = "sessions_list", get, path = "/api/v1/auth/sessions", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "Your logged-in browser sessions, newest first; the calling one has `current: true` (none for a bearer token). Last seen is recorded at most once a minute.", body = Vec<SessionView>)))]
pub async fn list(State(state): State<AppState>, user: ApiUser, session: tower_sessions::Session) -> ApiResult<axum::Json<Vec<SessionView>>> {
    let current = current(&user, &session).await;
    Ok(axum::Json(state.accounts.list_sessions(&user.actor(), current.as_deref()).await?))
}

#[utoipa::path(operation_id = "sessions_end", delete, path = "/api/v1/auth/sessions/{sid}", tag = "auth", security(("bearer" = [])),
    params(("sid" = String, Path, description = "A session's `id` from the list")),
    responses((status = 204, description = "Ended: that browser is logged out at its next request"),
        (status = 404, description = "No such session of yours", body = ErrorBody)))]
pub async fn end(State(state): State<AppState>, user: ApiUser, Path(sid): Path<String>) -> ApiResult<StatusCode> {
    state.accounts.end_session(&user.actor(), &sid).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EndAllQuery {
    /// true: all but the calling session (a bearer-token caller has none: all). Absent or
    /// false: all, the calling one too.
    #[serde(default)]
    pub others: bool,
}

/// How many sessions a `DELETE /api/v1/auth/sessions` ended.
#[derive(Serialize, ToSchema)]
pub struct EndedSessions {
    pub ended: u64,
}

#[utoipa::path(operation_id = "sessions_end_all", delete, path = "/api/v1/auth/sessions", tag = "auth", security(("bearer" = [])),
    params(EndAllQuery),
    responses((status = 200, description = "How many were ended", body = EndedSessions)))]
pub async fn end_all(
    State(state): State<AppState>,
    user: ApiUser,
    session: tower_sessions::Session,
    Query(q): Query<EndAllQuery>,
) -> ApiResult<axum::Json<EndedSessions>> {
    let keep = if q.others { current(&user, &session).await } else { None };
    let ended = state.accounts.end_sessions(&user.actor(), keep.as_deref()).await?;
    if keep.is_none() && matches!(user.1, Credential::Session(..)) {
        // This one was ended too: its cookie goes with this answer.
        let _ = session.flush().await;
    }
    Ok(axum::Json(EndedSessions { ended }))
}
