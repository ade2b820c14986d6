//! Restoring backups on libvirt's test driver (a real database, nginx and restic repository
//! under the data dir): in place (the disk back as it was at the backup, its base restored
//! from the repository when it is gone from the node), the download (one standalone qcow2),
//! and the refusals: others' sites, a busy site, a backup that did not succeed, a full snapshot
//! quota, a failure after the disk swap (the site as it was). The site's disk is a real qcow2
//! overlay on a base; the test driver's domains run nothing, so sites are powered off.
//! service/tests/real_vm.rs restores real running sites.
//!
//! Without restic the tests say they are skipped (and fail when REQUIRE_RESTIC=1).
use std::path::PathBuf;
use std::time::Duration;

use service::Error;
use service::accounts::Actor;
use service::hosting::{HostingState, Operation};
use vmw_types::RestoreTarget;

mod support;
use support::backups::restic_installed;
use support::backups::{backed_up, holds, powered_off_site, qemu_img, qemu_io};
use support::{Env, env_with};

async fn env(snapshots_per_user: u32) -> (Env, PathBuf) {
    let e = env_with(|c| {
        c.idle_sleep_secs = 0;
        c.max_hostings_per_user = 4;
        c.snapshots_per_user = snapshots_per_user;
    })
    .await;
    let data = e.svc.config().data_dir.clone();
    (e, data)
}

async fn messages(e: &Env, a: &Actor, id: i32) -> Vec<String> {
    e.svc.events(a, id, 0).await.unwrap().into_iter().map(|ev| ev.message).collect()
}

#[tokio::test]
async fn a_backup_restored_in_place_brings_the_disk_back_even_when_its_base_left_the_node() {
    if !restic_installed("a_backup_restored_in_place_brings_the_disk_back_even_when_its_base_left_the_node") {
        return;
    }
    let (e, data) = env(5).await;
    let [ann, eve] = e.users(["ann", "eve"]).await;
    let id = powered_off_site(&e, &data, &ann, "ann").await;
    let b = backed_up(&e, &ann, id).await;
    let disk = e.svc.vm().vm_dir(id).join("disk.qcow2");

    // v2: the site's disk changed since the backup; its base gone from the node (a fresh data
    // dir keeps no image build of that name).
    assert!(qemu_io(&disk, "write -P 0x77 1M 8M").contains("wrote"));
    assert!(holds(&disk, 0x77, "1M", "8M"));
    let base_dir = data.join("images/test-build");
    std::fs::remove_dir_all(&base_dir).unwrap();

    assert!(matches!(e.svc.restore_backup(&eve, id, b.id, RestoreTarget::InPlace).await, Err(Error::NotFound(_))), "others do not see it");
    let t = std::time::Instant::now();
    let v = e.svc.restore_backup(&ann, id, b.id, RestoreTarget::InPlace).await.unwrap();
    assert_eq!(v.operation, Some(Operation::RestoreBackup));
    assert!(matches!(e.svc.back_up(&ann, id, false).await, Err(Error::Busy(_))), "one operation at a time");
    let v = e.settled(&ann, id).await;
    eprintln!("restore in place (powered off, base restored from the repository): {:.2} s", t.elapsed().as_secs_f64());
    assert_eq!((v.state, v.state_reason.clone()), (HostingState::Stopped, None), "a stopped site stays stopped");
    assert!(base_dir.join("base.qcow2").is_file(), "the base is back where this node keeps image builds");
    assert!(holds(&disk, 0x5a, "1M", "8M"), "the disk is the backup's: {}", qemu_io(&disk, "read -P 0x5a 1M 8M"));
    assert!(holds(&disk, 0x11, "0", "1M"), "and reads through to its restored base");
    assert!(!data.join("backups/restore").join(format!("{}-{id}", b.id)).exists(), "the scratch folder is removed");
    let msgs = messages(&e, &ann, id).await;
    assert!(msgs.iter().any(|m| m.starts_with(&format!("Backup {} restored", b.id))), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("powered off (no memory to snapshot)")), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("Restoring the base image from the repository")), "{msgs:?}");

    // The download: one qcow2 with no backing file, both the base's and the overlay's data in it.
    let d = e.svc.download_backup(&ann, id, b.id).await.unwrap();
    assert_eq!(d.filename, format!("ann-backup-{}.qcow2", b.id));
    assert_eq!(d.len, std::fs::metadata(&d.path).unwrap().len());
    let info = qemu_img(&["info", "--output=json"], &[&d.path]);
    assert!(!info.contains("backing-filename"), "standalone: {info}");
    qemu_img(&["check", "-q"], &[&d.path]);
    assert!(holds(&d.path, 0x11, "0", "1M") && holds(&d.path, 0x5a, "1M", "8M"));
    let dir = d.path.parent().unwrap().to_owned();
    assert!(matches!(e.svc.download_backup(&eve, id, b.id).await, Err(Error::NotFound(_))));
    drop(d);
    assert!(!dir.exists(), "the download's folder goes with it");
}

