//! Prometheus-style metrics of the service layer, through the `metrics` facade only: the
//! server installs the recorder (and its exporter) and serves them on `/metrics`; without a
//! recorder (tests of this crate, tools) every call here does nothing.
//!
//! Names and labels live here, once. Labels only ever take values from closed sets (steps,
//! create kinds, states, tiers, libvirt actions, error kinds, ok/error): never a user's text.
use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use vmw_types::{CreateKind, HostingState, SpareTier, Step};

/// Counter: wakes of a sleeping hosting, by `result` (`ok`, `error`).
pub const WAKES: &str = "vmw_wakes_total";
/// Counter: hostings put to sleep, by `result` (`ok`, `error`).
pub const SLEEPS: &str = "vmw_sleeps_total";
/// Counter: wakes refused, by `reason`: `client_limit` (the client address woke too many
/// distinct sites this minute), `held_limit` (the HTTP waker holds too many requests),
/// `ssh_not_identified` (an SSH-port connection sent no SSH identification), `ssh_held_per_site`,
/// `ssh_held_per_source` (too many SSH connections held).
pub const WAKES_REFUSED: &str = "vmw_wakes_refused_total";
/// The closed set of [`WAKES_REFUSED`]'s reasons.
pub const WAKE_REFUSED_REASONS: [&str; 5] = ["client_limit", "held_limit", "ssh_not_identified", "ssh_held_per_site", "ssh_held_per_source"];
/// Histogram: how long a wake took, seconds, by `result`.
pub const WAKE_SECONDS: &str = "vmw_wake_duration_seconds";
/// Histogram: how long putting a hosting to sleep took, seconds, by `result`.
pub const SLEEP_SECONDS: &str = "vmw_sleep_duration_seconds";
/// Histogram: one provisioning step, seconds, by `step` and `result`.
pub const STEP_SECONDS: &str = "vmw_provision_step_duration_seconds";
/// Histogram: a whole create until the site is live (or failed), seconds, by `kind` and `result`.
pub const CREATE_SECONDS: &str = "vmw_provision_duration_seconds";
/// Gauge: hostings on this node by `state` (spares included, as `spare`).
pub const HOSTINGS: &str = "vmw_hostings";
/// Gauge: ready warm spares on this node by `tier` (`paused`, `saved`).
pub const POOL_SPARES: &str = "vmw_pool_spares";
/// Counter: failed libvirt calls, by `action` ("start domain", "connect", ...).
pub const LIBVIRT_ERRORS: &str = "vmw_libvirt_errors_total";
/// Counter: nginx failures, by `kind` (`rejected`, `command`, `spawn`, `not_serving`, ...).
pub const NGINX_ERRORS: &str = "vmw_nginx_errors_total";
/// Gauge: when a site's last backup succeeded, unix seconds, by `hosting` (its id).
pub const BACKUP_LAST_SUCCESS: &str = "vmw_backup_last_success_timestamp_seconds";
/// Histogram: how long a backup took (capture and upload), seconds, by `result`.
pub const BACKUP_SECONDS: &str = "vmw_backup_duration_seconds";
/// Counter: bytes backups added to the repository (after deduplication and compression).
pub const BACKUP_BYTES_ADDED: &str = "vmw_backup_bytes_added_total";
/// Counter: backups that failed.
pub const BACKUP_FAILURES: &str = "vmw_backup_failures_total";
/// When the service's own state (database, secrets) was last backed up (unix time).
pub const STATE_BACKUP_LAST_SUCCESS: &str = "vmw_state_backup_last_success_timestamp_seconds";
/// State backups that failed.
pub const STATE_BACKUP_FAILURES: &str = "vmw_state_backup_failures_total";
/// Counter: scheduled backups that failed (or were refused for the owner's quota).
pub const BACKUP_SCHEDULED_FAILURES: &str = "vmw_backup_scheduled_failures_total";
/// Gauge: sites whose last successful backup is older than their schedule's period plus a margin.
pub const BACKUPS_STALE: &str = "vmw_backups_stale_sites";

/// Bucket bounds (seconds) that fit the service's durations: a claimed spare's steps take
/// milliseconds, a cold boot under TCG up to a few minutes.
pub const DURATION_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

fn result(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}

/// Describes every metric of the service and makes the counters that may stay at zero for a
/// long time (wakes, sleeps, errors) appear in the output at once. Call once, after the
/// recorder is installed.
pub fn describe() {
    describe_counter!(WAKES, "Wakes of sleeping hostings, by result");
    describe_counter!(SLEEPS, "Hostings put to sleep, by result");
    describe_counter!(WAKES_REFUSED, "Wakes refused (too many from one client address, too many held), by reason");
    describe_histogram!(WAKE_SECONDS, Unit::Seconds, "How long a wake took");
    describe_histogram!(SLEEP_SECONDS, Unit::Seconds, "How long putting a hosting to sleep took");
    describe_histogram!(STEP_SECONDS, Unit::Seconds, "Duration of one provisioning step, by step and result");
    describe_histogram!(CREATE_SECONDS, Unit::Seconds, "Duration of a whole create, by kind (cold, clone, warm) and result");
    describe_gauge!(HOSTINGS, "Hostings on this node, by state (spares as `spare`)");
    describe_gauge!(POOL_SPARES, "Ready warm spares on this node, by tier");
    describe_counter!(LIBVIRT_ERRORS, "Failed libvirt calls, by action");
    describe_counter!(NGINX_ERRORS, "nginx failures (refused configurations, failed commands, routes not serving), by kind");
    describe_gauge!(BACKUP_LAST_SUCCESS, Unit::Seconds, "When each site's last backup succeeded (unix time), by hosting id");
    describe_histogram!(BACKUP_SECONDS, Unit::Seconds, "How long a backup took (capture and upload), by result");
    describe_counter!(BACKUP_BYTES_ADDED, Unit::Bytes, "Bytes backups added to the backup repository");
    describe_counter!(BACKUP_SCHEDULED_FAILURES, Unit::Count, "Scheduled backups that failed or were refused for the owner's quota");
    describe_gauge!(BACKUPS_STALE, Unit::Count, "Sites whose last successful backup is older than their schedule's period plus a margin");
    describe_counter!(BACKUP_FAILURES, "Backups that failed");
    counter!(BACKUP_FAILURES).increment(0);
    describe_gauge!(STATE_BACKUP_LAST_SUCCESS, Unit::Seconds, "When the service's database and secrets were last backed up (unix time)");
    describe_counter!(STATE_BACKUP_FAILURES, "Backups of the service's database and secrets that failed");
    counter!(STATE_BACKUP_FAILURES).increment(0);
    counter!(BACKUP_BYTES_ADDED).increment(0);
    for ok in [true, false] {
        counter!(WAKES, "result" => result(ok)).increment(0);
        counter!(SLEEPS, "result" => result(ok)).increment(0);
    }
    for reason in WAKE_REFUSED_REASONS {
        counter!(WAKES_REFUSED, "reason" => reason).increment(0);
    }
}

