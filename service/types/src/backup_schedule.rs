//! A site's backup schedule and retention (issue 31): how often it is backed up, at what time
//! (UTC), which of its backups are kept, and what its backups take in the repository.
use serde::{Deserialize, Serialize};

string_enum! {
    /// How often a site is backed up by its schedule.
    pub enum BackupFrequency {
        Off,
        Daily,
        Weekly,
    }
}

string_enum! {
    /// A day of the week (a weekly schedule's day, UTC).
    pub enum Weekday {
        Monday,
        Tuesday,
        Wednesday,
        Thursday,
        Friday,
        Saturday,
        Sunday,
    }
}

impl Weekday {
    /// Days since Monday (0 to 6).
    pub fn days_from_monday(self) -> u8 {
        match self {
            Weekday::Monday => 0,
            Weekday::Tuesday => 1,
            Weekday::Wednesday => 2,
            Weekday::Thursday => 3,
            Weekday::Friday => 4,
            Weekday::Saturday => 5,
            Weekday::Sunday => 6,
        }
    }
}

/// What the owner sets: the schedule (times are UTC) and the retention of the site's backups.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BackupSchedule {
    pub frequency: BackupFrequency,
    /// The day of a weekly schedule (required for `weekly`, ignored otherwise).
    #[serde(default)]
    pub weekday: Option<Weekday>,
    /// The hour of day, UTC (0 to 23).
    pub hour: u8,
    /// The minute (0 to 59).
    pub minute: u8,
    /// How many daily backups are kept (the newest of each of the last N days with one).
    pub keep_daily: u32,
    /// How many weekly backups are kept.
    pub keep_weekly: u32,
    /// How many monthly backups are kept.
    pub keep_monthly: u32,
    /// Whether a running site's memory is backed up too (it pauses a few seconds).
    #[serde(default)]
    pub with_memory: bool,
}

impl Default for BackupSchedule {
    /// Off (a new site is not backed up until its owner says so), 02:00 UTC when turned on,
    /// keeping 7 daily, 4 weekly and 6 monthly backups.
    fn default() -> Self {
        Self { frequency: BackupFrequency::Off, weekday: None, hour: 2, minute: 0, keep_daily: 7, keep_weekly: 4, keep_monthly: 6, with_memory: false }
    }
}

/// A site's schedule as the pages and the API show it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupScheduleView {
    pub schedule: BackupSchedule,
    /// When the next scheduled backup starts (unix ms): the owner's time plus the site's spread
    /// offset. None when the schedule is off.
    pub next_run_at: Option<i64>,
    /// How far after the owner's time this site's backups start (seconds): the service spreads
    /// sites over a window so that they do not all start at once.
    pub spread_secs: i64,
    /// What this site's backups take in the repository (bytes; None until first counted).
    pub usage_bytes: Option<i64>,
    /// What all the owner's sites' backups take.
    pub user_usage_bytes: i64,
    /// The owner's backup storage quota (bytes); None: unlimited.
    pub quota_bytes: Option<i64>,
}

/// A site whose last successful backup is older than its schedule's period plus a margin (the
/// admin page's list).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StaleBackupView {
    pub hosting_id: i32,
    pub slug: String,
    pub owner: String,
    /// Unix ms of the last successful backup; None: never.
    pub last_success_at: Option<i64>,
    pub schedule: BackupSchedule,
}

/// The admin page's backups section.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StaleBackups {
    pub stale: Vec<StaleBackupView>,
    /// The repository is the default folder on the node's own disk.
    pub repository_on_node_disk: bool,
}