#[tokio::test]
async fn restores_are_refused_for_others_busy_sites_unfinished_backups_and_a_full_snapshot_quota() {
    if !restic_installed("restores_are_refused_for_others_busy_sites_unfinished_backups_and_a_full_snapshot_quota") {
        return;
    }
    let (e, data) = env(0).await;
    let [ann, eve] = e.users(["ann", "eve"]).await;
    let id = powered_off_site(&e, &data, &ann, "ann").await;
    let other = powered_off_site(&e, &data, &ann, "ann2").await;
    let b = backed_up(&e, &ann, id).await;

    // Another site's backup, a backup that is not there: 404.
    assert!(matches!(e.svc.restore_backup(&ann, other, b.id, RestoreTarget::InPlace).await, Err(Error::NotFound(_))));
    assert!(matches!(e.svc.restore_backup(&ann, id, b.id + 1000, RestoreTarget::InPlace).await, Err(Error::NotFound(_))));
    assert!(matches!(e.svc.download_backup(&ann, other, b.id).await, Err(Error::NotFound(_))));
    assert!(matches!(e.svc.restore_backup(&eve, id, b.id, RestoreTarget::InPlace).await, Err(Error::NotFound(_))));

    // A backup that has not succeeded (a crash left it running): 409.
    let row = e.svc.store().require(id).await.unwrap();
    let stale = e.svc.store().insert_backup(&row, ann.user_id, false, vmw_types::BackupTrigger::Manual).await.unwrap();
    assert!(matches!(e.svc.restore_backup(&ann, id, stale.id, RestoreTarget::InPlace).await, Err(Error::Conflict { .. })));

    // Busy: a backup runs.
    let running = e.svc.back_up(&ann, id, false).await.unwrap();
    assert!(matches!(e.svc.restore_backup(&ann, id, b.id, RestoreTarget::InPlace).await, Err(Error::Busy(_))));
    let _ = running;
    e.settled(&ann, id).await;

    // A running site is snapshotted first: with no room for a snapshot, 409 before anything.
    let run = e.running_site(&ann, "ann3").await;
    let r = e.svc.restore_backup(&ann, run.id, b.id, RestoreTarget::InPlace).await;
    assert!(matches!(r, Err(Error::NotFound(_))), "a backup of another site");
    // A succeeded row of the running site's (the test driver cannot back a running site up:
    // the refusal comes before the repository is read).
    let row = e.svc.store().require(run.id).await.unwrap();
    let rb = e.svc.store().insert_backup(&row, ann.user_id, false, vmw_types::BackupTrigger::Manual).await.unwrap();
    let done = service::hosting::store::BackupDone { snapshot_id: "0123456789abcdef".into(), bytes_added: 1, bytes_total: 1 };
    e.svc.store().backup_succeeded(rb.id, &done).await.unwrap();
    match e.svc.restore_backup(&ann, run.id, rb.id, RestoreTarget::InPlace).await {
        Err(Error::Conflict { field: Some("snapshots"), message }) => assert!(message.contains("snapshot"), "{message}"),
        other => panic!("a full snapshot quota is said before starting: {other:?}"),
    }
    let v = e.settled(&ann, run.id).await;
    assert_eq!((v.state, v.operation), (HostingState::Running, None), "nothing was started");

    // On another node, with one node only: 409, said plainly (backup_restore_node.rs moves sites).
    let t = RestoreTarget::Node { node_id: None };
    match e.svc.restore_backup(&ann, id, b.id, t).await {
        Err(Error::Conflict { field: Some("node_id" | "target"), message }) => assert!(message.contains("node"), "{message}"),
        other => panic!("no other node to move to: {other:?}"),
    }
}

