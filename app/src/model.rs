//! Data the pages show (shared by the server and the browser build). The views and enums are
//! the service's own, from the wasm-safe `vmw_types` crate; only the page containers are the
//! app's. Never carries secrets.
use serde::{Deserialize, Serialize};

pub use vmw_types::{
    ApiTokenView, EventKind, EventStatus, EventView, HostingState, HostingView, LiveMessage, NodeView, Operation,
    PlanView, SshKeyView, StatSample, Step, StepInfo, UserView,
};

/// Everything the live page of one hosting needs at load; updates then arrive as
/// [`LiveMessage`]s over the event stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostingPageData {
    pub hosting: HostingView,
    pub events: Vec<EventView>,
    /// The provisioning steps, in order, with their labels.
    pub steps: Vec<StepInfo>,
    pub samples: Vec<StatSample>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminData {
    /// The host; without a hypervisor (no hosting service) only its name is known.
    pub node: NodeView,
    /// Every hosting with its owner's username.
    pub hostings: Vec<(HostingView, String)>,
    pub events: Vec<EventView>,
    pub users: usize,
}

// TEMPORARY until service re-exports vmw_types views: today's service views carry strings
// (state, operation, kind, status, step, token kind); these read them into the typed views.
// Delete this module (and the `from_service::` calls in api/*.rs) once
// `service::hosting::{HostingView, EventView, StatSample, NodeView, Step}` and
// `service::accounts::{UserView, SshKeyView, ApiTokenView}` are the vmw_types types.
#[cfg(feature = "ssr")]
pub(crate) mod from_service {
    use super::*;
    use service::accounts as a;
    use service::hosting as h;
    use vmw_types::TokenKind;

    pub fn hosting(v: h::HostingView) -> HostingView {
        HostingView {
            id: v.id,
            user_id: v.user_id,
            node_id: v.node_id,
            slug: v.slug,
            plan: v.plan,
            state: HostingState::parse(&v.state).unwrap_or(HostingState::Failed),
            state_reason: v.state_reason,
            operation: v.operation.as_deref().and_then(Operation::parse),
            ssh_port: v.ssh_port,
            http_port: v.http_port,
            created_at: v.created_at,
            updated_at: v.updated_at,
            running_since: v.running_since,
            site_url: v.site_url,
            user_url: v.user_url,
            subdomain_url: v.subdomain_url,
            ssh_command: v.ssh_command,
            sftp_command: v.sftp_command,
            queue_position: v.queue_position,
        }
    }

    pub fn event(e: h::EventView) -> EventView {
        EventView {
            id: e.id,
            hosting_id: e.hosting_id,
            user_id: e.user_id,
            kind: EventKind::parse(&e.kind).unwrap_or(EventKind::Action),
            step: e.step.as_deref().and_then(Step::parse),
            status: EventStatus::parse(&e.status).unwrap_or(EventStatus::Info),
            message: e.message,
            duration_ms: e.duration_ms,
            created_at: e.created_at,
        }
    }

    pub fn sample(s: h::StatSample) -> StatSample {
        StatSample {
            hosting_id: s.hosting_id,
            user_id: s.user_id,
            t: s.t,
            cpu_percent: s.cpu_percent,
            memory_used_kib: s.memory_used_kib,
            memory_max_kib: s.memory_max_kib,
            disk_read_bps: s.disk_read_bps,
            disk_write_bps: s.disk_write_bps,
        }
    }

    pub fn node(n: h::NodeView) -> NodeView {
        NodeView {
            id: n.id,
            name: n.name,
            libvirt_uri: n.libvirt_uri,
            domain_type: n.domain_type,
            memory_total_kib: n.memory_total_kib,
            memory_available_kib: n.memory_available_kib,
            hostings_total: n.hostings_total,
            vms_running: n.vms_running,
        }
    }

    pub fn step(s: h::Step) -> Option<Step> {
        Step::parse(s.as_str())
    }

    /// The service's operation for the app's (the service has its own enum today).
    pub fn operation(op: Operation) -> h::Operation {
        match op {
            Operation::Create => h::Operation::Create,
            Operation::Start => h::Operation::Start,
            Operation::Stop => h::Operation::Stop,
            Operation::Restart => h::Operation::Restart,
            Operation::Delete => h::Operation::Delete,
        }
    }

    pub fn user(u: a::UserView) -> UserView {
        UserView { id: u.id, email: u.email, username: u.username, is_admin: u.is_admin, created_at: u.created_at }
    }

    pub fn ssh_key(k: a::SshKeyView) -> SshKeyView {
        SshKeyView { id: k.id, name: k.name, fingerprint: k.fingerprint, public_key: k.public_key, created_at: k.created_at }
    }

    pub fn api_token(t: a::ApiTokenView) -> ApiTokenView {
        ApiTokenView {
            id: t.id,
            name: t.name,
            kind: TokenKind::parse(&t.kind).unwrap_or(TokenKind::Api),
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
        }
    }
}
