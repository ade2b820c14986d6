//! What clients see (REST JSON, server functions, the event stream). Never carries secrets.
use serde::{Deserialize, Serialize};

use crate::{CreateKind, HostingState, Operation, TokenKind};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostingView {
    pub id: i32,
    pub user_id: i32,
    pub node_id: i32,
    pub slug: String,
    pub plan: String,
    pub state: HostingState,
    pub state_reason: Option<String>,
    /// The operation in progress, if any.
    pub operation: Option<Operation>,
    /// How its VM was made (set once its create began provisioning).
    pub created_as: Option<CreateKind>,
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
    /// The owner's "never put this site to sleep".
    #[serde(default)]
    pub always_on: bool,
    /// When a visit (HTTP through nginx, or an open SSH session) was last seen (ms).
    #[serde(default)]
    pub last_visit_at: Option<i64>,
    /// Its node (hypervisor) does not answer: the site is unreachable, not failed (its row is
    /// kept as it was; it comes back with the node).
    #[serde(default)]
    pub unreachable: bool,
    /// The owner's HSTS switch: `Strict-Transport-Security` on the site's HTTPS names
    /// (`{slug}.{base_domain}` and its custom domains).
    #[serde(default)]
    pub hsts: bool,
}

impl HostingView {
    /// An operation is in progress.
    pub fn busy(&self) -> bool {
        self.operation.is_some()
    }
}

/// One sample of a running VM's resource use, for the live charts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// A node (hypervisor) as the admin page and the administrator's API show it: what its
/// hostings commit and what is left.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeView {
    pub id: i32,
    pub name: String,
    pub libvirt_uri: String,
    /// `kvm` or `qemu` (TCG).
    pub domain_type: String,
    /// The host's memory and what is available of it now (KiB).
    pub memory_total_kib: u64,
    pub memory_available_kib: u64,
    /// Users' hostings on the node.
    pub hostings_total: u64,
    /// Domains libvirt reports running (spares included).
    pub vms_running: u64,
    /// Users' hostings on the node that are running, and that are stopped (saved or powered off).
    #[serde(default)]
    pub hostings_running: u64,
    #[serde(default)]
    pub hostings_stopped: u64,
    /// Users' hostings asleep (saved to disk, woken by their next visit).
    #[serde(default)]
    pub hostings_sleeping: u64,
    /// Plan memory and disk the node's hostings (spares included) commit, and the limits a
    /// create may not pass (the node's size times the overcommit ratios).
    #[serde(default)]
    pub memory_committed_mib: u64,
    #[serde(default)]
    pub memory_limit_mib: u64,
    #[serde(default)]
    pub disk_committed_gib: u64,
    #[serde(default)]
    pub disk_limit_gib: u64,
    /// The IP nginx reaches the node's VM forwards on.
    #[serde(default)]
    pub address: String,
    /// Takes no new sites (its sites keep running).
    #[serde(default)]
    pub drained: bool,
    /// Added by an administrator (removable when empty); false: the node of the app's settings.
    #[serde(default)]
    pub added: bool,
    /// Health: the last check's answer (libvirt connection, version, guest image, last error).
    #[serde(default)]
    pub health: NodeHealth,
    /// The users' sites on the node.
    #[serde(default)]
    pub sites: Vec<NodeSite>,
}

impl NodeView {
    /// Plan memory a create may still commit on the node (MiB).
    pub fn memory_free_mib(&self) -> u64 {
        self.memory_limit_mib.saturating_sub(self.memory_committed_mib)
    }

    /// Disk a create may still commit on the node (GiB).
    pub fn disk_free_gib(&self) -> u64 {
        self.disk_limit_gib.saturating_sub(self.disk_committed_gib)
    }
}

/// A node's health, as its last check found it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeHealth {
    /// libvirt answered.
    pub connected: bool,
    /// The hypervisor's libvirt version ("9.0.0").
    pub libvirt_version: Option<String>,
    /// The guest image is there.
    pub image_ok: bool,
    /// What went wrong at the last check, if anything.
    pub last_error: Option<String>,
    /// When it was checked (ms; 0: not yet).
    pub checked_at: i64,
}

/// A site on a node (the admin page's node card).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeSite {
    pub id: i32,
    pub slug: String,
    pub state: HostingState,
}

/// An account, as its owner (`/users/me`) and the administrators see it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserView {
    pub id: i32,
    pub email: String,
    pub username: String,
    pub is_admin: bool,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// When an administrator disabled the account (it cannot log in until enabled again; ms
    /// since the epoch); null while it is enabled.
    #[serde(default)]
    pub disabled_at: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SshKeyView {
    pub id: i32,
    pub name: String,
    pub fingerprint: String,
    pub public_key: String,
    pub created_at: i64,
}

/// A user snapshot of a site: its disk and memory, restorable to the running site as it was.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnapshotView {
    pub id: i32,
    pub hosting_id: i32,
    /// Display text chosen by the owner (1-64 characters: letters, digits, space, `-_.:()`).
    pub name: String,
    pub state: crate::SnapshotState,
    /// What its files take on the host (memory state + disk copy).
    pub size_bytes: i64,
    pub created_at: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiTokenView {
    pub id: i32,
    pub name: String,
    pub kind: TokenKind,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// A size a user can choose for a new hosting.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanView {
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
}

/// A provisioning step with its label (the progress view lists them in order).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepInfo {
    pub step: crate::Step,
    pub label: String,
}
