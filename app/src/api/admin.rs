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
        return Ok(AdminData {
            node_name: state.config.node_name.clone(),
            domain_type: "-".into(),
            memory_total_kib: 0,
            memory_available_kib: 0,
            vms_running: 0,
            hostings: Vec::new(),
            events: Vec::new(),
            users,
        });
    };
    let node = h.node_info(&actor).await?;
    let hostings = h.list_all(&actor).await?.into_iter().map(|(v, owner)| (v.into(), owner)).collect();
    let events = h.recent_events(&actor, 50).await?.into_iter().map(Into::into).collect();
    Ok(AdminData {
        node_name: node.name,
        domain_type: node.domain_type,
        memory_total_kib: node.memory_total_kib,
        memory_available_kib: node.memory_available_kib,
        vms_running: node.vms_running,
        hostings,
        events,
        users,
    })
}
