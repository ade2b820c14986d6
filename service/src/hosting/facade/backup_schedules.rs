//! Backup schedules and retention (issue 31): a site's schedule for its owner, the scheduler's
//! pass (the background task's, and the tests'), and the stale sites for administrators.
use super::super::HostingService;
use crate::accounts::Actor;
use crate::db::now_ms;
use crate::hosting::lifecycle::backups::{schedule, scheduler};
use crate::hosting::SchedulerReport;
use crate::Result;
use vmw_types::{BackupSchedule, BackupScheduleView, StaleBackupView, StaleBackups};


impl HostingService {
    /// Hosting `id`'s backup schedule (off with the default retention until set), its next run
    /// and the owner's backup storage against the quota. Owner or admin (others: not found).
    pub async fn backup_schedule(&self, actor: &Actor, id: i32) -> Result<BackupScheduleView> {
        let row = self.cx.store.owned(actor, id).await?;
        schedule::view(&self.cx, &row).await
    }

    /// Sets hosting `id`'s backup schedule and retention (422 with the field at fault). Owner
    /// or admin (others: not found).
    pub async fn set_backup_schedule(&self, actor: &Actor, id: i32, s: &BackupSchedule) -> Result<BackupScheduleView> {
        schedule::set(&self.cx, actor, id, s).await
    }

    /// One pass of the backup scheduler at `now_ms` (the leader runs one every 30 s): due
    /// backups started, finished ones looked at, retention, deleted sites' backups, prune.
    pub async fn run_backup_scheduler(&self, now_ms: i64) -> Result<SchedulerReport> {
        scheduler::run_once(&self.cluster, now_ms).await
    }

    /// Sites whose last successful backup is older than their schedule's period plus a margin,
    /// and whether the repository is on the node's own disk (administrators only).
    pub async fn stale_backups(&self, actor: &Actor) -> Result<StaleBackups> {
        actor.require_admin()?;
        let mut stale = Vec::new();
        for (s, h, last) in scheduler::stale_sites(&self.cx, now_ms()).await? {
            let owner = match h.user_id {
                Some(uid) => self.accounts.get_user(uid).await.map(|u| u.username).unwrap_or_default(),
                None => String::new(),
            };
            stale.push(StaleBackupView { hosting_id: h.id, slug: h.slug.clone(), owner, last_success_at: last, schedule: s.schedule() });
        }
        Ok(StaleBackups { stale, repository_on_node_disk: self.cx.shared.backup_repo.shares_node_disk() })
    }
}
