//! Sites' backup schedules, their retention and the scheduler's state (issue 31; table
//! `backup_schedules`), the per-site repository usage behind the per-user quota, and the
//! bookkeeping of backups whose site is gone (`backups.orphaned_at`). A site without a row is
//! off with the default retention ([`BackupSchedule::default`]).
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QuerySelect, Set};

use super::{BackupRow, HostingRow, Store};
use crate::db::entity::{backup, backup_schedule, hosting};
use crate::Result;
use vmw_types::{BackupFrequency, BackupSchedule, BackupState};

pub use backup_schedule::Model as ScheduleRow;

impl ScheduleRow {
    /// What the owner set.
    pub fn schedule(&self) -> BackupSchedule {
        BackupSchedule {
            frequency: self.frequency,
            weekday: self.weekday,
            hour: self.hour.clamp(0, 23) as u8,
            minute: self.minute.clamp(0, 59) as u8,
            keep_daily: self.keep_daily.max(0) as u32,
            keep_weekly: self.keep_weekly.max(0) as u32,
            keep_monthly: self.keep_monthly.max(0) as u32,
            with_memory: self.with_memory,
        }
    }
}

impl Store {
    pub async fn backup_schedule(&self, id: i32) -> Result<Option<ScheduleRow>> {
        Ok(backup_schedule::Entity::find_by_id(id).one(self.db()).await?)
    }

    /// Sets hosting `id`'s schedule (validated by the caller) at `now` (unix ms). The slots
    /// before `now` are not due: a new or changed schedule runs at its next time, and any retry
    /// of the old one is dropped.
    pub async fn set_backup_schedule(&self, id: i32, s: &BackupSchedule, now: i64) -> Result<ScheduleRow> {
        let (mut m, new) = self.schedule_model(id, now).await?;
        m.frequency = Set(s.frequency);
        m.weekday = Set(s.weekday);
        m.hour = Set(s.hour.into());
        m.minute = Set(s.minute.into());
        m.keep_daily = Set(s.keep_daily as i32);
        m.keep_weekly = Set(s.keep_weekly as i32);
        m.keep_monthly = Set(s.keep_monthly as i32);
        m.with_memory = Set(s.with_memory);
        m.updated_at = Set(now);
        m.anchor_at = Set(now);
        m.attempts = Set(0);
        m.retry_at = Set(None);
        self.save_schedule(m, new).await
    }

    /// The row to change (`true`: a new one, to insert).
    async fn schedule_model(&self, id: i32, now: i64) -> Result<(backup_schedule::ActiveModel, bool)> {
        Ok(match self.backup_schedule(id).await? {
            Some(row) => (row.into(), false),
            None => (fresh(id, now), true),
        })
    }

    async fn save_schedule(&self, m: backup_schedule::ActiveModel, new: bool) -> Result<ScheduleRow> {
        Ok(if new { m.insert(self.db()).await? } else { m.update(self.db()).await? })
    }

    /// The schedules that are on, with their sites.
    pub async fn active_backup_schedules(&self) -> Result<Vec<(ScheduleRow, HostingRow)>> {
        let rows = backup_schedule::Entity::find()
            .filter(backup_schedule::Column::Frequency.ne(BackupFrequency::Off))
            .find_also_related(hosting::Entity)
            .all(self.db())
            .await?;
        Ok(rows.into_iter().filter_map(|(s, h)| h.map(|h| (s, h))).collect())
    }

    /// Every row (the ones with a pending backup or backups to keep in shape), with its site.
    pub async fn all_backup_schedules(&self) -> Result<Vec<(ScheduleRow, HostingRow)>> {
        let rows = backup_schedule::Entity::find().find_also_related(hosting::Entity).all(self.db()).await?;
        Ok(rows.into_iter().filter_map(|(s, h)| h.map(|h| (s, h))).collect())
    }

    /// A scheduled backup `bid` started for the slot `slot` (None: a retry).
    pub async fn schedule_started(&self, id: i32, slot: Option<i64>, bid: i32) -> Result<()> {
        let mut q = backup_schedule::Entity::update_many()
            .col_expr(backup_schedule::Column::PendingBackupId, Expr::value(Some(bid)))
            .col_expr(backup_schedule::Column::RetryAt, Expr::value(Option::<i64>::None));
        if let Some(slot) = slot {
            q = q.col_expr(backup_schedule::Column::AnchorAt, Expr::value(slot)).col_expr(backup_schedule::Column::Attempts, Expr::value(0));
        }
        q.filter(backup_schedule::Column::HostingId.eq(id)).exec(self.db()).await?;
        Ok(())
    }

    /// The site's scheduled backup is to be tried again at `at` (`attempts` so far; None: not
    /// again, the next slot will do); `slot`: the slot it was for, now handled.
    pub async fn schedule_retry(&self, id: i32, slot: Option<i64>, at: Option<i64>, attempts: i32) -> Result<()> {
        let mut q = backup_schedule::Entity::update_many()
            .col_expr(backup_schedule::Column::PendingBackupId, Expr::value(Option::<i32>::None))
            .col_expr(backup_schedule::Column::RetryAt, Expr::value(at))
            .col_expr(backup_schedule::Column::Attempts, Expr::value(attempts));
        if let Some(slot) = slot {
            q = q.col_expr(backup_schedule::Column::AnchorAt, Expr::value(slot));
        }
        q.filter(backup_schedule::Column::HostingId.eq(id)).exec(self.db()).await?;
        Ok(())
    }

