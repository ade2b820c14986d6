//! The administrator's API (`/api/v1/admin/*`): nodes with their capacity, every hosting with
//! its owner, recent events of all users, and accounts with disable/enable. Callers who are not
//! administrators get 403 `forbidden`, as the admin page's server functions do. Administrators
//! act on anyone's hosting through the ordinary `/hostings/{id}/...` endpoints (the service layer
//! lets an administrator past the owner check there).
use axum::extract::State;
use serde::{Deserialize, Serialize};
use service::accounts::UserView;
use service::hosting::{EventView, HostingView, NodeView};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::extract::{ApiUser, Json, Path, Query};
use super::responses::{AccountAdminErrors, AdminErrors, HostingAdminErrors, NodeErrors};
use super::{ApiResult, hosting};
use app::state::AppState;

/// A node with what is free below its limits: the service's [`NodeView`] and, worked out from
/// it, the plan memory and disk a create may still commit.
#[derive(Serialize, ToSchema)]
pub struct AdminNode {
    #[serde(flatten)]
    pub node: NodeView,
    /// Plan memory a create may still commit on the node: `memory_limit_mib` less
    /// `memory_committed_mib` (MiB).
    pub memory_free_mib: u64,
    /// The same for disk (GiB).
    pub disk_free_gib: u64,
}

impl From<NodeView> for AdminNode {
    fn from(node: NodeView) -> Self {
        Self { memory_free_mib: node.memory_free_mib(), disk_free_gib: node.disk_free_gib(), node }
    }
}

/// A node to add: its libvirt URI, the address of its VM forwards, its capacity.
#[derive(Deserialize, ToSchema)]
pub struct AddNodeRequest {
    /// 1-32 of a-z, 0-9 and '-', not starting with '-'.
    #[schema(min_length = 1, max_length = 32, pattern = "^[a-z0-9][a-z0-9-]*$")]
    pub name: String,
    /// `qemu+ssh://user@host[:port]/system` (or `/session`), `qemu+tls://host/system`;
    /// parameters `keyfile`, `known_hosts`, `no_verify`, `sshauth`, `pkipath`, `mode`, `proxy` only.
    #[schema(min_length = 1, max_length = 400, pattern = "^[a-z+]+://[!-~]*$")]
    pub libvirt_uri: String,
    /// The IP nginx reaches the node's VM forwards on (QEMU binds them there).
    #[schema(min_length = 2, max_length = 64)]
    pub address: String,
    /// Memory (MiB) and disk (GiB) the node's sites may commit (before the overcommit ratios).
    #[schema(minimum = 64, maximum = 67108864)]
    pub memory_mib: u64,
    #[schema(minimum = 1, maximum = 1048576)]
    pub disk_gib: u64,
}

/// A hosting with its owner's username (the hosting's own fields as `GET /hostings/{id}` gives them).
#[derive(Serialize, ToSchema)]
pub struct AdminHosting {
    #[serde(flatten)]
    pub hosting: HostingView,
    /// The owner's username.
    pub owner: String,
}

fn admin_only(user: &ApiUser) -> ApiResult<()> {
    if user.0.is_admin { Ok(()) } else { Err(service::Error::Forbidden.into()) }
}

#[utoipa::path(operation_id = "admin_list_users", get, path = "/api/v1/admin/users", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "Every account, oldest first", body = Vec<UserView>), AdminErrors))]
pub async fn list_users(State(state): State<AppState>, user: ApiUser) -> ApiResult<axum::Json<Vec<UserView>>> {
    Ok(axum::Json(state.accounts.list_users(&user.actor()).await?))
}

/// Disables an account: it cannot log in (`account_disabled`), and its sessions, API tokens
/// and event streams stop at once. Its hostings keep running.
#[utoipa::path(operation_id = "admin_disable_user", post, path = "/api/v1/admin/users/{id}/disable", tag = "admin", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, description = "The account, now disabled", body = UserView), AccountAdminErrors,
        (status = 409, description = "Your own account (code `conflict`)", body = ErrorBody)))]
pub async fn disable_user(State(state): State<AppState>, user: ApiUser, Path(id): Path<i32>) -> ApiResult<axum::Json<UserView>> {
    Ok(axum::Json(state.accounts.set_disabled(&user.actor(), id, true).await?))
}

/// Enables a disabled account: it can log in again (its old sessions and tokens stay void).
#[utoipa::path(operation_id = "admin_enable_user", post, path = "/api/v1/admin/users/{id}/enable", tag = "admin", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, description = "The account, now enabled", body = UserView), AccountAdminErrors))]
pub async fn enable_user(State(state): State<AppState>, user: ApiUser, Path(id): Path<i32>) -> ApiResult<axum::Json<UserView>> {
    Ok(axum::Json(state.accounts.set_disabled(&user.actor(), id, false).await?))
}

#[utoipa::path(operation_id = "admin_list_nodes", get, path = "/api/v1/admin/nodes", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "The nodes with their capacity", body = Vec<AdminNode>), HostingAdminErrors))]
pub async fn list_nodes(State(state): State<AppState>, user: ApiUser) -> ApiResult<axum::Json<Vec<AdminNode>>> {
    admin_only(&user)?;
    let nodes = hosting(&state)?.nodes_info(&user.actor()).await?;
    Ok(axum::Json(nodes.into_iter().map(AdminNode::from).collect()))
}

