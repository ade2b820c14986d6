//! The per-user quota on backup storage (`--backup-quota-mib`, 0: unlimited): the sum over the
//! user's sites of what the repository says each site's backups take (restic's raw-data stats
//! of the snapshots tagged `site-{id}`, counted after each backup and retention run). Over it,
//! "Back up now" is refused (409, `backup_quota_exceeded`) and a scheduled backup fails with an
//! event saying why.
use super::take::human_bytes;
use crate::hosting::cx::Cx;
use crate::{Error, Result};

/// The quota in bytes; None: unlimited.
pub(crate) fn limit_bytes(cx: &Cx) -> Option<i64> {
    match cx.cfg.backup.quota_mib {
        0 => None,
        mib => Some((mib as i64).saturating_mul(1 << 20)),
    }
}

/// Refuses a new backup of user `user_id`'s when their backups already take their quota.
pub(crate) async fn check(cx: &Cx, user_id: i32) -> Result<()> {
    let Some(limit) = limit_bytes(cx) else { return Ok(()) };
    let used = cx.store.backup_usage_of_user(user_id).await?;
    if used >= limit {
        return Err(Error::BackupQuota(format!(
            "Your backups take {} of your {} of backup storage: lower your sites' retention or wait for old backups to expire, then try again",
            human_bytes(used.max(0) as u64),
            human_bytes(limit as u64)
        )));
    }
    Ok(())
}