    /// The site's scheduled backup is over (done, or given up): no retry pending.
    pub async fn schedule_settled(&self, id: i32) -> Result<()> {
        backup_schedule::Entity::update_many()
            .col_expr(backup_schedule::Column::PendingBackupId, Expr::value(Option::<i32>::None))
            .col_expr(backup_schedule::Column::RetryAt, Expr::value(Option::<i64>::None))
            .col_expr(backup_schedule::Column::Attempts, Expr::value(0))
            .filter(backup_schedule::Column::HostingId.eq(id))
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// Retention ran for the site at `now`, and its backups take `usage` bytes (None: not
    /// counted this time).
    pub async fn backups_kept_in_shape(&self, id: i32, usage: Option<u64>, now: i64) -> Result<()> {
        let (mut m, new) = self.schedule_model(id, now).await?;
        m.forgot_at = Set(Some(now));
        if let Some(bytes) = usage {
            m.usage_bytes = Set(Some(bytes as i64));
            m.usage_at = Set(Some(now));
        }
        self.save_schedule(m, new).await?;
        Ok(())
    }

    /// What the backups of user `user_id`'s sites take in the repository, as last counted.
    pub async fn backup_usage_of_user(&self, user_id: i32) -> Result<i64> {
        let rows: Vec<Option<i64>> = backup_schedule::Entity::find()
            .select_only()
            .column(backup_schedule::Column::UsageBytes)
            .inner_join(hosting::Entity)
            .filter(hosting::Column::UserId.eq(user_id))
            .into_tuple()
            .all(self.db())
            .await?;
        Ok(rows.into_iter().flatten().sum())
    }

    /// Each site's newest successful backup (unix ms), over every site that has one.
    pub async fn last_backup_successes(&self) -> Result<Vec<(i32, i64)>> {
        let rows: Vec<(Option<i32>, Option<i64>)> = backup::Entity::find()
            .select_only()
            .column(backup::Column::HostingId)
            .column_as(backup::Column::FinishedAt.max(), "last")
            .filter(backup::Column::State.eq(BackupState::Succeeded))
            .filter(backup::Column::HostingId.is_not_null())
            .group_by(backup::Column::HostingId)
            .into_tuple()
            .all(self.db())
            .await?;
        Ok(rows.into_iter().filter_map(|(h, t)| Some((h?, t?))).collect())
    }

    /// Removes the rows of backups no longer in the repository.
    pub async fn remove_backup_rows(&self, ids: &[i32]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        Ok(backup::Entity::delete_many().filter(backup::Column::Id.is_in(ids.to_vec())).exec(self.db()).await?.rows_affected)
    }

    /// Notes `now` as the time the site of each backup row whose site is gone was first seen
    /// gone; returns the rows seen gone before `before` (not running): to be forgotten.
    pub async fn orphaned_backups(&self, now: i64, before: i64) -> Result<Vec<BackupRow>> {
        backup::Entity::update_many()
            .col_expr(backup::Column::OrphanedAt, Expr::value(Some(now)))
            .filter(backup::Column::HostingId.is_null())
            .filter(backup::Column::OrphanedAt.is_null())
            .exec(self.db())
            .await?;
        Ok(backup::Entity::find()
            .filter(backup::Column::HostingId.is_null())
            .filter(backup::Column::OrphanedAt.lt(before))
            .filter(backup::Column::State.ne(BackupState::Running))
            .all(self.db())
            .await?)
    }

    /// Backups (scheduled or manual) running on node `node_id`, or on every node.
    pub async fn running_backups(&self, node_id: Option<i32>) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        let mut q = backup::Entity::find().filter(backup::Column::State.eq(BackupState::Running));
        if let Some(n) = node_id {
            q = q.filter(backup::Column::NodeId.eq(n));
        }
        Ok(q.count(self.db()).await?)
    }
}

/// A new row: off, the default retention.
fn fresh(id: i32, now: i64) -> backup_schedule::ActiveModel {
    let d = BackupSchedule::default();
    backup_schedule::ActiveModel {
        hosting_id: Set(id),
        frequency: Set(d.frequency),
        weekday: Set(d.weekday),
        hour: Set(d.hour.into()),
        minute: Set(d.minute.into()),
        keep_daily: Set(d.keep_daily as i32),
        keep_weekly: Set(d.keep_weekly as i32),
        keep_monthly: Set(d.keep_monthly as i32),
        with_memory: Set(d.with_memory),
        updated_at: Set(now),
        anchor_at: Set(now),
        pending_backup_id: Set(None),
        attempts: Set(0),
        retry_at: Set(None),
        usage_bytes: Set(None),
        usage_at: Set(None),
        forgot_at: Set(None),
    }
}
