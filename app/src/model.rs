//! Data the pages show (shared by the server and the browser build). Converted from the
//! service layer's views on the server; never carries secrets.
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: i32,
    pub email: String,
    pub username: String,
    pub is_admin: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hosting {
    pub id: i32,
    pub user_id: i32,
    pub slug: String,
    pub plan: String,
    pub state: String,
    pub state_reason: Option<String>,
    pub operation: Option<String>,
    pub ssh_port: Option<i32>,
    pub created_at: i64,
    pub running_since: Option<i64>,
    pub site_url: String,
    pub user_url: String,
    pub subdomain_url: String,
    pub ssh_command: Option<String>,
    pub sftp_command: Option<String>,
    pub queue_position: Option<u32>,
}

impl Hosting {
    pub fn busy(&self) -> bool {
        self.operation.is_some()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: i32,
    pub hosting_id: i32,
    pub kind: String,
    pub step: Option<String>,
    pub status: String,
    pub message: String,
    pub duration_ms: Option<i64>,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub t: i64,
    pub cpu_percent: f64,
    pub memory_used_kib: u64,
    pub memory_max_kib: u64,
    pub disk_read_bps: f64,
    pub disk_write_bps: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SshKey {
    pub id: i32,
    pub name: String,
    pub fingerprint: String,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: i32,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
}

/// The steps of provisioning, in order, with their labels (for the progress view).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepInfo {
    pub name: String,
    pub label: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostingPageData {
    pub hosting: Hosting,
    pub events: Vec<Event>,
    pub steps: Vec<StepInfo>,
    pub samples: Vec<Sample>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminData {
    pub node_name: String,
    pub domain_type: String,
    pub memory_total_kib: u64,
    pub memory_available_kib: u64,
    pub vms_running: u64,
    pub hostings: Vec<(Hosting, String)>,
    pub events: Vec<Event>,
    pub users: usize,
}

#[cfg(feature = "ssr")]
mod convert {
    use super::*;
    use service::hosting::{EventView, HostingView, StatSample};

    impl From<service::accounts::UserView> for User {
        fn from(u: service::accounts::UserView) -> Self {
            Self { id: u.id, email: u.email, username: u.username, is_admin: u.is_admin }
        }
    }
    impl From<HostingView> for Hosting {
        fn from(h: HostingView) -> Self {
            Self {
                id: h.id,
                user_id: h.user_id,
                slug: h.slug,
                plan: h.plan,
                state: h.state,
                state_reason: h.state_reason,
                operation: h.operation,
                ssh_port: h.ssh_port,
                created_at: h.created_at,
                running_since: h.running_since,
                site_url: h.site_url,
                user_url: h.user_url,
                subdomain_url: h.subdomain_url,
                ssh_command: h.ssh_command,
                sftp_command: h.sftp_command,
                queue_position: h.queue_position,
            }
        }
    }
    impl From<EventView> for Event {
        fn from(e: EventView) -> Self {
            Self {
                id: e.id,
                hosting_id: e.hosting_id,
                kind: e.kind,
                step: e.step,
                status: e.status,
                message: e.message,
                duration_ms: e.duration_ms,
                created_at: e.created_at,
            }
        }
    }
    impl From<StatSample> for Sample {
        fn from(s: StatSample) -> Self {
            Self {
                t: s.t,
                cpu_percent: s.cpu_percent,
                memory_used_kib: s.memory_used_kib,
                memory_max_kib: s.memory_max_kib,
                disk_read_bps: s.disk_read_bps,
                disk_write_bps: s.disk_write_bps,
            }
        }
    }
    impl From<service::accounts::SshKeyView> for SshKey {
        fn from(k: service::accounts::SshKeyView) -> Self {
            Self { id: k.id, name: k.name, fingerprint: k.fingerprint, created_at: k.created_at }
        }
    }
    impl From<service::accounts::ApiTokenView> for ApiToken {
        fn from(t: service::accounts::ApiTokenView) -> Self {
            Self { id: t.id, name: t.name, created_at: t.created_at, last_used_at: t.last_used_at }
        }
    }
}
