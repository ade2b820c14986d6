//! The original system's single-hosting API: `POST/GET/DELETE /api/v1/host` and
//! `POST /api/v1/host/{start,stop,restart}` act on the caller's first hosting.
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use service::hosting::{CreateHosting, HostingView, Operation};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiUser, OptionalJson};
use super::{ApiError, ApiResult, hosting};
use app::state::AppState;

#[derive(Deserialize, ToSchema, Default)]
pub struct HostRequest {
    /// An OpenSSH public key line to install for the guest user.
    pub ssh_public_key: Option<String>,
    /// Site name (default: the username).
    pub slug: Option<String>,
    /// Plan name (default: the first configured plan).
    pub plan: Option<String>,
}

#[derive(Deserialize, IntoParams)]
pub struct WaitQuery {
    /// Wait up to this many seconds (max 600) for the operation to finish before answering.
    pub wait: Option<u64>,
}

/// The view plus the original's field names (`status`, `vm_id`).
pub fn host_json(v: &HostingView, prefix: &str) -> serde_json::Value {
    let mut j = serde_json::to_value(v).unwrap_or_default();
    j["status"] = serde_json::Value::from(v.state.as_str());
    j["vm_id"] = serde_json::Value::from(format!("{prefix}{}", v.id));
    j
}

pub(crate) async fn maybe_wait(state: &AppState, user: &ApiUser, id: i32, wait: Option<u64>) -> ApiResult<Option<HostingView>> {
    let h = hosting(state)?;
    match wait {
        Some(secs) if secs > 0 => match h.wait_settled(&user.actor(), id, Duration::from_secs(secs.min(600))).await {
            Ok(v) => Ok(v),
            Err(service::Error::Busy(_)) => Ok(Some(h.get(&user.actor(), id).await?)),
            Err(e) => Err(e.into()),
        },
        _ => Ok(Some(h.get(&user.actor(), id).await?)),
    }
}

/// Creates the caller's hosting. Returns at once (202, state `queued`); poll `GET /host`
/// until `status` is `running`, or pass `?wait=300`.
#[utoipa::path(operation_id = "host_create", post, path = "/api/v1/host", tag = "host", security(("bearer" = [])), params(WaitQuery),
    request_body(content = Option<HostRequest>, description = "Optional; an empty body is fine"),
    responses((status = 202, description = "Created and queued (or finished, with ?wait)"), (status = 409, description = "You already have a hosting"), (status = 422, description = "Bad slug, plan or key"), (status = 403, description = "Over quota")))]
pub async fn create(
    State(state): State<AppState>,
    user: ApiUser,
    Query(q): Query<WaitQuery>,
    OptionalJson(body): OptionalJson<HostRequest>,
) -> ApiResult<(StatusCode, axum::Json<serde_json::Value>)> {
    let h = hosting(&state)?;
    let body = body.unwrap_or_default();
    if let Some(existing) = h.default_for(&user.actor()).await? {
        return Err(service::Error::conflict(
            None,
            format!("you already have a hosting ('{}', {}); DELETE /api/v1/host first", existing.slug, existing.state),
        )
        .into());
    }
    let created = h
        .create(
            &user.actor(),
            CreateHosting {
                slug: body.slug,
                plan: body.plan,
                ssh_key_ids: Vec::new(),
                public_keys: body.ssh_public_key.into_iter().collect(),
            },
        )
        .await?;
    let v = maybe_wait(&state, &user, created.id, q.wait).await?.unwrap_or(created);
    Ok((StatusCode::ACCEPTED, axum::Json(host_json(&v, &state.config.domain_prefix))))
}

/// The caller's hosting and its status.
#[utoipa::path(operation_id = "host_get", get, path = "/api/v1/host", tag = "host", security(("bearer" = [])), params(WaitQuery),
    responses((status = 200, description = "The hosting: status, site URLs, ssh_port, ssh_command"), (status = 404, description = "No hosting yet")))]
pub async fn get(State(state): State<AppState>, user: ApiUser, Query(q): Query<WaitQuery>) -> ApiResult<axum::Json<serde_json::Value>> {
    let h = hosting(&state)?;
    let v = h.default_for(&user.actor()).await?.ok_or(service::Error::NotFound("hosting"))?;
    let v = maybe_wait(&state, &user, v.id, q.wait).await?.ok_or(service::Error::NotFound("hosting"))?;
    Ok(axum::Json(host_json(&v, &state.config.domain_prefix)))
}

/// Deletes the caller's hosting (VM, disk, route, ports). 202; with `?wait=` 204 when gone.
#[utoipa::path(operation_id = "host_delete", delete, path = "/api/v1/host", tag = "host", security(("bearer" = [])), params(WaitQuery),
    responses((status = 202, description = "Deletion started"), (status = 204, description = "Deleted (with ?wait)"), (status = 404, description = "No hosting"), (status = 409, description = "Busy with another operation")))]
pub async fn delete(State(state): State<AppState>, user: ApiUser, Query(q): Query<WaitQuery>) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let h = hosting(&state)?;
    let v = h.default_for(&user.actor()).await?.ok_or(service::Error::NotFound("hosting"))?;
    let v = h.action(&user.actor(), v.id, Operation::Delete).await?;
    match maybe_wait(&state, &user, v.id, q.wait).await {
        Ok(None) | Err(ApiError::Service(service::Error::NotFound(_))) => Ok(StatusCode::NO_CONTENT.into_response()),
        Ok(Some(v)) => Ok((StatusCode::ACCEPTED, axum::Json(host_json(&v, &state.config.domain_prefix))).into_response()),
        Err(e) => Err(e),
    }
}

pub fn parse_action(action: &str) -> ApiResult<Operation> {
    match action {
        "start" => Ok(Operation::Start),
        "stop" => Ok(Operation::Stop),
        "restart" => Ok(Operation::Restart),
        _ => Err(service::Error::NotFound("action").into()),
    }
}

/// `POST /api/v1/host/{start|stop|restart}`
#[utoipa::path(operation_id = "host_action", post, path = "/api/v1/host/{action}", tag = "host", security(("bearer" = [])),
    params(("action" = String, Path, description = "start, stop or restart"), WaitQuery),
    responses((status = 202, description = "Started"), (status = 409, description = "Not possible in this state, or busy"), (status = 404, description = "No hosting or unknown action")))]
pub async fn action(
    State(state): State<AppState>,
    user: ApiUser,
    Path(action): Path<String>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<(StatusCode, axum::Json<serde_json::Value>)> {
    let op = parse_action(&action)?;
    let h = hosting(&state)?;
    let v = h.default_for(&user.actor()).await?.ok_or(service::Error::NotFound("hosting"))?;
    let v = h.action(&user.actor(), v.id, op).await?;
    let v = maybe_wait(&state, &user, v.id, q.wait).await?.unwrap_or(v);
    Ok((StatusCode::ACCEPTED, axum::Json(host_json(&v, &state.config.domain_prefix))))
}