/// A backup of hosting `hosting_id` ended after `took`; `bytes_added` when it succeeded.
pub fn record_backup(hosting_id: i32, took: Duration, bytes_added: Option<u64>) {
    histogram!(BACKUP_SECONDS, "result" => result(bytes_added.is_some())).record(took.as_secs_f64());
    match bytes_added {
        Some(bytes) => {
            counter!(BACKUP_BYTES_ADDED).increment(bytes);
            let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
            gauge!(BACKUP_LAST_SUCCESS, "hosting" => hosting_id.to_string()).set(now);
        }
        None => counter!(BACKUP_FAILURES).increment(1),
    }
}

/// A state backup ended: `Some(bytes added)` when it succeeded.
pub fn record_state_backup(bytes_added: Option<u64>) {
    match bytes_added {
        Some(_) => gauge!(STATE_BACKUP_LAST_SUCCESS).set(time::OffsetDateTime::now_utc().unix_timestamp() as f64),
        None => counter!(STATE_BACKUP_FAILURES).increment(1),
    }
}

/// Hosting `hosting_id`'s last successful backup finished at `at_ms` (unix ms), as the
/// database says (set at start-up and at each scheduler pass, not only after a backup here).
pub fn set_backup_last_success(hosting_id: i32, at_ms: i64) {
    gauge!(BACKUP_LAST_SUCCESS, "hosting" => hosting_id.to_string()).set(at_ms as f64 / 1000.0);
}

/// A scheduled backup failed or was refused.
pub fn record_scheduled_backup_failure() {
    counter!(BACKUP_SCHEDULED_FAILURES).increment(1);
}

/// How many sites' backups are stale.
pub fn set_backups_stale(n: u64) {
    gauge!(BACKUPS_STALE).set(n as f64);
}

/// A wake of a sleeping hosting ended (`ok`: it serves again) after `seconds`.
pub fn record_wake(ok: bool, seconds: f64) {
    counter!(WAKES, "result" => result(ok)).increment(1);
    histogram!(WAKE_SECONDS, "result" => result(ok)).record(seconds);
}

/// A wake refused; `reason` is one of [`WAKE_REFUSED_REASONS`].
pub fn record_wake_refused(reason: &'static str) {
    debug_assert!(WAKE_REFUSED_REASONS.contains(&reason), "{reason}");
    counter!(WAKES_REFUSED, "reason" => reason).increment(1);
}

/// Putting a hosting to sleep ended (`ok`: it sleeps) after `seconds`.
pub fn record_sleep(ok: bool, seconds: f64) {
    counter!(SLEEPS, "result" => result(ok)).increment(1);
    histogram!(SLEEP_SECONDS, "result" => result(ok)).record(seconds);
}

/// One provisioning step ran (it succeeded or failed) in `took`.
pub fn record_step(step: Step, ok: bool, took: Duration) {
    histogram!(STEP_SECONDS, "step" => step.as_str(), "result" => result(ok)).record(took.as_secs_f64());
}

/// A create of `kind` ended (`ok`: the site is live) after `took`.
pub fn record_create(kind: CreateKind, ok: bool, took: Duration) {
    histogram!(CREATE_SECONDS, "kind" => kind.as_str(), "result" => result(ok)).record(took.as_secs_f64());
}

/// A libvirt call doing `action` failed.
pub fn libvirt_error(action: &'static str) {
    counter!(LIBVIRT_ERRORS, "action" => action).increment(1);
}

/// An nginx operation failed with an error of `kind`.
pub fn nginx_error(kind: &'static str) {
    counter!(NGINX_ERRORS, "kind" => kind).increment(1);
}

/// Sets the hostings-by-state gauge from counts (every state is set; absent ones are 0).
pub fn set_hostings(counts: &[(HostingState, u64)]) {
    for st in HostingState::ALL {
        let n = counts.iter().filter(|(s, _)| s == st).map(|(_, n)| *n).sum::<u64>();
        gauge!(HOSTINGS, "state" => st.as_str()).set(n as f64);
    }
}

/// Sets the pool-depth gauge of `tier`.
pub fn set_pool_spares(tier: SpareTier, ready: u64) {
    gauge!(POOL_SPARES, "tier" => tier.as_str()).set(ready as f64);
}
