//! "Back up now" on libvirt's test driver (a real database, a real nginx, a real restic
//! repository under the data dir): who may, one operation at a time, what a backup adds the
//! second time, the base stored once, rows that outlive their site.
//! The site's disk is a real qcow2 overlay on a base (the test driver's domains run nothing, so
//! a powered-off site is captured: its overlay copied as it is). service/tests/real_vm.rs backs
//! up real running and sleeping sites.
//!
//! Without restic the tests that run it say they are skipped (and fail when REQUIRE_RESTIC=1).
use std::path::PathBuf;
use std::time::Duration;

use service::Error;
use service::backup::{SnapshotFilter, Tag};
use service::hosting::{BackupSource, BackupState, BackupTrigger, HostingState, Operation};

mod support;
use support::backups::{finished, powered_off_site, repo, restic_installed};
use support::{Env, env_with};

async fn env() -> (Env, PathBuf) {
    let e = env_with(|c| {
        c.idle_sleep_secs = 0;
        c.max_hostings_per_user = 4;
    })
    .await;
    let data = e.svc.config().data_dir.clone();
    (e, data)
}

#[tokio::test]
async fn a_site_is_backed_up_by_its_owner_once_at_a_time_and_the_second_backup_adds_little() {
    if !restic_installed("a_site_is_backed_up_by_its_owner_once_at_a_time_and_the_second_backup_adds_little") {
        return;
    }
    let (e, data) = env().await;
    let [ann, eve] = e.users(["ann", "eve"]).await;
    let id = powered_off_site(&e, &data, &ann, "ann").await;

    assert!(matches!(e.svc.back_up(&eve, id, false).await, Err(Error::NotFound(_))), "others do not see it");
    assert!(matches!(e.svc.list_backups(&eve, id).await, Err(Error::NotFound(_))));

    let before = e.settled(&ann, id).await.state_reason;
    let b1 = e.svc.back_up(&ann, id, false).await.unwrap();
    assert_eq!(b1.state, BackupState::Running);
    assert!(matches!(e.svc.back_up(&ann, id, false).await, Err(Error::Busy(_))), "one operation at a time");
    assert!(matches!(e.svc.action(&ann, id, Operation::Start).await, Err(Error::Busy(_) | Error::Conflict { .. })));
    let b1 = finished(&e, &ann, id, &b1).await;
    assert_eq!(b1.state, BackupState::Succeeded, "{:?}", b1.error);
    assert_eq!(b1.captured_from, Some(BackupSource::PoweredOff));
    assert!(!b1.with_memory);
    assert_eq!(b1.base_id.as_deref(), Some("image-test-build"));
    let added1 = b1.bytes_added.unwrap();
    assert!(added1 > 0 && b1.bytes_total.unwrap() > 8 << 20, "{b1:?}");
    let v = e.settled(&ann, id).await;
    assert_eq!((v.state, v.state_reason.clone()), (HostingState::Stopped, before), "the site is as it was");
    assert!(!data.join("backups/staging").join(b1.id.to_string()).exists(), "the staging folder is removed");

    let b2 = e.svc.back_up(&ann, id, false).await.unwrap();
    let b2 = finished(&e, &ann, id, &b2).await;
    assert_eq!(b2.state, BackupState::Succeeded, "{:?}", b2.error);
    assert!(b2.bytes_added.unwrap() < 1 << 20, "an unchanged site's backup adds little: {b2:?}");

    let list = e.svc.list_backups(&ann, id).await.unwrap();
    assert_eq!(list.iter().map(|b| b.id).collect::<Vec<_>>(), [b2.id, b1.id], "newest first");
    let o = e.svc.backups_overview(&ann, id).await.unwrap();
    assert_eq!(o.last_success.map(|b| b.id), Some(b2.id));
    assert!(o.repository_on_node_disk, "the default repository is a folder on the node");

    // In the repository: two snapshots of the site, tagged; the base once.
    let r = repo(&data);
    let tag = |s: String| Tag::parse(s).unwrap();
    let site = r.snapshots(&SnapshotFilter::tagged([tag(format!("site-{id}"))])).await.unwrap();
    assert_eq!(site.len(), 2);
    assert!(site.iter().any(|s| s.tags.contains(&format!("backup-{}", b1.id)) && s.tags.contains(&"base-image-test-build".to_owned())));
    let base = r.snapshots(&SnapshotFilter::tagged([tag("base-image-test-build".into()), tag("kind-base".into())])).await.unwrap();
    assert_eq!(base.len(), 1, "the base is stored once");
    let pw = std::fs::metadata(data.join("backups/password")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&pw.permissions()) & 0o777, 0o600);

    let events = e.svc.events(&ann, id, 0).await.unwrap();
    assert!(events.iter().any(|ev| ev.message.starts_with("Backed up: ")), "{events:?}");
}

#[tokio::test]
async fn a_failed_backup_is_told_and_leaves_the_site_as_it_was_and_rows_outlive_their_site() {
    if !restic_installed("a_failed_backup_is_told_and_leaves_the_site_as_it_was_and_rows_outlive_their_site") {
        return;
    }
    let (e, data) = env().await;
    let ann = e.user("ann").await;
    let id = powered_off_site(&e, &data, &ann, "ann").await;
    // A crash left a backup `running`, and its staging folder: the next backup fails it and
    // removes the folder.
    let row = e.svc.store().require(id).await.unwrap();
    let stale = e.svc.store().insert_backup(&row, ann.user_id, false, BackupTrigger::Manual).await.unwrap();
    let stale_dir = data.join("backups/staging").join(stale.id.to_string());
    std::fs::create_dir_all(&stale_dir).unwrap();
    // The disk is not a qcow2 overlay on a base any more: the capture refuses it.
    std::fs::write(e.svc.vm().vm_dir(id).join("disk.qcow2"), b"not a qcow2").unwrap();
    let b = e.svc.back_up(&ann, id, false).await.unwrap();
    let b = finished(&e, &ann, id, &b).await;
    assert_eq!(b.state, BackupState::Failed);
    assert!(b.error.as_deref().is_some_and(|m| !m.is_empty()));
    let v = e.settled(&ann, id).await;
    assert_eq!((v.state, v.operation), (HostingState::Stopped, None), "the site is as it was");
    assert!(e.svc.events(&ann, id, 0).await.unwrap().iter().any(|ev| ev.message.starts_with("Backup failed: ")));
    let stale = e.svc.get_backup(&ann, id, stale.id).await.unwrap();
    assert_eq!((stale.state, stale.error.as_deref()), (BackupState::Failed, Some("the service stopped while it ran")));
    assert!(!stale_dir.exists(), "a crashed backup's staging folder is removed");

    // The site deleted: its backup rows stay, listed for the owner by slug.
    e.svc.action(&ann, id, Operation::Delete).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while e.svc.wait_settled(&ann, id, Duration::from_secs(1)).await.ok().flatten().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the site is deleted");
    }
    let rows = e.svc.store().backups_of_user(ann.user_id).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.hosting_id.is_none() && r.slug == "ann"), "{rows:?}");
}
