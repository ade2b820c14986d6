//! Scheduled backups, retention and the backup quota on libvirt's test driver, with a real
//! restic repository under the data dir. The scheduler's pass is called with a clock the test
//! chooses (`run_backup_scheduler(now)`), as the leader calls it every 30 s with the real one.
use std::path::PathBuf;

use service::Error;
use service::accounts::Actor;
use service::backup::{SnapshotFilter, Tag};
use service::hosting::{BackupState, BackupTrigger, BackupView};
use vmw_types::{BackupFrequency, BackupSchedule, Weekday};

mod support;
use support::backups::{finished, powered_off_site, repo, restic_installed};
use support::{Env, env_with};

const HOUR: i64 = 3600 * 1000;

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

async fn env(quota_mib: u64) -> (Env, PathBuf) {
    let e = env_with(|c| {
        c.idle_sleep_secs = 0;
        c.max_hostings_per_user = 4;
        c.backup.quota_mib = quota_mib;
    })
    .await;
    let data = e.svc.config().data_dir.clone();
    (e, data)
}

fn daily() -> BackupSchedule {
    BackupSchedule { frequency: BackupFrequency::Daily, hour: 2, minute: 0, ..BackupSchedule::default() }
}

/// A weekly schedule whose day is five days from today: not due within four days of now.
fn weekly_in_five_days() -> BackupSchedule {
    let days = [Weekday::Monday, Weekday::Tuesday, Weekday::Wednesday, Weekday::Thursday, Weekday::Friday, Weekday::Saturday, Weekday::Sunday];
    let today = time::OffsetDateTime::now_utc().weekday().number_days_from_monday() as usize;
    BackupSchedule { frequency: BackupFrequency::Weekly, weekday: Some(days[(today + 5) % 7]), ..daily() }
}

/// Writes `len` random bytes at 16 MiB into a qcow2 image (restic cannot compress them away).
fn write_random(img: &std::path::Path, len: usize) {
    let src = img.with_extension("random");
    let mut bytes = vec![0u8; len];
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for b in bytes.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(&src, bytes).unwrap();
    let cmd = format!("write -s {} 16M {len}", src.display());
    let st = std::process::Command::new("qemu-io").args(["-f", "qcow2", "-c", &cmd]).arg(img).stdout(std::process::Stdio::null()).status().unwrap();
    assert!(st.success(), "qemu-io {cmd}");
    std::fs::remove_file(src).unwrap();
}

async fn back_up(e: &Env, a: &Actor, id: i32) -> BackupView {
    let b = e.svc.back_up(a, id, false).await.unwrap();
    let b = finished(e, a, id, &b).await;
    assert_eq!(b.state, BackupState::Succeeded, "{:?}", b.error);
    b
}

async fn snapshots_of(data: &std::path::Path, id: i32) -> Vec<String> {
    let tag = Tag::parse(format!("site-{id}")).unwrap();
    repo(data).snapshots(&SnapshotFilter::tagged([tag])).await.unwrap().into_iter().map(|s| s.id).collect()
}

#[tokio::test]
async fn a_due_site_gets_one_scheduled_backup_and_a_site_not_due_gets_none() {
    if !restic_installed("a_due_site_gets_one_scheduled_backup_and_a_site_not_due_gets_none") {
        return;
    }
    let (e, data) = env(0).await;
    let [ann, bob, eve] = e.users(["ann", "bob", "eve"]).await;
    let a = powered_off_site(&e, &data, &ann, "ann").await;
    let b = powered_off_site(&e, &data, &bob, "bob").await;

    // A new site's schedule is off, with the default retention.
    let v = e.svc.backup_schedule(&ann, a).await.unwrap();
    assert_eq!((v.schedule.clone(), v.next_run_at), (BackupSchedule::default(), None));
    assert!(matches!(e.svc.set_backup_schedule(&eve, a, &daily()).await, Err(Error::NotFound(_))), "others do not see it");
    let bad = BackupSchedule { keep_daily: 0, keep_weekly: 0, keep_monthly: 0, ..daily() };
    assert!(matches!(e.svc.set_backup_schedule(&ann, a, &bad).await, Err(Error::Validation { field: "keep_daily", .. })));

    let set_at = now_ms();
    let v = e.svc.set_backup_schedule(&ann, a, &daily()).await.unwrap();
    let next = v.next_run_at.expect("a daily schedule has a next run");
    assert!(next > set_at && next <= set_at + 24 * HOUR + 1000, "within a day: {next} vs {set_at}");
    assert!((0..30 * 60).contains(&v.spread_secs));
    e.svc.set_backup_schedule(&bob, b, &weekly_in_five_days()).await.unwrap();
    assert!(e.svc.events(&ann, a, 0).await.unwrap().iter().any(|ev| ev.message.starts_with("Backup schedule: daily at 02:00 UTC")));

    // Nothing is due now: the slots before a schedule was set do not run.
    let r = e.svc.run_backup_scheduler(now_ms()).await.unwrap();
    assert!(r.started.is_empty(), "{r:?}");

    // The service was down for three days: ann's site gets one backup, bob's (weekly, not due) none.
    let later = set_at + 3 * 24 * HOUR + HOUR;
    let r = e.svc.run_backup_scheduler(later).await.unwrap();
    assert_eq!(r.started, [a], "{r:?}");
    let list = e.svc.list_backups(&ann, a).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].trigger, BackupTrigger::Scheduled);
    let done = finished(&e, &ann, a, &list[0]).await;
    assert_eq!(done.state, BackupState::Succeeded, "{:?}", done.error);
    assert!(e.svc.list_backups(&bob, b).await.unwrap().is_empty());

    // The next pass looks at it: retention runs, the usage is counted; no second backup.
    let r = e.svc.run_backup_scheduler(later + 60_000).await.unwrap();
    assert!(r.started.is_empty(), "missed runs run once: {r:?}");
    assert_eq!(r.kept, [a], "{r:?}");
    let v = e.svc.backup_schedule(&ann, a).await.unwrap();
    assert!(v.usage_bytes.unwrap() > 0, "{v:?}");
    assert_eq!(v.user_usage_bytes, v.usage_bytes.unwrap());
    assert!(v.next_run_at.unwrap() > later, "the next run is tomorrow's");
    let o = e.svc.backups_overview(&ann, a).await.unwrap();
    assert_eq!(o.schedule.map(|s| s.schedule), Some(daily()));
}

