use leptos::prelude::*;

use crate::error::AppError;
use crate::model::AdminData;
#[cfg(feature = "ssr")]
use crate::auth;

#[server(prefix = "/api/fn", endpoint = "admin_overview")]
pub async fn admin_overview() -> Result<AdminData, AppError> {
    let (state, _, actor) = auth::require_admin().await?;
    let users = state.accounts.list_users(&actor).await?.len();
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
            memory_committed_mib: 0,
            memory_limit_mib: 0,
            disk_committed_gib: 0,
            disk_limit_gib: 0,
        };
        return Ok(AdminData { node, hostings: Vec::new(), events: Vec::new(), users });
    };
    let node = h.node_info(&actor).await?;
    let hostings = h.list_all(&actor).await?;
    let events = h.recent_events(&actor, 50).await?;
    Ok(AdminData { node, hostings, events, users })
}