#[tokio::test]
async fn a_restore_that_fails_after_the_disk_swap_leaves_the_site_as_it_was() {
    if !restic_installed("a_restore_that_fails_after_the_disk_swap_leaves_the_site_as_it_was") {
        return;
    }
    let (e, data) = env(5).await;
    let ann = e.user("ann").await;
    let id = powered_off_site(&e, &data, &ann, "ann").await;
    let b = backed_up(&e, &ann, id).await;
    let disk = e.svc.vm().vm_dir(id).join("disk.qcow2");
    assert!(qemu_io(&disk, "write -P 0x77 1M 8M").contains("wrote"));

    e.svc.faults().set_fail_snapshot(true);
    e.svc.restore_backup(&ann, id, b.id, RestoreTarget::InPlace).await.unwrap();
    let v = e.settled(&ann, id).await;
    assert_eq!(v.state, HostingState::Stopped);
    let reason = v.state_reason.unwrap_or_default();
    assert!(reason.starts_with(&format!("Restoring backup {} failed", b.id)) && reason.contains("as it was"), "{reason}");
    assert!(holds(&disk, 0x77, "1M", "8M"), "the site's own disk is back");
    assert!(!e.svc.vm().vm_dir(id).join("disk.before.qcow2").exists() && !e.svc.vm().vm_dir(id).join("disk.restore.qcow2").exists());

    // And the next restore works.
    e.svc.restore_backup(&ann, id, b.id, RestoreTarget::InPlace).await.unwrap();
    let v = e.settled(&ann, id).await;
    assert_eq!((v.state, v.state_reason), (HostingState::Stopped, None));
    assert!(holds(&disk, 0x5a, "1M", "8M"));
}

async fn gone(e: &Env, a: &Actor, id: i32) -> bool {
    matches!(e.svc.wait_settled(a, id, Duration::from_secs(60)).await, Ok(None) | Err(Error::NotFound(_)))
}

#[tokio::test]
async fn a_backup_restored_as_a_new_site_is_a_site_of_the_owner_with_the_backups_disk_and_the_source_untouched() {
    if !restic_installed("a_backup_restored_as_a_new_site_is_a_site_of_the_owner_with_the_backups_disk_and_the_source_untouched") {
        return;
    }
    let (e, data) = env(5).await;
    let [ann, eve] = e.users(["ann", "eve"]).await;
    let id = powered_off_site(&e, &data, &ann, "ann").await;
    let b = backed_up(&e, &ann, id).await;
    let src_disk = e.svc.vm().vm_dir(id).join("disk.qcow2");
    assert!(qemu_io(&src_disk, "write -P 0x77 1M 8M").contains("wrote"));
    let ns = |slug: Option<&str>| RestoreTarget::NewSite { slug: slug.map(str::to_owned) };

    // Names are checked like a create's.
    assert!(matches!(e.svc.restore_backup(&eve, id, b.id, ns(None)).await, Err(Error::NotFound(_))));
    assert!(matches!(e.svc.restore_backup(&ann, id, b.id, ns(Some("Bad Name!"))).await, Err(Error::Validation { field: "slug", .. })));
    assert!(matches!(e.svc.restore_backup(&ann, id, b.id, ns(Some("ann"))).await, Err(Error::Conflict { field: Some("slug"), .. })));

    // A failure on the way: everything made is undone, the row too; the source is untouched.
    e.svc.faults().fail_at(Some(service::hosting::Step::StartVm));
    let failed = e.svc.restore_backup(&ann, id, b.id, ns(Some("ann-try"))).await.unwrap();
    assert!(gone(&e, &ann, failed.id).await, "the failed restore's row is removed");
    assert!(!e.svc.vm().vm_dir(failed.id).exists(), "and its files");
    let msgs = messages(&e, &ann, id).await;
    assert!(msgs.iter().any(|m| m.contains("as the new site 'ann-try' failed") && m.contains("untouched")), "{msgs:?}");

    let t = std::time::Instant::now();
    let new = e.svc.restore_backup(&ann, id, b.id, ns(None)).await.unwrap();
    assert_eq!(new.slug, "ann-restored");
    assert_ne!(new.id, id);
    let v = e.settled(&ann, new.id).await;
    eprintln!("restore as a new site (test driver): {:.2} s", t.elapsed().as_secs_f64());
    assert_eq!(v.state, HostingState::Running, "{:?}", v.state_reason);
    assert_ne!((v.http_port, v.ssh_port), (None, None));
    let src = e.settled(&ann, id).await;
    assert_ne!(v.http_port, src.http_port, "its own ports");
    let disk = e.svc.vm().vm_dir(new.id).join("disk.qcow2");
    assert!(holds(&disk, 0x5a, "1M", "8M"), "the new site's disk is the backup's");
    assert!(holds(&src_disk, 0x77, "1M", "8M"), "the source keeps its own");
    assert_eq!(src.state, HostingState::Stopped);
    assert_eq!(e.svc.list(&ann).await.unwrap().len(), 2, "the owner's sites: the source and the restored one");

    // The next default name.
    let again = e.svc.restore_backup(&ann, id, b.id, ns(None)).await.unwrap();
    assert_eq!(again.slug, "ann-restored-2");
    e.settled(&ann, again.id).await;
}
