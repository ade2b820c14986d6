//! The original system's single-hosting API: `POST/GET/DELETE /api/v1/host` and
//! `POST /api/v1/host/{start,stop,restart}` act on the caller's first hosting.
use super::extract::Path;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use service::hosting::{CreateHosting, HostingState, HostingView, Operation};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::responses::{CreateErrors, HostErrors, HostOperationErrors};

use super::caller::{Accepted, HostingCaller, accepted};
use super::extract::OptionalJson;
use super::params::WaitQuery;
use super::{ApiError, ApiResult};

/// The site's name and size, as both create calls take them.
#[derive(Deserialize, ToSchema, Default)]
pub struct SiteChoice {
    /// Site name (default: the username): 3-32 of a-z, 0-9 and '-' (taken lower case),
    /// starting with a letter, no trailing or doubled dash; some names are reserved.
    #[schema(min_length = 3, max_length = 32, pattern = "^[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*$")]
    pub slug: Option<String>,
    /// Plan name (default: the first configured plan).
    #[schema(min_length = 1, max_length = 64)]
    pub plan: Option<String>,
}

#[derive(Deserialize, ToSchema, Default)]
pub struct HostRequest {
    /// An OpenSSH public key line to install for the guest user.
    pub ssh_public_key: Option<String>,
    #[serde(flatten)]
    pub site: SiteChoice,
}

/// The hosting as the original system's API showed it: the view plus `status` and `vm_id`.
#[derive(Serialize, ToSchema)]
pub struct HostJson {
    #[serde(flatten)]
    pub hosting: HostingView,
    /// The same as `state` (the original's name for it).
    pub status: HostingState,
    /// The libvirt domain's name.
    pub vm_id: String,
}

pub fn host_json(c: &HostingCaller, v: &HostingView) -> HostJson {
    HostJson { hosting: v.clone(), status: v.state, vm_id: format!("{}{}", c.hostings.config().domain_prefix, v.id) }
}

/// The caller's first hosting: the one this API acts on.
async fn first_hosting(c: &HostingCaller) -> ApiResult<HostingView> {
    Ok(c.hostings.default_for(&c.actor).await?.ok_or(service::Error::NotFound("hosting"))?)
}

/// Creates the caller's hosting. Returns at once (202, state `queued`); poll `GET /host`
/// until `status` is `running`, or pass `?wait=300`.
#[utoipa::path(operation_id = "host_create", post, path = "/api/v1/host", tag = "host", security(("bearer" = [])), params(WaitQuery),
    request_body(content = Option<HostRequest>, description = "Optional; an empty body is fine"),
    responses((status = 202, description = "Created and queued (or finished, with ?wait)", body = HostJson), CreateErrors,
        (status = 409, description = "You already have a hosting, or the slug is taken (`conflict`)", body = ErrorBody)))]
pub async fn create(c: HostingCaller, OptionalJson(body): OptionalJson<HostRequest>) -> ApiResult<Accepted<HostJson>> {
    let body = body.unwrap_or_default();
    if let Some(existing) = c.hostings.default_for(&c.actor).await? {
        return Err(service::Error::conflict(
            None,
            format!("you already have a hosting ('{}', {}); DELETE /api/v1/host first", existing.slug, existing.state),
        )
        .into());
    }
    let created = c
        .hostings
        .create(
            &c.actor,
            CreateHosting {
                slug: body.site.slug,
                plan: body.site.plan,
                ssh_key_ids: Vec::new(),
                public_keys: body.ssh_public_key.into_iter().collect(),
            },
        )
        .await?;
    let v = c.settled(created.id).await?.unwrap_or(created);
    Ok(accepted(host_json(&c, &v)))
}

/// The caller's hosting and its status.
#[utoipa::path(operation_id = "host_get", get, path = "/api/v1/host", tag = "host", security(("bearer" = [])), params(WaitQuery),
    responses((status = 200, description = "The hosting: status, site URLs, ssh_port, ssh_command", body = HostJson), HostErrors))]
pub async fn get(c: HostingCaller) -> ApiResult<axum::Json<HostJson>> {
    let v = first_hosting(&c).await?;
    let v = c.settled(v.id).await?.ok_or(service::Error::NotFound("hosting"))?;
    Ok(axum::Json(host_json(&c, &v)))
}

/// Deletes the caller's hosting (VM, disk, route, ports). 202; with `?wait=` 204 when gone.
#[utoipa::path(operation_id = "host_delete", delete, path = "/api/v1/host", tag = "host", security(("bearer" = [])), params(WaitQuery),
    responses((status = 202, description = "Deletion started", body = HostJson), (status = 204, description = "Deleted (with ?wait)"), HostOperationErrors))]
pub async fn delete(c: HostingCaller) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let v = first_hosting(&c).await?;
    let v = c.hostings.action(&c.actor, v.id, Operation::Delete).await?;
    match c.settled(v.id).await {
        Ok(None) | Err(ApiError::Service(service::Error::NotFound(_))) => Ok(StatusCode::NO_CONTENT.into_response()),
        Ok(Some(v)) => Ok(accepted(host_json(&c, &v)).into_response()),
        Err(e) => Err(e),
    }
}

/// The actions of `POST /host/{action}` and `POST /hostings/{id}/{action}`, as the document
/// lists them (anything else is 404 `not_found`).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // the document's enum; parse_action reads the path
pub enum ActionName {
    Start,
    Stop,
    Restart,
    PowerOff,
    Sleep,
    Wake,
}

pub fn parse_action(action: &str) -> ApiResult<Operation> {
    match action {
        "start" => Ok(Operation::Start),
        "stop" => Ok(Operation::Stop),
        "restart" => Ok(Operation::Restart),
        "power_off" => Ok(Operation::PowerOff),
        "sleep" => Ok(Operation::Sleep),
        "wake" => Ok(Operation::Wake),
        _ => Err(service::Error::NotFound("action").into()),
    }
}

/// `POST /api/v1/host/{start|stop|restart|power_off|sleep|wake}`
#[utoipa::path(operation_id = "host_action", post, path = "/api/v1/host/{action}", tag = "host", security(("bearer" = [])),
    params(("action" = ActionName, Path, description = "start, stop (saves the VM to disk), restart (a reboot), power_off (an ACPI shutdown), sleep (saves it to disk; the next visit wakes it) or wake"), WaitQuery),
    responses((status = 202, description = "Started (or finished, with ?wait)", body = HostJson), HostOperationErrors,
        (status = 404, description = "You have no hosting (yet), or an unknown action", body = ErrorBody)))]
pub async fn action(c: HostingCaller, Path(action): Path<String>) -> ApiResult<Accepted<HostJson>> {
    let op = parse_action(&action)?;
    let v = first_hosting(&c).await?;
    let v = c.hostings.action(&c.actor, v.id, op).await?;
    let v = c.settled(v.id).await?.unwrap_or(v);
    Ok(accepted(host_json(&c, &v)))
}
