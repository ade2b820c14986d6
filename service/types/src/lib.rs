//! Types shared by the service layer, the server and the browser build (wasm-safe): the
//! hosting state machine's enums, the provisioning steps, event kinds and statuses, token kinds,
//! the views clients see, the one live message of the event stream, and the name rule for
//! usernames and site names.
//!
//! Every enum is stored as its snake_case name (one schema for SQLite and PostgreSQL): with the
//! `db` feature each one is also a sea-orm `ActiveEnum`, so entity fields are typed, not text.
#[macro_use]
mod string_enum;
mod account;
mod backups;
mod backup_schedule;
mod certs;
mod domains;
mod event;
mod name;
mod progress;
mod restore;
mod state;
mod step;
mod view;

pub use account::{AccountEventKind, AccountEventView, SessionView};
pub use backup_schedule::{BackupFrequency, BackupSchedule, BackupScheduleView, StaleBackupView, StaleBackups, Weekday};
pub use backups::{BackupSource, BackupState, BackupTrigger, BackupView, BackupsOverview};
pub use certs::{CertificateView, TlsOverview};
pub use domains::{CertSource, DomainMethod, DomainState, DomainVerification, DomainView, HstsSetting, NewDomain};
pub use event::{EventKind, EventStatus, EventView, LiveMessage};
pub use name::{RESERVED_NAMES, check_name, check_name_for_hosts, host_labels};
pub use state::{CreateKind, HostingState, Operation, SnapshotState, SpareTier, TokenKind};
pub use step::Step;
pub use restore::RestoreTarget;
pub use progress::{last_backup_failure, operation_progress, step_fraction};
pub use view::{ApiTokenView, HostingView, NodeHealth, NodeSite, NodeView, PlanView, SnapshotView, SshKeyView, StatSample, StepInfo, UserView};
