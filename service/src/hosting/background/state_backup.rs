//! The leader's state backups (`crate::state_backup`: the database and `{data_dir}/tls`):
//! - shortly after site backups finish (once they have stopped finishing for [`SETTLE`]), so
//!   the database that `restore-node` brings back knows every site and that backup;
//! - daily, once any site has a backup or when the repository is off the node (a default
//!   repository on a node that never backed anything up is not made for this).
//! A failure is logged and tried again after [`RETRY`]. Older state snapshots are forgotten by
//! [`STATE_KEEP`] after each one.
use std::time::Duration;

use crate::hosting::cx::Cx;
use crate::backup::{KeepPolicy, SnapshotFilter, Tag};
use crate::state_backup::{back_up_state, latest_state_snapshot, Database, StateError, STATE_TAG};

const TICK: Duration = Duration::from_secs(10);
/// How long after the newest site backup a state backup waits (more may be finishing).
const SETTLE: Duration = Duration::from_secs(15);
const DAILY: Duration = Duration::from_secs(24 * 3600);
const RETRY: Duration = Duration::from_secs(300);
/// State snapshots kept: the last of each of 14 days, 8 weeks, 12 months.
const STATE_KEEP: (u32, u32, u32) = (14, 8, 12);

pub(crate) fn spawn_state_backups(cx: &Cx) -> tokio::task::JoinHandle<()> {
    let cx = cx.clone();
    tokio::spawn(async move {
        // When the newest state snapshot was made (ms), read from the repository once.
        let mut last: Option<i64> = None;
        let mut known = false;
        let mut not_before = 0i64;
        loop {
            tokio::time::sleep(TICK).await;
            let now = crate::db::now_ms();
            if now < not_before {
                continue;
            }
            let newest = match cx.store.newest_backup_finished_at().await {
                Ok(t) => t,
                Err(err) => {
                    tracing::warn!(%err, "could not read the newest backup's time");
                    continue;
                }
            };
            let off_node = !cx.shared.backup_repo.shares_node_disk();
            if newest.is_none() && !off_node {
                continue;
            }
            if !known {
                match last_state_ms(&cx).await {
                    Ok(t) => {
                        last = t;
                        known = true;
                    }
                    Err(err) => {
                        tracing::warn!(%err, "could not list the state backups in the repository");
                        not_before = now + RETRY.as_millis() as i64;
                        continue;
                    }
                }
            }
            if !due(now, last, newest) {
                continue;
            }
            match run(&cx).await {
                Ok(()) => last = Some(now),
                Err(err) => {
                    tracing::error!(%err, "the state backup failed; trying again in 5 minutes");
                    crate::telemetry::record_state_backup(None);
                    not_before = now + RETRY.as_millis() as i64;
                }
            }
        }
    })
}

/// Whether a state backup is due at `now`: a site backup finished after the last state
/// backup and [`SETTLE`] ago, or the last one is a day old (or there is none).
fn due(now: i64, last: Option<i64>, newest_site_backup: Option<i64>) -> bool {
    let settled = |t: i64| now - t >= SETTLE.as_millis() as i64;
    match (last, newest_site_backup) {
        (Some(l), Some(n)) if n > l => settled(n),
        (Some(l), _) => now - l >= DAILY.as_millis() as i64,
        (None, Some(n)) => settled(n),
        (None, None) => true,
    }
}

async fn last_state_ms(cx: &Cx) -> Result<Option<i64>, StateError> {
    let restic = cx.shared.backup_repo.restic().await?;
    Ok(latest_state_snapshot(restic).await?.map(|s| (s.time.unix_timestamp_nanos() / 1_000_000) as i64))
}

/// One state backup now.
pub(crate) async fn run(cx: &Cx) -> Result<(), StateError> {
    let t = std::time::Instant::now();
    let restic = cx.shared.backup_repo.restic().await?;
    let database = match &cx.cfg.backup.database_url {
        Some(url) => Database::parse(url)?,
        None if cx.store.db().get_database_backend() == sea_orm::DatabaseBackend::Sqlite => Database::Sqlite { path: Default::default() },
        None => return Err(StateError::UnsupportedUrl("the PostgreSQL database's URL is not known to the service".into())),
    };
    let sum = back_up_state(restic, cx.store.db(), &database, &cx.cfg.data_dir, &cx.cfg.node_name).await?;
    crate::telemetry::record_state_backup(Some(sum.data_added));
    tracing::info!(snapshot = %sum.snapshot_id, bytes_added = sum.data_added, secs = t.elapsed().as_secs_f64(), "the service's state backed up");
    // Older state snapshots thin out (the newest is always kept); the daily prune reclaims them.
    let policy = KeepPolicy::new(STATE_KEEP.0, STATE_KEEP.1, STATE_KEEP.2)?;
    let filter = SnapshotFilter::tagged([Tag::parse(STATE_TAG)?]);
    if let Err(err) = restic.forget_as_one_group(&filter, policy).await {
        tracing::warn!(%err, "could not forget old state backups; tried again after the next one");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

    #[test]
    fn a_state_backup_follows_site_backups_once_they_settle() {
        let now = 1_000_000 * S;
        // Site backups after the last state backup: due once the newest is SETTLE old.
        assert!(!due(now, Some(now - 3600 * S), Some(now - 5 * S)));
        assert!(due(now, Some(now - 3600 * S), Some(now - 20 * S)));
        // Nothing new since the last one: due only a day later.
        assert!(!due(now, Some(now - 3600 * S), Some(now - 7200 * S)));
        assert!(due(now, Some(now - 25 * 3600 * S), Some(now - 26 * 3600 * S)));
        // No state backup yet.
        assert!(due(now, None, Some(now - 20 * S)));
        assert!(!due(now, None, Some(now - 2 * S)));
        assert!(due(now, None, None));
    }
}
