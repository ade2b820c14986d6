//! The backup scheduler (issue 31), run by the leader every [`TICK`] over the sites of every
//! node ([`run_once`], which the tests call with a fixed clock):
//! 1. a scheduled backup started earlier is looked at: done, its retention runs next; failed,
//!    it is tried again with back-off ([`plan::retry_delay_ms`], [`plan::MAX_ATTEMPTS`] in all,
//!    each failure an event and a metric); still running, it counts against its node's limit;
//! 2. a site whose newest successful backup (scheduled or manual) is newer than its last
//!    retention run gets it (`retention::keep_site`) and its usage counted;
//! 3. sites whose slot is due ([`plan::due_slot`]: the owner's time plus the site's spread
//!    offset; one run for any number of missed slots) or whose retry time came are backed up
//!    through the same path as "Back up now" (`take`, trigger `scheduled`: its lease, its
//!    events), at most `--backup-concurrency` at once per node; the rest wait for a later tick.
//!    A busy site is tried again a few minutes later; an owner over quota gets an event;
//! 4. deleted sites' backups past their keep time are forgotten; the repository pruned once a
//!    day when something was forgotten; the backup gauges published.
//!
//! Only the leader runs it (several replicas: one scheduler); every node's sites are started on
//! their own node (`Cluster::live`); a node that is down is skipped until it is back.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::{plan, quota, retention};
use crate::accounts::Actor;
use crate::backup::KeepPolicy;
use crate::db::now_ms;
use crate::hosting::cluster::Cluster;
use crate::hosting::cx::Cx;
use crate::store::{HostingRow, ScheduleRow};
use crate::{Error, Result};
use vmw_types::{BackupSchedule, BackupState, BackupTrigger, EventKind, EventStatus};

/// How often the scheduler looks.
pub(crate) const TICK: Duration = Duration::from_secs(30);

/// What one pass did (tests, logs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedulerReport {
    /// Sites whose scheduled backup started (first tries and retries).
    pub started: Vec<i32>,
    /// Sites whose due backup waits: their node is at its limit, or they were busy.
    pub deferred: Vec<i32>,
    /// Sites refused for their owner's quota.
    pub over_quota: Vec<i32>,
    /// Scheduled backups that failed (each tried again unless it was the last attempt).
    pub failed: Vec<i32>,
    /// Sites whose retention ran.
    pub kept: Vec<i32>,
    /// Backup rows forgotten (retention and deleted sites).
    pub forgotten: usize,
    pub pruned: bool,
}

pub(crate) fn spawn_scheduler(cluster: &Arc<Cluster>) -> tokio::task::JoinHandle<()> {
    let cluster = cluster.clone();
    tokio::spawn(async move {
        if let Err(err) = publish_gauges(cluster.home(), now_ms()).await {
            tracing::warn!(%err, "could not publish the backup gauges");
        }
        loop {
            tokio::time::sleep(TICK).await;
            match run_once(&cluster, now_ms()).await {
                Ok(r) if r != SchedulerReport::default() => tracing::info!(report = ?r, "backup scheduler"),
                Ok(_) => {}
                Err(err) => tracing::warn!(%err, "backup scheduler pass failed; trying again at the next tick"),
            }
        }
    })
}

/// One pass at `now` (unix ms).
pub async fn run_once(cluster: &Cluster, now: i64) -> Result<SchedulerReport> {
    let home = cluster.home();
    let mut report = SchedulerReport::default();
    let rows = home.store.all_backup_schedules().await?;
    for (s, h) in &rows {
        if let Some(bid) = s.pending_backup_id {
            look_at_pending(home, s, h, bid, now, &mut report).await?;
        }
    }
    keep_in_shape(cluster, now, &mut report).await;
    start_due(cluster, now, &mut report).await?;
    match retention::forget_deleted_sites(home, now).await {
        Ok(n) => report.forgotten += n,
        Err(err) => tracing::warn!(%err, "could not forget deleted sites' backups; trying again later"),
    }
    match retention::prune_if_due(home, now).await {
        Ok(p) => report.pruned = p,
        Err(err) => tracing::warn!(%err, "could not prune the backup repository; trying again later"),
    }
    publish_gauges(home, now).await?;
    Ok(report)
}

/// Step 1.
async fn look_at_pending(cx: &Cx, s: &ScheduleRow, h: &HostingRow, bid: i32, now: i64, report: &mut SchedulerReport) -> Result<()> {
    let Some(b) = cx.store.backup(bid).await? else { return cx.store.schedule_settled(h.id).await };
    match b.state {
        BackupState::Running => Ok(()),
        BackupState::Succeeded => cx.store.schedule_settled(h.id).await,
        BackupState::Failed => {
            report.failed.push(h.id);
            let why = b.error.unwrap_or_else(|| "unknown reason".into());
            failed_attempt(cx, s, h, None, &why, now).await
        }
    }
}

/// A scheduled backup failed (`why`): tried again later, or given up after the last attempt.
async fn failed_attempt(cx: &Cx, s: &ScheduleRow, h: &HostingRow, slot: Option<i64>, why: &str, now: i64) -> Result<()> {
    crate::telemetry::record_scheduled_backup_failure();
    let attempts = s.attempts + 1;
    let msg = if attempts < plan::MAX_ATTEMPTS {
        let delay = plan::retry_delay_ms(attempts);
        cx.store.schedule_retry(h.id, slot, Some(now + delay), attempts).await?;
        format!("Scheduled backup failed ({why}); trying again in {} min", delay / 60_000)
    } else {
        cx.store.schedule_retry(h.id, slot, None, 0).await?;
        format!("Scheduled backup failed ({why}) {attempts} times; the next one is at the next scheduled time")
    };
    tracing::warn!(hosting_id = h.id, attempts, %why, "scheduled backup failed");
    cx.event(h, EventKind::Action, None, EventStatus::Failed, msg, None).await;
    Ok(())
}

