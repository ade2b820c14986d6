//! The administrator's API (`/api/v1/admin/*`): nodes with their capacity, every hosting with
//! its owner, recent events of all users, and accounts with disable/enable. Callers who are not
//! administrators get 403 `forbidden`, as the admin page's server functions do. Administrators
//! act on anyone's hosting through the ordinary `/hostings/{id}/...` endpoints (the service layer
//! lets an administrator past the owner check there).
use axum::extract::State;
use serde::{Deserialize, Serialize};
use service::accounts::UserView;
use service::hosting::{EventView, HostingView, NodeHealth, NodeSite, NodeView};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::extract::{ApiUser, Json, Path, Query};
use super::{ApiResult, hosting};
use app::state::AppState;

/// An account as an administrator sees it.
#[derive(Serialize, ToSchema)]
pub struct AdminUser {
    pub id: i32,
    pub email: String,
    pub username: String,
    pub is_admin: bool,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// When the account was disabled (ms since the epoch); null while it is enabled.
    pub disabled_at: Option<i64>,
}

impl From<UserView> for AdminUser {
    fn from(u: UserView) -> Self {
        Self { id: u.id, email: u.email, username: u.username, is_admin: u.is_admin, created_at: u.created_at, disabled_at: u.disabled_at }
    }
}

/// A node (hypervisor) with what its hostings commit and what is left.
#[derive(Serialize, ToSchema)]
pub struct AdminNode {
    pub id: i32,
    pub name: String,
    pub libvirt_uri: String,
    /// `kvm` or `qemu` (TCG).
    pub domain_type: String,
    /// The host's memory and what is available of it now (KiB).
    pub memory_total_kib: u64,
    pub memory_available_kib: u64,
    /// Plan memory committed by the node's hostings (spares included), the limit a create may
    /// not pass, and what is free below it (MiB).
    pub memory_committed_mib: u64,
    pub memory_limit_mib: u64,
    pub memory_free_mib: u64,
    /// The same for disk (GiB).
    pub disk_committed_gib: u64,
    pub disk_limit_gib: u64,
    pub disk_free_gib: u64,
    /// Users' hostings on the node: all, running, stopped, asleep.
    pub hostings_total: u64,
    pub hostings_running: u64,
    pub hostings_stopped: u64,
    pub hostings_sleeping: u64,
    /// Domains libvirt reports running (spares included).
    pub vms_running: u64,
    /// The IP nginx reaches the node's VM forwards on.
    pub address: String,
    /// Takes no new sites (its sites keep running).
    pub drained: bool,
    /// Added by an administrator (removable when empty); false: the node of the app's settings.
    pub added: bool,
    /// The last health check: connected, libvirt version, guest image, last error.
    pub health: NodeHealth,
    /// Users' sites on the node.
    pub sites: Vec<NodeSite>,
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

impl From<NodeView> for AdminNode {
    fn from(n: NodeView) -> Self {
        Self {
            id: n.id,
            name: n.name,
            libvirt_uri: n.libvirt_uri,
            domain_type: n.domain_type,
            memory_total_kib: n.memory_total_kib,
            memory_available_kib: n.memory_available_kib,
            memory_committed_mib: n.memory_committed_mib,
            memory_limit_mib: n.memory_limit_mib,
            memory_free_mib: n.memory_limit_mib.saturating_sub(n.memory_committed_mib),
            disk_committed_gib: n.disk_committed_gib,
            disk_limit_gib: n.disk_limit_gib,
            disk_free_gib: n.disk_limit_gib.saturating_sub(n.disk_committed_gib),
            hostings_total: n.hostings_total,
            hostings_running: n.hostings_running,
            hostings_stopped: n.hostings_stopped,
            hostings_sleeping: n.hostings_sleeping,
            vms_running: n.vms_running,
            address: n.address,
            drained: n.drained,
            added: n.added,
            health: n.health,
            sites: n.sites,
        }
    }
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
    responses((status = 200, description = "Every account, oldest first", body = Vec<AdminUser>), (status = 401, description = "No or bad token", body = ErrorBody), (status = 403, description = "Not an administrator (code `forbidden`)", body = ErrorBody)))]
pub async fn list_users(State(state): State<AppState>, user: ApiUser) -> ApiResult<axum::Json<Vec<AdminUser>>> {
    let users = state.accounts.list_users(&user.actor()).await?;
    Ok(axum::Json(users.into_iter().map(AdminUser::from).collect()))
}

/// Disables an account: it cannot log in (`account_disabled`), and its sessions, API tokens
/// and event streams stop at once. Its hostings keep running.
#[utoipa::path(operation_id = "admin_disable_user", post, path = "/api/v1/admin/users/{id}/disable", tag = "admin", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, description = "The account, now disabled", body = AdminUser), (status = 401, description = "No or bad token", body = ErrorBody), (status = 403, description = "Not an administrator (code `forbidden`)", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody), (status = 409, description = "Your own account (code `conflict`)", body = ErrorBody)))]
pub async fn disable_user(State(state): State<AppState>, user: ApiUser, Path(id): Path<i32>) -> ApiResult<axum::Json<AdminUser>> {
    Ok(axum::Json(state.accounts.set_disabled(&user.actor(), id, true).await?.into()))
}

/// Enables a disabled account: it can log in again (its old sessions and tokens stay void).
#[utoipa::path(operation_id = "admin_enable_user", post, path = "/api/v1/admin/users/{id}/enable", tag = "admin", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, description = "The account, now enabled", body = AdminUser), (status = 401, description = "No or bad token", body = ErrorBody), (status = 403, description = "Not an administrator (code `forbidden`)", body = ErrorBody), (status = 404, description = "No such account", body = ErrorBody)))]
pub async fn enable_user(State(state): State<AppState>, user: ApiUser, Path(id): Path<i32>) -> ApiResult<axum::Json<AdminUser>> {
    Ok(axum::Json(state.accounts.set_disabled(&user.actor(), id, false).await?.into()))
}

