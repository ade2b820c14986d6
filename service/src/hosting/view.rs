//! What clients see of a hosting and its events (DTOs; safe to serialise).
use serde::{Deserialize, Serialize};

use crate::ServiceConfig;
use crate::db::entity::{hosting, hosting_event};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct HostingView {
    pub id: i32,
    pub user_id: i32,
    pub node_id: i32,
    pub slug: String,
    pub plan: String,
    pub state: String,
    pub state_reason: Option<String>,
    /// The operation in progress, if any.
    pub operation: Option<String>,
    pub ssh_port: Option<i32>,
    pub http_port: Option<i32>,
    pub created_at: i64,
    pub updated_at: i64,
    pub running_since: Option<i64>,
    /// `http://{public_host}/{slug}/`
    pub site_url: String,
    /// `http://{public_host}/{user_id}/` (the original system's address); only the user's first site.
    pub user_url: String,
    /// `http://{slug}.{base_domain}/`
    pub subdomain_url: String,
    pub ssh_command: Option<String>,
    pub sftp_command: Option<String>,
    /// Hostings waiting ahead of this one for a provisioning slot (0 = next or running).
    pub queue_position: Option<u32>,
}

impl HostingView {
    pub fn from_model(m: &hosting::Model, cfg: &ServiceConfig, queue_position: Option<u32>) -> Self {
        let host = cfg.public_host_with_port();
        let sub_port = cfg.nginx_port_suffix();
        Self {
            id: m.id,
            user_id: m.user_id,
            node_id: m.node_id,
            slug: m.slug.clone(),
            plan: m.plan.clone(),
            state: m.state.clone(),
            state_reason: m.state_reason.clone(),
            operation: m.operation.clone(),
            ssh_port: m.ssh_port,
            http_port: m.http_port,
            created_at: m.created_at,
            updated_at: m.updated_at,
            running_since: m.running_since,
            site_url: format!("http://{host}/{}/", m.slug),
            user_url: format!("http://{host}/{}/", m.user_id),
            subdomain_url: format!("http://{}.{}{sub_port}/", m.slug, cfg.base_domain),
            ssh_command: m
                .ssh_port
                .map(|p| format!("ssh -p {p} {}@{}", cfg.guest_user, cfg.public_host)),
            sftp_command: m
                .ssh_port
                .map(|p| format!("sftp -P {p} {}@{}", cfg.guest_user, cfg.public_host)),
            queue_position,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EventView {
    pub id: i32,
    pub hosting_id: i32,
    pub user_id: i32,
    /// "step" | "undo" | "state" | "action"
    pub kind: String,
    pub step: Option<String>,
    /// started | succeeded | failed | undone | info
    pub status: String,
    pub message: String,
    pub duration_ms: Option<i64>,
    pub created_at: i64,
}

impl From<hosting_event::Model> for EventView {
    fn from(m: hosting_event::Model) -> Self {
        Self {
            id: m.id,
            hosting_id: m.hosting_id,
            user_id: m.user_id,
            kind: m.kind,
            step: m.step,
            status: m.status,
            message: m.message,
            duration_ms: m.duration_ms,
            created_at: m.created_at,
        }
    }
}

/// One sample of a running VM's resource use, for the live charts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StatSample {
    pub hosting_id: i32,
    pub user_id: i32,
    pub t: i64,
    /// Percent of one host core used since the previous sample.
    pub cpu_percent: f64,
    pub memory_used_kib: u64,
    pub memory_max_kib: u64,
    pub disk_read_bps: f64,
    pub disk_write_bps: f64,
}

/// What the admin page shows about the host.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeView {
    pub id: i32,
    pub name: String,
    pub libvirt_uri: String,
    pub domain_type: String,
    pub memory_total_kib: u64,
    pub memory_available_kib: u64,
    pub hostings_total: u64,
    pub vms_running: u64,
}