/// Step 2: sites with a successful backup newer than their last retention run, none running.
async fn keep_in_shape(cluster: &Cluster, now: i64, report: &mut SchedulerReport) {
    let home = cluster.home();
    let (schedules, lasts) = match (home.store.all_backup_schedules().await, home.store.last_backup_successes().await) {
        (Ok(s), Ok(l)) => (s, l),
        (Err(err), _) | (_, Err(err)) => return tracing::warn!(%err, "could not read the backups to keep in shape"),
    };
    let by_site: HashMap<i32, &ScheduleRow> = schedules.iter().map(|(s, _)| (s.hosting_id, s)).collect();
    for (id, last) in lasts {
        let row = by_site.get(&id);
        if row.is_some_and(|s| s.forgot_at.is_some_and(|f| f >= last) || s.pending_backup_id.is_some()) {
            continue;
        }
        let schedule = row.map(|s| s.schedule()).unwrap_or_default();
        let Ok(policy) = KeepPolicy::new(schedule.keep_daily, schedule.keep_weekly, schedule.keep_monthly) else { continue };
        match retention::keep_site(home, id, policy, now).await {
            Ok(k) => {
                report.kept.push(id);
                report.forgotten += k.forgotten.len();
            }
            Err(err) => tracing::warn!(hosting_id = id, %err, "retention did not run (a backup may hold the repository); trying again later"),
        }
    }
}

/// Step 3.
async fn start_due(cluster: &Cluster, now: i64, report: &mut SchedulerReport) -> Result<()> {
    let home = cluster.home();
    let limit = u64::from(home.cfg.backup.concurrency.max(1));
    let mut running: HashMap<i32, u64> = HashMap::new();
    for (s, h) in home.store.active_backup_schedules().await? {
        if s.pending_backup_id.is_some() {
            continue;
        }
        let schedule = s.schedule();
        let slot = plan::due_slot(&schedule, h.id, s.anchor_at, now);
        let retry = s.retry_at.is_some_and(|at| at <= now);
        if slot.is_none() && !retry {
            continue;
        }
        let Ok(node) = cluster.live(h.node_id) else {
            report.deferred.push(h.id);
            continue;
        };
        let busy = match running.get(&h.node_id) {
            Some(n) => *n,
            None => home.store.running_backups(Some(h.node_id)).await?,
        };
        if busy >= limit {
            running.insert(h.node_id, busy);
            report.deferred.push(h.id);
            continue;
        }
        if start_one(&node, &s, &h, &schedule, slot, now, report).await? {
            running.insert(h.node_id, busy + 1);
        } else {
            running.insert(h.node_id, busy);
        }
    }
    Ok(())
}

/// Starts one site's scheduled backup; whether it started.
async fn start_one(
    node: &Cx,
    s: &ScheduleRow,
    h: &HostingRow,
    schedule: &BackupSchedule,
    slot: Option<i64>,
    now: i64,
    report: &mut SchedulerReport,
) -> Result<bool> {
    let Some(owner) = h.user_id else { return Ok(false) };
    if let Err(Error::BackupQuota(why)) = quota::check(node, owner).await {
        report.over_quota.push(h.id);
        node.store.schedule_retry(h.id, slot, None, 0).await?;
        crate::telemetry::record_scheduled_backup_failure();
        let msg = format!("Scheduled backup not made: {why}");
        node.event(h, EventKind::Action, None, EventStatus::Failed, msg, None).await;
        return Ok(false);
    }
    let actor = Actor { user_id: owner, is_admin: false };
    match super::take(node, &actor, h.id, schedule.with_memory, BackupTrigger::Scheduled).await {
        Ok(b) => {
            node.store.schedule_started(h.id, slot, b.id).await?;
            report.started.push(h.id);
            Ok(true)
        }
        Err(Error::Busy(_)) => {
            report.deferred.push(h.id);
            node.store.schedule_retry(h.id, slot, Some(now + plan::BUSY_RETRY_MS), s.attempts).await?;
            Ok(false)
        }
        Err(err) => {
            report.failed.push(h.id);
            failed_attempt(node, s, h, slot, &err.to_string(), now).await?;
            Ok(false)
        }
    }
}

/// Sets the gauges read from the database: each site's last successful backup, and how many
/// sites are stale (their last success older than their period plus a margin).
pub(crate) async fn publish_gauges(cx: &Cx, now: i64) -> Result<()> {
    for (id, at) in cx.store.last_backup_successes().await? {
        crate::telemetry::set_backup_last_success(id, at);
    }
    let stale = stale_sites(cx, now).await?.len();
    crate::telemetry::set_backups_stale(stale as u64);
    Ok(())
}

/// The sites whose schedule is on and whose last success is too old, with it.
pub(crate) async fn stale_sites(cx: &Cx, now: i64) -> Result<Vec<(ScheduleRow, HostingRow, Option<i64>)>> {
    let lasts: HashMap<i32, i64> = cx.store.last_backup_successes().await?.into_iter().collect();
    Ok(cx
        .store
        .active_backup_schedules()
        .await?
        .into_iter()
        .filter_map(|(s, h)| {
            let last = lasts.get(&h.id).copied();
            plan::is_stale(&s.schedule(), last, s.updated_at, now).then_some((s, h, last))
        })
        .collect())
}