#[utoipa::path(operation_id = "admin_list_nodes", get, path = "/api/v1/admin/nodes", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "The nodes with their capacity", body = Vec<AdminNode>), (status = 401, description = "No or bad token", body = ErrorBody), (status = 403, description = "Not an administrator (code `forbidden`)", body = ErrorBody),
        (status = 503, description = "The server runs without libvirt (code `hosting_unavailable`)", body = ErrorBody)))]
pub async fn list_nodes(State(state): State<AppState>, user: ApiUser) -> ApiResult<axum::Json<Vec<AdminNode>>> {
    admin_only(&user)?;
    let nodes = hosting(&state)?.nodes_info(&user.actor()).await?;
    Ok(axum::Json(nodes.into_iter().map(AdminNode::from).collect()))
}

/// Adds a node. It must answer over its URI and have the guest image (a volume of one of its
/// storage pools at the image's path; see README "Adding a node"); else 422 and nothing is stored.
#[utoipa::path(operation_id = "admin_add_node", post, path = "/api/v1/admin/nodes", tag = "admin", security(("bearer" = [])), request_body = AddNodeRequest,
    responses((status = 201, description = "The node, added", body = AdminNode), (status = 401, description = "No or bad token", body = ErrorBody), (status = 403, description = "Not an administrator (code `forbidden`)", body = ErrorBody),
        (status = 409, description = "A node of this name or URI exists (code `conflict`)", body = ErrorBody),
        (status = 422, description = "A bad field, or the node does not answer or lacks the image (code `validation_failed`)", body = ErrorBody),
        (status = 503, description = "The server runs without libvirt (code `hosting_unavailable`)", body = ErrorBody)))]
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
    responses((status = 200, description = "The node, drained", body = AdminNode), (status = 401, description = "No or bad token", body = ErrorBody), (status = 403, description = "Not an administrator (code `forbidden`)", body = ErrorBody),
        (status = 404, description = "No such node", body = ErrorBody), (status = 503, description = "The server runs without libvirt (code `hosting_unavailable`)", body = ErrorBody)))]
pub async fn drain_node(State(state): State<AppState>, user: ApiUser, Path(id): Path<i32>) -> ApiResult<axum::Json<AdminNode>> {
    admin_only(&user)?;
    Ok(axum::Json(hosting(&state)?.set_node_drained(&user.actor(), id, true).await?.into()))
}

/// Takes a drained node back: new sites may go there again.
#[utoipa::path(operation_id = "admin_undrain_node", post, path = "/api/v1/admin/nodes/{id}/undrain", tag = "admin", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, description = "The node, taking new sites", body = AdminNode), (status = 401, description = "No or bad token", body = ErrorBody), (status = 403, description = "Not an administrator (code `forbidden`)", body = ErrorBody),
        (status = 404, description = "No such node", body = ErrorBody), (status = 503, description = "The server runs without libvirt (code `hosting_unavailable`)", body = ErrorBody)))]
pub async fn undrain_node(State(state): State<AppState>, user: ApiUser, Path(id): Path<i32>) -> ApiResult<axum::Json<AdminNode>> {
    admin_only(&user)?;
    Ok(axum::Json(hosting(&state)?.set_node_drained(&user.actor(), id, false).await?.into()))
}

/// Removes an added node with no sites left (its spares are deleted first).
#[utoipa::path(operation_id = "admin_remove_node", delete, path = "/api/v1/admin/nodes/{id}", tag = "admin", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 204, description = "The node is removed"), (status = 401, description = "No or bad token", body = ErrorBody), (status = 403, description = "Not an administrator (code `forbidden`)", body = ErrorBody),
        (status = 404, description = "No such node", body = ErrorBody),
        (status = 409, description = "It still has sites, or it is the node of the app's settings (code `conflict`), or spares are being removed (code `busy`)", body = ErrorBody),
        (status = 503, description = "The server runs without libvirt (code `hosting_unavailable`)", body = ErrorBody)))]
pub async fn remove_node(State(state): State<AppState>, user: ApiUser, Path(id): Path<i32>) -> ApiResult<axum::http::StatusCode> {
    admin_only(&user)?;
    hosting(&state)?.remove_node(&user.actor(), id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[utoipa::path(operation_id = "admin_list_hostings", get, path = "/api/v1/admin/hostings", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "Every user's hosting (the fields of `GET /hostings/{id}`) with `owner`, the owner's username; act on one with `POST /hostings/{id}/{action}` and `DELETE /hostings/{id}`", body = Vec<AdminHosting>),
        (status = 401, description = "No or bad token", body = ErrorBody), (status = 403, description = "Not an administrator (code `forbidden`)", body = ErrorBody), (status = 503, description = "The server runs without libvirt (code `hosting_unavailable`)", body = ErrorBody)))]
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
    responses((status = 200, description = "The newest hosting events of all users, newest first (the fields of `GET /hostings/{id}/events`)", body = Vec<EventView>),
        (status = 401, description = "No or bad token", body = ErrorBody), (status = 403, description = "Not an administrator (code `forbidden`)", body = ErrorBody), (status = 503, description = "The server runs without libvirt (code `hosting_unavailable`)", body = ErrorBody)))]
pub async fn recent_events(State(state): State<AppState>, user: ApiUser, Query(q): Query<LimitQuery>) -> ApiResult<axum::Json<Vec<EventView>>> {
    admin_only(&user)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    Ok(axum::Json(hosting(&state)?.recent_events(&user.actor(), limit).await?))
}
