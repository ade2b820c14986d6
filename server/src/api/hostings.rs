//! The collection API for users with several hostings.
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use service::hosting::{CreateHosting, EventView, HostingView, Operation, StatSample};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiUser, Json};
use super::host::{WaitQuery, maybe_wait, parse_action};
use super::{ApiResult, hosting};
use app::state::AppState;

#[derive(Deserialize, ToSchema)]
pub struct CreateRequest {
    pub slug: Option<String>,
    pub plan: Option<String>,
    /// Ids of your saved SSH keys to install.
    #[serde(default)]
    pub ssh_key_ids: Vec<i32>,
    /// Extra OpenSSH public key lines.
    #[serde(default)]
    pub ssh_public_keys: Vec<String>,
}

#[utoipa::path(operation_id = "hostings_list", get, path = "/api/v1/hostings", tag = "hostings", security(("bearer" = [])), responses((status = 200, description = "Your hostings")))]
pub async fn list(State(state): State<AppState>, user: ApiUser) -> ApiResult<axum::Json<Vec<HostingView>>> {
    Ok(axum::Json(hosting(&state)?.list(&user.actor()).await?))
}

#[utoipa::path(operation_id = "hostings_create", post, path = "/api/v1/hostings", tag = "hostings", security(("bearer" = [])), request_body = CreateRequest, params(WaitQuery),
    responses((status = 202, description = "Created and queued"), (status = 409, description = "Slug taken"), (status = 422, description = "Invalid input"), (status = 403, description = "Over quota")))]
pub async fn create(
    State(state): State<AppState>,
    user: ApiUser,
    Query(q): Query<WaitQuery>,
    Json(req): Json<CreateRequest>,
) -> ApiResult<(StatusCode, axum::Json<HostingView>)> {
    let h = hosting(&state)?;
    let created = h
        .create(
            &user.actor(),
            CreateHosting { slug: req.slug, plan: req.plan, ssh_key_ids: req.ssh_key_ids, public_keys: req.ssh_public_keys },
        )
        .await?;
    let v = maybe_wait(&state, &user, created.id, q.wait).await?.unwrap_or(created);
    Ok((StatusCode::ACCEPTED, axum::Json(v)))
}

#[utoipa::path(operation_id = "hostings_get", get, path = "/api/v1/hostings/{id}", tag = "hostings", security(("bearer" = [])), params(("id" = i32, Path), WaitQuery),
    responses((status = 200, description = "The hosting"), (status = 404, description = "Not found (or not yours)")))]
pub async fn get(State(state): State<AppState>, user: ApiUser, Path(id): Path<i32>, Query(q): Query<WaitQuery>) -> ApiResult<axum::Json<HostingView>> {
    let v = maybe_wait(&state, &user, id, q.wait).await?.ok_or(service::Error::NotFound("hosting"))?;
    Ok(axum::Json(v))
}

#[utoipa::path(operation_id = "hostings_delete", delete, path = "/api/v1/hostings/{id}", tag = "hostings", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 202, description = "Deletion started"), (status = 404, description = "Not found (or not yours)"), (status = 409, description = "Busy")))]
pub async fn delete(State(state): State<AppState>, user: ApiUser, Path(id): Path<i32>) -> ApiResult<(StatusCode, axum::Json<HostingView>)> {
    Ok((StatusCode::ACCEPTED, axum::Json(hosting(&state)?.action(&user.actor(), id, Operation::Delete).await?)))
}

#[utoipa::path(operation_id = "hostings_action", post, path = "/api/v1/hostings/{id}/{action}", tag = "hostings", security(("bearer" = [])),
    params(("id" = i32, Path), ("action" = String, Path, description = "start, stop or restart"), WaitQuery),
    responses((status = 202, description = "Started"), (status = 404, description = "Not found"), (status = 409, description = "Not possible now")))]
pub async fn action(
    State(state): State<AppState>,
    user: ApiUser,
    Path((id, action)): Path<(i32, String)>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<(StatusCode, axum::Json<HostingView>)> {
    let op = parse_action(&action)?;
    let v = hosting(&state)?.action(&user.actor(), id, op).await?;
    let v = maybe_wait(&state, &user, id, q.wait).await?.unwrap_or(v);
    Ok((StatusCode::ACCEPTED, axum::Json(v)))
}

#[derive(Deserialize, IntoParams)]
pub struct AfterQuery {
    /// Only events with a larger id.
    pub after: Option<i32>,
}

#[utoipa::path(operation_id = "hostings_events", get, path = "/api/v1/hostings/{id}/events", tag = "hostings", security(("bearer" = [])), params(("id" = i32, Path), AfterQuery),
    responses((status = 200, description = "Events, oldest first: each step with its status and duration")))]
pub async fn events(State(state): State<AppState>, user: ApiUser, Path(id): Path<i32>, Query(q): Query<AfterQuery>) -> ApiResult<axum::Json<Vec<EventView>>> {
    Ok(axum::Json(hosting(&state)?.events(&user.actor(), id, q.after.unwrap_or(0)).await?))
}

#[utoipa::path(operation_id = "hostings_stats", get, path = "/api/v1/hostings/{id}/stats", tag = "hostings", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, description = "CPU, memory and disk I/O samples of the last minutes")))]
pub async fn stats(State(state): State<AppState>, user: ApiUser, Path(id): Path<i32>) -> ApiResult<axum::Json<Vec<StatSample>>> {
    Ok(axum::Json(hosting(&state)?.stats_history(&user.actor(), id).await?))
}

#[derive(Deserialize, IntoParams)]
pub struct LinesQuery {
    pub lines: Option<usize>,
}

#[utoipa::path(operation_id = "hostings_console", get, path = "/api/v1/hostings/{id}/console", tag = "hostings", security(("bearer" = [])), params(("id" = i32, Path), LinesQuery),
    responses((status = 200, description = "The last lines of the serial console")))]
pub async fn console(State(state): State<AppState>, user: ApiUser, Path(id): Path<i32>, Query(q): Query<LinesQuery>) -> ApiResult<axum::Json<Vec<String>>> {
    Ok(axum::Json(hosting(&state)?.console(&user.actor(), id, q.lines.unwrap_or(200)).await?))
}