#[tokio::test]
async fn retention_forgets_old_backups_of_one_site_only() {
    if !restic_installed("retention_forgets_old_backups_of_one_site_only") {
        return;
    }
    let (e, data) = env(0).await;
    let [ann, bob] = e.users(["ann", "bob"]).await;
    let a = powered_off_site(&e, &data, &ann, "ann").await;
    let b = powered_off_site(&e, &data, &bob, "bob").await;
    let a1 = back_up(&e, &ann, a).await;
    let a2 = back_up(&e, &ann, a).await;
    let b1 = back_up(&e, &bob, b).await;
    assert_eq!(snapshots_of(&data, a).await.len(), 2);

    // ann keeps one backup a day (manual ones follow the policy too); bob has none yet forgotten.
    let keep_one = BackupSchedule { keep_daily: 1, keep_weekly: 0, keep_monthly: 0, ..daily() };
    e.svc.set_backup_schedule(&ann, a, &keep_one).await.unwrap();
    let r = e.svc.run_backup_scheduler(now_ms()).await.unwrap();
    assert!(r.kept.contains(&a) && r.kept.contains(&b), "{r:?}");
    assert_eq!(r.forgotten, 1, "{r:?}");

    let left = snapshots_of(&data, a).await;
    assert_eq!(left.len(), 1, "ann's older backup is forgotten");
    assert!(left[0].starts_with(a2.snapshot_id.as_deref().unwrap()), "the newest is kept");
    let rows: Vec<i32> = e.svc.list_backups(&ann, a).await.unwrap().iter().map(|b| b.id).collect();
    assert_eq!(rows, [a2.id], "the page no longer offers the forgotten backup {}", a1.id);
    let bobs = snapshots_of(&data, b).await;
    assert_eq!(bobs.len(), 1, "bob's site is not touched by ann's policy");
    assert!(bobs[0].starts_with(b1.snapshot_id.as_deref().unwrap()));

    // Nothing new: the next pass leaves both alone.
    let r = e.svc.run_backup_scheduler(now_ms()).await.unwrap();
    assert!(r.kept.is_empty(), "{r:?}");
}

#[tokio::test]
async fn over_the_backup_quota_back_up_now_is_refused_and_a_scheduled_backup_is_told() {
    if !restic_installed("over_the_backup_quota_back_up_now_is_refused_and_a_scheduled_backup_is_told") {
        return;
    }
    // 1 MiB: a site's first backup (2 MiB of random data on its disk) takes more.
    let (e, data) = env(1).await;
    let [ann] = e.users(["ann"]).await;
    let a = powered_off_site(&e, &data, &ann, "ann").await;
    write_random(&e.svc.vm().vm_dir(a).join("disk.qcow2"), 2 << 20);
    back_up(&e, &ann, a).await;
    e.svc.run_backup_scheduler(now_ms()).await.unwrap();
    let v = e.svc.backup_schedule(&ann, a).await.unwrap();
    assert_eq!(v.quota_bytes, Some(1 << 20));
    assert!(v.user_usage_bytes > 1 << 20, "{v:?}");

    match e.svc.back_up(&ann, a, false).await {
        Err(err @ Error::BackupQuota(_)) => {
            assert_eq!(err.code(), "backup_quota_exceeded");
            assert!(err.to_string().contains("of your 1.0 MiB of backup storage"), "{err}");
        }
        other => panic!("{other:?}"),
    }

    let set_at = now_ms();
    e.svc.set_backup_schedule(&ann, a, &daily()).await.unwrap();
    let r = e.svc.run_backup_scheduler(set_at + 25 * HOUR).await.unwrap();
    assert_eq!((r.started.clone(), r.over_quota.clone()), (vec![], vec![a]), "{r:?}");
    let events = e.svc.events(&ann, a, 0).await.unwrap();
    assert!(events.iter().any(|ev| ev.message.starts_with("Scheduled backup not made: Your backups take")), "{events:?}");
    assert_eq!(e.svc.list_backups(&ann, a).await.unwrap().len(), 1);
}
