use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{AdminData, UserView};
#[cfg(feature = "ssr")]
use crate::auth;

#[server(prefix = "/api/fn", endpoint = "admin_overview")]
pub async fn admin_overview() -> Result<AdminData, AppError> {
    let (state, me, actor) = auth::require_admin().await?;
    let users = state.accounts.list_users(&actor).await?;
    let Some(h) = &state.hosting else {
        let node = crate::model::NodeView {
            id: 0,
            name: state.config.node_name.clone(),
            libvirt_uri: String::new(),
            domain_type: "-".into(),
            memory_total_kib: 0,
            memory_available_kib: 0,
            hostings_total: 0,
            vms_running: 0,
            hostings_running: 0,
            hostings_stopped: 0,
            hostings_sleeping: 0,
            memory_committed_mib: 0,
            memory_limit_mib: 0,
            disk_committed_gib: 0,
            disk_limit_gib: 0,
            address: String::new(),
            drained: false,
            added: false,
            health: Default::default(),
            sites: Vec::new(),
        };
        return Ok(AdminData { nodes: vec![node], hostings: Vec::new(), events: Vec::new(), users, me: me.id, tls: Default::default() });
    };
    let nodes = h.nodes_info(&actor).await?;
    let hostings = h.list_all(&actor).await?;
    let events = h.recent_events(&actor, 50).await?;
    let tls = h.tls_overview(&actor).await?;
    Ok(AdminData { nodes, hostings, events, users, me: me.id, tls })
}

/// Drains a node (`drained` true: no new sites go there) or takes it back (administrators only).
#[server(prefix = "/api/fn", endpoint = "admin_set_node_drained")]
pub async fn admin_set_node_drained(node_id: i32, drained: bool) -> Result<crate::model::NodeView, AppError> {
    let (state, _, actor) = auth::require_admin().await?;
    let h = state.hosting.as_ref().ok_or_else(|| AppError::from(service::Error::HostingUnavailable("hosting is off".into())))?;
    Ok(h.set_node_drained(&actor, node_id, drained).await?)
}

/// Adds a node by its libvirt URI (administrators only): the form's fields as typed, numbers
/// checked here so each bad one is named; the service checks the rest and that the node answers
/// with the guest image and the shared folder (nothing is stored otherwise).
#[server(prefix = "/api/fn", endpoint = "admin_add_node")]
pub async fn admin_add_node(
    name: String,
    libvirt_uri: String,
    address: String,
    memory_mib: String,
    disk_gib: String,
) -> Result<crate::model::NodeView, AppError> {
    let (state, _, actor) = auth::require_admin().await?;
    let h = state.hosting.as_ref().ok_or_else(|| AppError::from(service::Error::HostingUnavailable("hosting is off".into())))?;
    let number = |field: &str, v: &str, what: &str| {
        v.trim().parse::<u64>().map_err(|_| AppError::Validation { field: field.into(), message: format!("{what} must be a whole number.") })
    };
    let new = service::hosting::nodes::NewNode {
        name: name.trim().to_owned(),
        libvirt_uri: libvirt_uri.trim().to_owned(),
        address: address.trim().to_owned(),
        memory_mib: number("memory_mib", &memory_mib, "Memory (MiB)")?,
        disk_gib: number("disk_gib", &disk_gib, "Disk (GiB)")?,
    };
    Ok(h.add_node(&actor, new).await?)
}

/// Removes an added node with no sites left (administrators only).
#[server(prefix = "/api/fn", endpoint = "admin_remove_node")]
pub async fn admin_remove_node(node_id: i32) -> Result<(), AppError> {
    let (state, _, actor) = auth::require_admin().await?;
    let h = state.hosting.as_ref().ok_or_else(|| AppError::from(service::Error::HostingUnavailable("hosting is off".into())))?;
    Ok(h.remove_node(&actor, node_id).await?)
}

/// Disables (`disabled` true) or enables an account (administrators only; not their own).
#[server(prefix = "/api/fn", endpoint = "admin_set_disabled")]
pub async fn admin_set_disabled(user_id: i32, disabled: bool) -> Result<UserView, AppError> {
    let (state, _, actor) = auth::require_admin().await?;
    Ok(state.accounts.set_disabled(&actor, user_id, disabled).await?)
}
