//! A site's backup schedule as its owner sets and sees it: validated ([`plan::validate`]),
//! stored (`store::backup_schedules`), told as an event, shown with the next run, the site's
//! spread offset and the owner's repository usage against the quota.
use super::{plan, quota};
use crate::accounts::Actor;
use crate::db::now_ms;
use crate::hosting::cx::Cx;
use crate::store::HostingRow;
use crate::Result;
use vmw_types::{BackupFrequency, BackupSchedule, BackupScheduleView, EventKind, EventStatus};

/// Hosting `row`'s schedule (off with the default retention when never set) at `now`.
pub(crate) async fn view_at(cx: &Cx, row: &HostingRow, now: i64) -> Result<BackupScheduleView> {
    let stored = cx.store.backup_schedule(row.id).await?;
    let (schedule, anchor, usage) = match &stored {
        Some(s) => (s.schedule(), s.anchor_at, s.usage_bytes),
        None => (BackupSchedule::default(), now, None),
    };
    let user_usage = match row.user_id {
        Some(uid) => cx.store.backup_usage_of_user(uid).await?,
        None => 0,
    };
    Ok(BackupScheduleView {
        next_run_at: plan::next_run(&schedule, row.id, anchor, now),
        spread_secs: plan::spread_ms(row.id) / 1000,
        schedule,
        usage_bytes: usage,
        user_usage_bytes: user_usage,
        quota_bytes: quota::limit_bytes(cx),
    })
}

pub(crate) async fn view(cx: &Cx, row: &HostingRow) -> Result<BackupScheduleView> {
    view_at(cx, row, now_ms()).await
}

/// Sets hosting `id`'s schedule (the actor was checked to own it, or be an admin); its next
/// slot after now is the first that runs. An event tells the owner what was set.
pub(crate) async fn set(cx: &Cx, actor: &Actor, id: i32, s: &BackupSchedule) -> Result<BackupScheduleView> {
    let row = cx.store.owned(actor, id).await?;
    plan::validate(s)?;
    let mut s = s.clone();
    if s.frequency != BackupFrequency::Weekly {
        s.weekday = None;
    }
    cx.store.set_backup_schedule(id, &s, now_ms()).await?;
    let view = view(cx, &row).await?;
    cx.event(&row, EventKind::Action, None, EventStatus::Info, describe(&s), None).await;
    tracing::info!(hosting_id = id, frequency = %s.frequency, hour = s.hour, minute = s.minute, "backup schedule set");
    Ok(view)
}

/// `Backup schedule: daily at 02:00 UTC, keeping 7 daily, 4 weekly, 6 monthly backups`.
pub(crate) fn describe(s: &BackupSchedule) -> String {
    let when = match (s.frequency, s.weekday) {
        (BackupFrequency::Off, _) => return "Backup schedule: off (back up with \"Back up now\")".to_owned(),
        (BackupFrequency::Weekly, Some(d)) => format!("weekly on {d} at {:02}:{:02} UTC", s.hour, s.minute),
        _ => format!("daily at {:02}:{:02} UTC", s.hour, s.minute),
    };
    let memory = if s.with_memory { ", with its memory" } else { "" };
    format!("Backup schedule: {when}{memory}, keeping {} daily, {} weekly, {} monthly backups", s.keep_daily, s.keep_weekly, s.keep_monthly)
}