/// Adds a node. It must answer over its URI and have the guest image (a volume of one of its
/// storage pools at the image's path; see README "Adding a node"); else 422 and nothing is stored.
#[utoipa::path(operation_id = "admin_add_node", post, path = "/api/v1/admin/nodes", tag = "admin", security(("bearer" = [])), request_body = AddNodeRequest,
    responses((status = 201, description = "The node, added", body = AdminNode), HostingAdminErrors,
        (status = 409, description = "A node of this name or URI exists (code `conflict`)", body = ErrorBody),
        (status = 422, description = "A bad field, or the node does not answer or lacks the image (code `validation_failed`)", body = ErrorBody)))]
pub async fn add_node(State(state): State<AppState>, user: ApiUser, Json(req): Json<AddNodeRequest>) -> ApiResult<(axum::http::StatusCode, axum::Json<AdminNode>)> {
    admin_only(&user)?;
    let new = service::hosting::nodes::NewNode {
        name: req.name,
        libvirt_uri: req.libvirt_uri,
        address: req.address,
        memory_mib: req.memory_mib,
        disk_gib: req.disk_gib,
    };
    let node = hosting(&state)?.add_node(&user.actor(), new).await?;
    Ok((axum::http::StatusCode::CREATED, axum::Json(node.into())))
}

/// Drains a node: no new sites or spares go there; its sites keep running.
#[utoipa::path(operation_id = "admin_drain_node", post, path = "/api/v1/admin/nodes/{id}/drain", tag = "admin", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, description = "The node, drained", body = AdminNode), NodeErrors))]
pub async fn drain_node(State(state): State<AppState>, user: ApiUser, Path(id): Path<i32>) -> ApiResult<axum::Json<AdminNode>> {
    admin_only(&user)?;
    Ok(axum::Json(hosting(&state)?.set_node_drained(&user.actor(), id, true).await?.into()))
}

/// Takes a drained node back: new sites may go there again.
#[utoipa::path(operation_id = "admin_undrain_node", post, path = "/api/v1/admin/nodes/{id}/undrain", tag = "admin", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, description = "The node, taking new sites", body = AdminNode), NodeErrors))]
pub async fn undrain_node(State(state): State<AppState>, user: ApiUser, Path(id): Path<i32>) -> ApiResult<axum::Json<AdminNode>> {
    admin_only(&user)?;
    Ok(axum::Json(hosting(&state)?.set_node_drained(&user.actor(), id, false).await?.into()))
}

/// Removes an added node with no sites left (its spares are deleted first).
#[utoipa::path(operation_id = "admin_remove_node", delete, path = "/api/v1/admin/nodes/{id}", tag = "admin", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 204, description = "The node is removed"), NodeErrors,
        (status = 409, description = "It still has sites, or it is the node of the app's settings (code `conflict`), or spares are being removed (code `busy`)", body = ErrorBody)))]
pub async fn remove_node(State(state): State<AppState>, user: ApiUser, Path(id): Path<i32>) -> ApiResult<axum::http::StatusCode> {
    admin_only(&user)?;
    hosting(&state)?.remove_node(&user.actor(), id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[utoipa::path(operation_id = "admin_list_hostings", get, path = "/api/v1/admin/hostings", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "Every user's hosting (the fields of `GET /hostings/{id}`) with `owner`, the owner's username; act on one with `POST /hostings/{id}/{action}` and `DELETE /hostings/{id}`", body = Vec<AdminHosting>), HostingAdminErrors))]
pub async fn list_hostings(State(state): State<AppState>, user: ApiUser) -> ApiResult<axum::Json<Vec<AdminHosting>>> {
    admin_only(&user)?;
    let all = hosting(&state)?.list_all(&user.actor()).await?;
    Ok(axum::Json(all.into_iter().map(|(hosting, owner)| AdminHosting { hosting, owner }).collect()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LimitQuery {
    /// How many (1 to 500; default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u64>,
}

#[utoipa::path(operation_id = "admin_recent_events", get, path = "/api/v1/admin/events", tag = "admin", security(("bearer" = [])), params(LimitQuery),
    responses((status = 200, description = "The newest hosting events of all users, newest first (the fields of `GET /hostings/{id}/events`)", body = Vec<EventView>), HostingAdminErrors))]
pub async fn recent_events(State(state): State<AppState>, user: ApiUser, Query(q): Query<LimitQuery>) -> ApiResult<axum::Json<Vec<EventView>>> {
    admin_only(&user)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    Ok(axum::Json(hosting(&state)?.recent_events(&user.actor(), limit).await?))
}

/// The instance's certificates (the dashboard's, the sites' wildcard, each site's and custom
/// domain's), troubled ones first, and which names are served over HTTP only.
#[utoipa::path(operation_id = "admin_certificates", get, path = "/api/v1/admin/certificates", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "Certificates and notes", body = vmw_types::TlsOverview), HostingAdminErrors))]
pub async fn certificates(State(state): State<AppState>, user: ApiUser) -> ApiResult<axum::Json<vmw_types::TlsOverview>> {
    admin_only(&user)?;
    Ok(axum::Json(hosting(&state)?.tls_overview(&user.actor()).await?))
}
