//! Retention (issue 31): each site's keep policy applied in the repository after its backups
//! (restic's `forget`, its snapshots tagged `site-{id}` as one group, so one site's policy never
//! touches another's), the rows of forgotten snapshots removed (the page never offers a backup
//! the repository no longer has), and what the site's backups take counted again for the quota.
//! Manual backups follow the same policy: restic keeps by time, whoever made them.
//!
//! A deleted site's backups stay `--backup-keep-deleted-days` (counted from when the scheduler
//! first saw the site gone), then are forgotten. The data forgotten snapshots held is freed by
//! `prune`, at most once a day per repository, on the leader, when no backup runs (it takes
//! restic's exclusive lock); stale locks (of a killed restic) are removed first, live ones never.
use crate::backup::{KeepPolicy, SnapshotFilter, SnapshotId, Tag};
use crate::hosting::cx::Cx;
use crate::Result;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// What one site's retention run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kept {
    /// Backups (rows) whose snapshots were forgotten.
    pub forgotten: Vec<i32>,
    /// What the site's remaining backups take in the repository.
    pub usage_bytes: u64,
}

/// Applies `policy` to site `id`'s snapshots, removes the rows of those forgotten and stores
/// the site's usage (at `now`).
pub(crate) async fn keep_site(cx: &Cx, id: i32, policy: KeepPolicy, now: i64) -> Result<Kept> {
    let restic = cx.shared.backup_repo.restic().await?;
    let filter = SnapshotFilter::tagged([Tag::parse(format!("site-{id}"))?]);
    let result = restic.forget_as_one_group(&filter, policy).await?;
    let removed: Vec<&str> = result.removed.iter().map(|s| s.id.as_str()).collect();
    let forgotten: Vec<i32> = cx
        .store
        .backups_of(id)
        .await?
        .into_iter()
        .filter(|b| b.snapshot_id.as_deref().is_some_and(|sid| removed.iter().any(|r| same_snapshot(r, sid))))
        .map(|b| b.id)
        .collect();
    cx.store.remove_backup_rows(&forgotten).await?;
    let usage_bytes = if result.kept.is_empty() { 0 } else { restic.stats_raw(&filter).await?.total_size };
    cx.store.backups_kept_in_shape(id, Some(usage_bytes), now).await?;
    if !forgotten.is_empty() {
        cx.shared.backup_repo.note_forgotten();
        tracing::info!(hosting_id = id, forgotten = forgotten.len(), usage_bytes, "old backups forgotten by the site's retention");
    }
    Ok(Kept { forgotten, usage_bytes })
}

/// restic prints a snapshot's full id in `forget` and may record a short one elsewhere.
fn same_snapshot(full: &str, recorded: &str) -> bool {
    !recorded.is_empty() && full.starts_with(recorded)
}

/// Forgets the backups of sites deleted more than `--backup-keep-deleted-days` ago; returns how
/// many rows went.
pub(crate) async fn forget_deleted_sites(cx: &Cx, now: i64) -> Result<usize> {
    let days = i64::from(cx.cfg.backup.keep_deleted_days);
    let expired = cx.store.orphaned_backups(now, now - days * DAY_MS).await?;
    if expired.is_empty() {
        return Ok(0);
    }
    let ids: Vec<SnapshotId> = expired.iter().filter_map(|b| b.snapshot_id.clone()).filter_map(|s| SnapshotId::parse(s).ok()).collect();
    if !ids.is_empty() {
        cx.shared.backup_repo.restic().await?.forget_ids(&ids).await?;
        cx.shared.backup_repo.note_forgotten();
    }
    let rows: Vec<i32> = expired.iter().map(|b| b.id).collect();
    cx.store.remove_backup_rows(&rows).await?;
    tracing::info!(backups = rows.len(), days, "backups of deleted sites forgotten");
    Ok(rows.len())
}

/// Prunes the repository when something was forgotten since the last prune and the last one is
/// a day old (or none ran in this process), and no backup runs. Returns whether it pruned.
pub(crate) async fn prune_if_due(cx: &Cx, now: i64) -> Result<bool> {
    let repo = &cx.shared.backup_repo;
    if !repo.prune_due(now, DAY_MS) || cx.store.running_backups(None).await? > 0 {
        return Ok(false);
    }
    let restic = repo.restic().await?;
    restic.unlock().await?;
    let t = std::time::Instant::now();
    restic.prune().await?;
    repo.pruned(now);
    tracing::info!(secs = t.elapsed().as_secs_f64(), "backup repository pruned");
    Ok(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_recorded_short_id_names_the_full_one() {
        assert!(super::same_snapshot("4bba301e1234abcd", "4bba301e"));
        assert!(super::same_snapshot("4bba301e1234abcd", "4bba301e1234abcd"));
        assert!(!super::same_snapshot("4bba301e1234abcd", "5bba301e"));
        assert!(!super::same_snapshot("4bba301e1234abcd", ""));
    }
}
