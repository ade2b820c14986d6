//! Backups of a site in the backup repository (issue 31): their states and the view clients see.
use serde::{Deserialize, Serialize};

string_enum! {
    /// A backup: being made, in the repository, or failed (with its reason).
    pub enum BackupState {
        Running => "Backing up",
        Succeeded,
        Failed,
    }
}

string_enum! {
    /// Who asked for a backup: the owner ("Back up now") or the site's schedule.
    pub enum BackupTrigger {
        Manual,
        Scheduled,
    }
}

string_enum! {
    /// The state the site was captured in: running (its disk, filesystems frozen; or disk and
    /// memory through a snapshot), saved (asleep or stopped: disk and saved memory), or powered
    /// off (its disk).
    pub enum BackupSource {
        Running,
        Saved,
        PoweredOff => "Powered off",
    }
}

/// One backup of a site. A deleted site's backups stay listed for its owner (`hosting_id` then
/// `None`, `slug` kept).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupView {
    pub id: i32,
    pub hosting_id: Option<i32>,
    /// The site's name when it was backed up.
    pub slug: String,
    pub state: BackupState,
    pub trigger: BackupTrigger,
    /// How the site was captured (`None` until it is).
    pub captured_from: Option<BackupSource>,
    /// Whether the backup holds the site's memory (restoring it brings back the running site).
    pub with_memory: bool,
    /// The restic snapshot (`None` until the upload is done).
    pub snapshot_id: Option<String>,
    /// The base disk it refers to, stored once in the repository.
    pub base_id: Option<String>,
    /// Unix milliseconds.
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// What this backup added to the repository after deduplication and compression.
    pub bytes_added: Option<i64>,
    /// The size of the files backed up.
    pub bytes_total: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// What the hosting page shows about a site's backups.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupsOverview {
    /// Newest first.
    pub backups: Vec<BackupView>,
    /// The newest successful one.
    pub last_success: Option<BackupView>,
    /// The repository is a folder on the node's own disk: a lost disk loses the backups too.
    pub repository_on_node_disk: bool,
    /// The site's backup schedule, its next run and the owner's backup storage.
    #[serde(default)]
    pub schedule: Option<crate::BackupScheduleView>,
}
