//! What clients see of a hosting and its events: the views are vmw-types' (shared with the
//! browser build); this module builds them from rows and configuration.
use crate::ServiceConfig;
use crate::store::HostingRow;

pub use vmw_types::{EventView, HostingView, NodeHealth, NodeSite, NodeView, StatSample};

/// The view of a user's hosting. `queue_position` is set while it waits for a slot.
pub fn hosting_view(m: &HostingRow, cfg: &ServiceConfig, queue_position: Option<u32>) -> HostingView {
    let host = cfg.public_host_with_port();
    let sub_port = cfg.nginx_port_suffix();
    let user_id = m.user_id.unwrap_or_default();
    HostingView {
        id: m.id,
        user_id,
        node_id: m.node_id,
        slug: m.slug.clone(),
        plan: m.plan.clone(),
        state: m.state,
        state_reason: m.state_reason.clone(),
        operation: m.operation,
        created_as: m.created_as,
        ssh_port: m.ssh_port,
        http_port: m.http_port,
        created_at: m.created_at,
        updated_at: m.updated_at,
        running_since: m.running_since,
        site_url: format!("http://{host}/{}/", m.slug),
        user_url: format!("http://{host}/{user_id}/"),
        subdomain_url: format!("http://{}.{}{sub_port}/", m.slug, cfg.base_domain),
        ssh_command: m.ssh_port.map(|p| format!("ssh -p {p} {}@{}", cfg.guest_user, cfg.public_host)),
        sftp_command: m.ssh_port.map(|p| format!("sftp -P {p} {}@{}", cfg.guest_user, cfg.public_host)),
        queue_position,
        always_on: m.always_on,
        last_visit_at: m.last_active_at,
        unreachable: false,
        hsts: m.hsts,
    }
}
