//! Data the pages show (shared by the server and the browser build). The views and enums are
//! the service's own, from the wasm-safe `vmw_types` crate; only the page containers are the
//! app's. Never carries secrets.
use serde::{Deserialize, Serialize};

pub use vmw_types::{
    AccountEventKind, AccountEventView, ApiTokenView, EventKind, EventStatus, EventView, HostingState, HostingView, LiveMessage, NodeView, Operation,
    PlanView, SessionView, SnapshotState, SnapshotView, SshKeyView, StatSample, Step, StepInfo, UserView,
};
pub use vmw_types::{CertificateView, TlsOverview};
pub use vmw_types::{DomainMethod, DomainState, DomainView};
pub use vmw_types::{BackupState, BackupView, BackupsOverview};

/// Everything the live page of one hosting needs at load; updates then arrive as
/// [`LiveMessage`]s over the event stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostingPageData {
    pub hosting: HostingView,
    pub events: Vec<EventView>,
    /// The provisioning steps, in order, with their labels.
    pub steps: Vec<StepInfo>,
    pub samples: Vec<StatSample>,
    /// The guest's login user (SSH, SFTP and the console).
    pub login_user: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminData {
    /// The nodes; without a hypervisor (no hosting service) only this one's name is known.
    pub nodes: Vec<NodeView>,
    /// Every hosting with its owner's username.
    pub hostings: Vec<(HostingView, String)>,
    pub events: Vec<EventView>,
    /// Every account, oldest first.
    pub users: Vec<UserView>,
    /// The administrator looking (who cannot disable themselves).
    pub me: i32,
    /// The instance's certificates and HTTPS notes.
    pub tls: TlsOverview,
}

/// The dashboard's HTTPS address, and the local CA's root when there is one (settings page).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HttpsSettings {
    pub https_url: Option<String>,
    /// SHA-256 of the root certificate (colon-separated hex), to compare before trusting it.
    pub local_ca_fingerprint: Option<String>,
}
