//! The collection API for users with several hostings.
use super::extract::{Path, Query};
use serde::Deserialize;
use service::hosting::{CreateHosting, EventView, HostingView, Operation, StatSample};
use utoipa::ToSchema;

use super::ApiResult;
use super::error::ErrorBody;
use super::responses::{CreateErrors, HostingErrors, HostingOff, OperationErrors};
use super::caller::{Accepted, HostingCaller, accepted};
use super::extract::Json;
use super::host::{SiteChoice, parse_action};
use super::params::{AfterQuery, LinesQuery, WaitQuery};

#[derive(Deserialize, ToSchema)]
pub struct CreateRequest {
    #[serde(flatten)]
    pub site: SiteChoice,
    /// Ids of your saved SSH keys to install.
    #[serde(default)]
    pub ssh_key_ids: Vec<i32>,
    /// Extra OpenSSH public key lines.
    #[serde(default)]
    #[schema(max_items = 32)]
    pub ssh_public_keys: Vec<String>,
}

#[utoipa::path(operation_id = "hostings_list", get, path = "/api/v1/hostings", tag = "hostings", security(("bearer" = [])), responses((status = 200, description = "Your hostings", body = Vec<HostingView>), HostingOff))]
pub async fn list(c: HostingCaller) -> ApiResult<axum::Json<Vec<HostingView>>> {
    Ok(axum::Json(c.hostings.list(&c.actor).await?))
}

#[utoipa::path(operation_id = "hostings_create", post, path = "/api/v1/hostings", tag = "hostings", security(("bearer" = [])), request_body = CreateRequest, params(WaitQuery),
    responses((status = 202, description = "Created and queued (or finished, with ?wait)", body = HostingView), CreateErrors,
        (status = 404, description = "One of `ssh_key_ids` is not one of your saved keys (`not_found`)", body = ErrorBody)))]
pub async fn create(c: HostingCaller, Json(req): Json<CreateRequest>) -> ApiResult<Accepted<HostingView>> {
    let want = CreateHosting { slug: req.site.slug, plan: req.site.plan, ssh_key_ids: req.ssh_key_ids, public_keys: req.ssh_public_keys };
    let created = c.hostings.create(&c.actor, want).await?;
    let v = c.settled(created.id).await?.unwrap_or(created);
    Ok(accepted(v))
}

#[utoipa::path(operation_id = "hostings_get", get, path = "/api/v1/hostings/{id}", tag = "hostings", security(("bearer" = [])), params(("id" = i32, Path), WaitQuery),
    responses((status = 200, description = "The hosting", body = HostingView), HostingErrors))]
pub async fn get(c: HostingCaller, Path(id): Path<i32>) -> ApiResult<axum::Json<HostingView>> {
    let v = c.settled(id).await?.ok_or(service::Error::NotFound("hosting"))?;
    Ok(axum::Json(v))
}

/// What a PATCH of a hosting may change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostingPatch {
    /// Never put the site to sleep when it has no visits (at most `--always-on-per-user` of
    /// your sites; 409 `conflict` past it).
    pub always_on: Option<bool>,
}

#[utoipa::path(operation_id = "hostings_patch", patch, path = "/api/v1/hostings/{id}", tag = "hostings", security(("bearer" = [])), params(("id" = i32, Path)), request_body = HostingPatch,
    responses((status = 200, description = "The hosting as it is now", body = HostingView), HostingErrors,
        (status = 409, description = "Over the always-on limit", body = ErrorBody), (status = 422, description = "Invalid input", body = ErrorBody)))]
pub async fn patch(c: HostingCaller, Path(id): Path<i32>, Json(req): Json<HostingPatch>) -> ApiResult<axum::Json<HostingView>> {
    let v = match req.always_on {
        Some(on) => c.hostings.set_always_on(&c.actor, id, on).await?,
        None => c.hostings.get(&c.actor, id).await?,
    };
    Ok(axum::Json(v))
}

#[utoipa::path(operation_id = "hostings_delete", delete, path = "/api/v1/hostings/{id}", tag = "hostings", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 202, description = "Deletion started", body = HostingView), OperationErrors))]
pub async fn delete(c: HostingCaller, Path(id): Path<i32>) -> ApiResult<Accepted<HostingView>> {
    Ok(accepted(c.hostings.action(&c.actor, id, Operation::Delete).await?))
}

#[utoipa::path(operation_id = "hostings_action", post, path = "/api/v1/hostings/{id}/{action}", tag = "hostings", security(("bearer" = [])),
    params(("id" = i32, Path), ("action" = super::host::ActionName, Path, description = "start, stop (saves the VM to disk), restart (a reboot), power_off (an ACPI shutdown), sleep (saves it to disk; the next visit wakes it) or wake"), WaitQuery),
    responses((status = 202, description = "Started (or finished, with ?wait)", body = HostingView), OperationErrors,
        (status = 404, description = "Not found (or not yours), or an unknown action", body = ErrorBody),
        (status = 405, description = "The action's name is another endpoint of the hosting that takes no POST (`events`, `stats`, `console`, `stream`; `method_not_allowed`, with `Allow`)", body = ErrorBody)))]
pub async fn action(c: HostingCaller, Path((id, action)): Path<(i32, String)>) -> ApiResult<Accepted<HostingView>> {
    let op = parse_action(&action)?;
    let v = c.hostings.action(&c.actor, id, op).await?;
    let v = c.settled(id).await?.unwrap_or(v);
    Ok(accepted(v))
}

#[utoipa::path(operation_id = "hostings_events", get, path = "/api/v1/hostings/{id}/events", tag = "hostings", security(("bearer" = [])), params(("id" = i32, Path), AfterQuery),
    responses((status = 200, description = "Events, oldest first: each step with its status and duration", body = Vec<EventView>), HostingErrors))]
pub async fn events(c: HostingCaller, Path(id): Path<i32>, Query(q): Query<AfterQuery>) -> ApiResult<axum::Json<Vec<EventView>>> {
    Ok(axum::Json(c.hostings.events(&c.actor, id, q.after.unwrap_or(0)).await?))
}

#[utoipa::path(operation_id = "hostings_stats", get, path = "/api/v1/hostings/{id}/stats", tag = "hostings", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, description = "CPU, memory and disk I/O samples of the last minutes", body = Vec<StatSample>), HostingErrors))]
pub async fn stats(c: HostingCaller, Path(id): Path<i32>) -> ApiResult<axum::Json<Vec<StatSample>>> {
    Ok(axum::Json(c.hostings.stats_history(&c.actor, id).await?))
}

#[utoipa::path(operation_id = "hostings_console", get, path = "/api/v1/hostings/{id}/console", tag = "hostings", security(("bearer" = [])), params(("id" = i32, Path), LinesQuery),
    responses((status = 200, description = "The last lines of the serial console", body = Vec<String>), HostingErrors))]
pub async fn console(c: HostingCaller, Path(id): Path<i32>, Query(q): Query<LinesQuery>) -> ApiResult<axum::Json<Vec<String>>> {
    Ok(axum::Json(c.hostings.console(&c.actor, id, q.lines.unwrap_or(200)).await?))
}
