//! A hosting's snapshots: disk and memory of the site (running, or asleep/stopped with its memory
//! saved), restorable to it running as it was.
use super::extract::Path;
use axum::http::StatusCode;
use serde::Deserialize;
use service::hosting::{HostingView, SnapshotView};
use utoipa::ToSchema;

use super::ApiResult;
use super::caller::{Accepted, HostingCaller, accepted};
use super::error::ErrorBody;
use super::extract::Json;
use super::params::WaitQuery;
use super::responses::{HostingErrors, OperationErrors};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRequest {
    /// 1-64 characters: letters, digits, spaces and `- _ . : ( )` (422 `validation_failed`
    /// with `field: name` otherwise; 409 `conflict` when the site has one of that name).
    #[schema(min_length = 1, max_length = 64, pattern = "^ *[A-Za-z0-9_.:()-][A-Za-z0-9 _.:()-]*$")]
    pub name: String,
}

#[utoipa::path(operation_id = "snapshots_list", get, path = "/api/v1/hostings/{id}/snapshots", tag = "snapshots", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, description = "The hosting's snapshots, oldest first", body = Vec<SnapshotView>), HostingErrors))]
pub async fn list(c: HostingCaller, Path(id): Path<i32>) -> ApiResult<axum::Json<Vec<SnapshotView>>> {
    Ok(axum::Json(c.hostings.list_snapshots(&c.actor, id).await?))
}

#[utoipa::path(operation_id = "snapshots_take", post, path = "/api/v1/hostings/{id}/snapshots", tag = "snapshots", security(("bearer" = [])), params(("id" = i32, Path), WaitQuery), request_body = SnapshotRequest,
    responses((status = 202, description = "Being taken (`state: taking`; a running site pauses for a few seconds, a sleeping or stopped one stays so), or taken, with ?wait", body = SnapshotView), HostingErrors,
        (status = 403, description = "Over the snapshot quota (`quota_exceeded`: count or disk per user)", body = ErrorBody),
        (status = 409, description = "Busy (`busy`), no memory to take (`conflict`, field `state`: powered off, failed or not made yet), a name taken (`conflict`, field `name`), or, with ?wait, the snapshot failed (the site is as it was; the reason is in its `state_reason`)", body = ErrorBody),
        (status = 422, description = "A bad name (`validation_failed`, field `name`)", body = ErrorBody)))]
pub async fn take(c: HostingCaller, Path(id): Path<i32>, Json(req): Json<SnapshotRequest>) -> ApiResult<Accepted<SnapshotView>> {
    let s = c.hostings.take_snapshot(&c.actor, id, &req.name).await?;
    let Some(h) = c.settled(id).await? else { return Err(service::Error::NotFound("hosting").into()) };
    if h.operation.is_some() {
        return Ok(accepted(s));
    }
    match c.hostings.list_snapshots(&c.actor, id).await?.into_iter().find(|x| x.id == s.id) {
        Some(now) => Ok(accepted(now)),
        None => Err(service::Error::conflict(None, h.state_reason.unwrap_or_else(|| "the snapshot failed".into())).into()),
    }
}

#[utoipa::path(operation_id = "snapshots_restore", post, path = "/api/v1/hostings/{id}/snapshots/{sid}/restore", tag = "snapshots", security(("bearer" = [])), params(("id" = i32, Path), ("sid" = i32, Path), WaitQuery),
    responses((status = 202, description = "Restoring (or restored, with ?wait: running again as it was when the snapshot was taken; a failed restore leaves the site as it was, with the reason)", body = HostingView), OperationErrors,
        (status = 409, description = "Busy, or the snapshot is still being taken", body = ErrorBody)))]
pub async fn restore(c: HostingCaller, Path((id, sid)): Path<(i32, i32)>) -> ApiResult<Accepted<HostingView>> {
    let v = c.hostings.restore_snapshot(&c.actor, id, sid).await?;
    Ok(accepted(c.settled(id).await?.unwrap_or(v)))
}

#[utoipa::path(operation_id = "snapshots_delete", delete, path = "/api/v1/hostings/{id}/snapshots/{sid}", tag = "snapshots", security(("bearer" = [])), params(("id" = i32, Path), ("sid" = i32, Path)),
    responses((status = 204, description = "Deleted (its files too)"), OperationErrors, (status = 409, description = "Busy (a snapshot or restore runs)", body = ErrorBody)))]
pub async fn delete(c: HostingCaller, Path((id, sid)): Path<(i32, i32)>) -> ApiResult<StatusCode> {
    c.hostings.delete_snapshot(&c.actor, id, sid).await?;
    Ok(StatusCode::NO_CONTENT)
}
