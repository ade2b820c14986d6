//! User snapshots on libvirt's test driver (a real database, a real nginx): take, list,
//! restore and delete; who may; names; the per-user quota (also when asked at once); failures
//! that leave the site as it was; a hosting's delete; reconciliation after a crash.
//! service/tests/real_vm.rs restores a real site's file from a snapshot through nginx.
use std::time::Duration;

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use service::Error;
use service::accounts::Actor;
use service::db::entity::snapshot;
use service::hosting::{CreateHosting, HostingState, HostingView, Operation, SnapshotState, SnapshotView};
use service::vm::VmState;

mod support;
use support::{Env, env_with};

async fn settle(e: &Env, a: &Actor, id: i32) -> HostingView {
    e.svc.wait_settled(a, id, Duration::from_secs(60)).await.unwrap().expect("the hosting exists")
}

async fn site(e: &Env, a: &Actor, slug: &str) -> HostingView {
    let h = e.svc.create(a, CreateHosting { slug: Some(slug.into()), ..Default::default() }).await.unwrap();
    let v = settle(e, a, h.id).await;
    assert_eq!(v.state, HostingState::Running, "{:?}", v.state_reason);
    v
}

async fn snap(e: &Env, a: &Actor, id: i32, name: &str) -> SnapshotView {
    let s = e.svc.take_snapshot(a, id, name).await.unwrap();
    assert_eq!(s.state, SnapshotState::Taking);
    let v = settle(e, a, id).await;
    assert_eq!(v.state, HostingState::Running, "{:?}", v.state_reason);
    e.svc.list_snapshots(a, id).await.unwrap().into_iter().find(|x| x.id == s.id).expect("the snapshot is listed")
}

async fn env() -> Env {
    env_with(|c| {
        c.idle_sleep_secs = 0;
        c.max_hostings_per_user = 4;
    })
    .await
}

fn disk(e: &Env, id: i32) -> std::path::PathBuf {
    e.svc.vm().vm_dir(id).join("disk.qcow2")
}

#[tokio::test]
async fn a_snapshot_is_taken_listed_restored_and_deleted_by_its_owner_only() {
    let e = env().await;
    let [ann, eve] = e.users(["ann", "eve"]).await;
    let h = site(&e, &ann, "ann").await;
    std::fs::write(disk(&e, h.id), b"disk as it was").unwrap();

    assert!(matches!(e.svc.take_snapshot(&eve, h.id, "mine").await, Err(Error::NotFound(_))));
    assert!(matches!(e.svc.list_snapshots(&eve, h.id).await, Err(Error::NotFound(_))));
    let s = snap(&e, &ann, h.id, "before the upgrade").await;
    assert_eq!((s.name.as_str(), s.state), ("before the upgrade", SnapshotState::Ready));
    assert!(s.size_bytes > 0);
    assert!(e.svc.vm().snapshot_complete(h.id, s.id), "memory and disk are on disk");
    assert_eq!(e.svc.vm().state(h.id).await.unwrap(), VmState::Running, "the site runs again");
    assert!(matches!(e.svc.restore_snapshot(&eve, h.id, s.id).await, Err(Error::NotFound(_))));
    assert!(matches!(e.svc.delete_snapshot(&eve, h.id, s.id).await, Err(Error::NotFound(_))));
    assert!(matches!(e.svc.restore_snapshot(&ann, h.id, s.id + 100).await, Err(Error::NotFound(_))));

    std::fs::write(disk(&e, h.id), b"disk changed since").unwrap();
    e.svc.restore_snapshot(&ann, h.id, s.id).await.unwrap();
    let v = settle(&e, &ann, h.id).await;
    assert_eq!((v.state, v.state_reason), (HostingState::Running, None));
    assert_eq!(std::fs::read(disk(&e, h.id)).unwrap(), b"disk as it was", "the snapshot's disk is the site's again");
    assert_eq!(e.svc.vm().state(h.id).await.unwrap(), VmState::Running);
    assert!(!e.svc.vm().has_managed_save(h.id).await.unwrap(), "no saved state of the site before the restore is left");
    let events = e.svc.events(&ann, h.id, 0).await.unwrap();
    assert!(events.iter().any(|ev| ev.message.starts_with("Snapshot 'before the upgrade' restored")), "{events:?}");

    // A snapshot restores again and again; a stopped site is restored running too.
    e.svc.action(&ann, h.id, Operation::Stop).await.unwrap();
    assert_eq!(settle(&e, &ann, h.id).await.state, HostingState::Stopped);
    e.svc.restore_snapshot(&ann, h.id, s.id).await.unwrap();
    assert_eq!(settle(&e, &ann, h.id).await.state, HostingState::Running);

    e.svc.delete_snapshot(&ann, h.id, s.id).await.unwrap();
    assert!(e.svc.list_snapshots(&ann, h.id).await.unwrap().is_empty());
    assert!(!e.svc.vm().snapshot_dir(h.id, s.id).exists(), "its files are gone");
    assert!(matches!(e.svc.delete_snapshot(&ann, h.id, s.id).await, Err(Error::NotFound(_))));
}

#[tokio::test]
async fn names_are_checked_and_a_busy_or_stopped_site_is_refused() {
    let e = env_with(|c| {
        c.idle_sleep_secs = 0;
        c.max_hostings_per_user = 4;
    })
    .await;
    let ann = e.user("ann").await;
    let h = site(&e, &ann, "ann").await;
    for bad in ["", "   ", "../../etc", "a\nb", &"x".repeat(65), "<b>"] {
        let r = e.svc.take_snapshot(&ann, h.id, bad).await;
        assert!(matches!(r, Err(Error::Validation { field: "name", .. })), "{bad:?}: {r:?}");
    }
    snap(&e, &ann, h.id, "one").await;
    assert!(matches!(e.svc.take_snapshot(&ann, h.id, " one ").await, Err(Error::Conflict { field: Some("name"), .. })), "names are unique per site");

    e.svc.faults().set_op_delay(Duration::from_millis(500));
    e.svc.action(&ann, h.id, Operation::Stop).await.unwrap();
    assert!(matches!(e.svc.take_snapshot(&ann, h.id, "two").await, Err(Error::Busy(_))), "busy: 409");
    let s = e.svc.list_snapshots(&ann, h.id).await.unwrap()[0].id;
    assert!(matches!(e.svc.restore_snapshot(&ann, h.id, s).await, Err(Error::Busy(_))));
    assert!(matches!(e.svc.delete_snapshot(&ann, h.id, s).await, Err(Error::Busy(_))));
    assert_eq!(settle(&e, &ann, h.id).await.state, HostingState::Stopped);
    let r = e.svc.take_snapshot(&ann, h.id, "one").await;
    assert!(matches!(&r, Err(Error::Conflict { field: Some("name"), .. })), "{r:?}");
    let v = e.svc.get(&ann, h.id).await.unwrap();
    assert_eq!((v.state, v.operation), (HostingState::Stopped, None), "a refused snapshot leaves a stopped site stopped");
    e.svc.faults().set_op_delay(Duration::ZERO);
    // Stopped keeps the memory saved (a snapshot copies it); powered off, there is none.
    e.svc.action(&ann, h.id, Operation::Start).await.unwrap();
    assert_eq!(settle(&e, &ann, h.id).await.state, HostingState::Running);
    e.svc.action(&ann, h.id, Operation::PowerOff).await.unwrap();
    assert_eq!(settle(&e, &ann, h.id).await.state, HostingState::Stopped);
    let r = e.svc.take_snapshot(&ann, h.id, "two").await;
    assert!(
        matches!(&r, Err(Error::Conflict { field: Some("state"), message }) if message.contains("powered off")),
        "a powered-off site has no memory to take: {r:?}"
    );
    assert_eq!(e.svc.list_snapshots(&ann, h.id).await.unwrap().len(), 1, "refusals leave no row");
}

#[tokio::test]
async fn a_visit_while_a_snapshot_is_taken_waits_for_the_site_instead_of_the_down_page() {
    let e = env().await;
    let ann = e.user("ann").await;
    let h = site(&e, &ann, "ann").await;
    e.svc.faults().set_op_delay(Duration::from_millis(700));
    e.svc.take_snapshot(&ann, h.id, "one").await.unwrap();
    assert_eq!(e.svc.get(&ann, h.id).await.unwrap().operation, Some(Operation::Snapshot));
    let vm = e.svc.visit(h.id, Duration::from_secs(30)).await.unwrap();
    let now = e.svc.get(&ann, h.id).await.unwrap();
    assert_eq!((now.state, now.operation), (HostingState::Running, None), "the visit got an answer once the snapshot was done");
    assert_eq!(vm.map(|a| a.port() as i32), h.http_port, "and was sent to the site");
    assert_eq!(e.svc.list_snapshots(&ann, h.id).await.unwrap()[0].state, SnapshotState::Ready);
}

#[tokio::test]
async fn the_quota_on_count_and_disk_holds_when_asked_at_once() {
    let e = env_with(|c| {
        c.idle_sleep_secs = 0;
        c.max_hostings_per_user = 4;
        c.snapshots_per_user = 2;
    })
    .await;
    let [ann, bob] = e.users(["ann", "bob"]).await;
    let mut ids = Vec::new();
    for slug in ["bob-1", "bob-2", "bob-3", "bob-4"] {
        ids.push(site(&e, &bob, slug).await.id);
    }
    let takes = futures::future::join_all(ids.iter().map(|id| e.svc.take_snapshot(&bob, *id, "s"))).await;
    let ok = takes.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 2, "{takes:?}");
    for r in takes.iter().filter(|r| r.is_err()) {
        assert!(matches!(r, Err(Error::QuotaExceeded(m)) if m.contains("at most 2")), "{r:?}");
    }
    for id in &ids {
        settle(&e, &bob, *id).await;
    }
    assert_eq!(e.svc.snapshot_count(bob.user_id).await.unwrap(), 2);
    // Another user's quota is their own.
    let a = site(&e, &ann, "ann").await;
    snap(&e, &ann, a.id, "mine").await;

    // Disk: a snapshot needs at least the plan's memory.
    let e = env_with(|c| {
        c.idle_sleep_secs = 0;
        c.snapshot_disk_per_user_mib = 1;
    })
    .await;
    let ann = e.user("ann").await;
    let h = site(&e, &ann, "ann").await;
    let r = e.svc.take_snapshot(&ann, h.id, "big").await;
    assert!(matches!(&r, Err(Error::QuotaExceeded(m)) if m.contains("1 MiB")), "{r:?}");
}

/// The estimate a snapshot is admitted with is the plan's memory and the disk as it was; the
/// disk can grow before it is copied. What the files really take is checked again once they are
/// written: over the quota, the snapshot is removed and the site keeps running, with the reason.
#[tokio::test]
async fn the_disk_quota_is_checked_again_against_what_the_snapshot_really_takes() {
    let e = env_with(|c| {
        c.idle_sleep_secs = 0;
        c.plans = vec![service::config::Plan { name: "small".into(), vcpus: 1, memory_mib: 16, disk_gib: 4 }];
        c.snapshot_disk_per_user_mib = 24;
    })
    .await;
    let ann = e.user("ann").await;
    let h = site(&e, &ann, "ann").await;
    // Within the quota: kept, with its real size.
    let small = snap(&e, &ann, h.id, "small").await;
    assert!(small.size_bytes > 0 && small.size_bytes < 1 << 20, "{small:?}");

    // Admitted on its estimate (16 MiB of memory and a tiny disk), then the disk grows to 32 MiB
    // before it is copied (sparse: the copy is what counts).
    e.svc.faults().set_op_delay(Duration::from_millis(700));
    e.svc.take_snapshot(&ann, h.id, "grown").await.expect("admitted on its estimate");
    std::fs::File::options().write(true).open(disk(&e, h.id)).unwrap().set_len(32 << 20).unwrap();
    let v = settle(&e, &ann, h.id).await;
    e.svc.faults().set_op_delay(Duration::ZERO);
    assert_eq!((v.state, v.state_reason), (HostingState::Running, None), "the site kept running, nothing wrong with it");
    let left = e.svc.list_snapshots(&ann, h.id).await.unwrap();
    assert_eq!(left.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["small"], "the over-quota snapshot is gone: {left:?}");
    let dirs = std::fs::read_dir(e.svc.vm().vm_dir(h.id).join("snapshots")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(dirs, 1, "and so are its files");
    let events = e.svc.events(&ann, h.id, 0).await.unwrap();
    assert!(events.iter().any(|ev| ev.message.contains("'grown' was not kept") && ev.message.contains("24 MiB")), "the owner is told why: {events:?}");
}

#[tokio::test]
async fn a_failed_snapshot_or_restore_leaves_the_site_as_it_was_with_the_reason() {
    let e = env().await;
    let ann = e.user("ann").await;
    let h = site(&e, &ann, "ann").await;
    std::fs::write(disk(&e, h.id), b"the site's disk").unwrap();

    e.svc.faults().set_fail_snapshot(true);
    e.svc.take_snapshot(&ann, h.id, "doomed").await.unwrap();
    let v = settle(&e, &ann, h.id).await;
    assert_eq!(v.state, HostingState::Running, "{:?}", v.state_reason);
    let reason = v.state_reason.unwrap_or_default();
    assert!(reason.contains("Snapshot 'doomed' failed") && reason.contains("injected"), "{reason}");
    assert_eq!(e.svc.vm().state(h.id).await.unwrap(), VmState::Running);
    assert!(e.svc.list_snapshots(&ann, h.id).await.unwrap().is_empty(), "no half snapshot is listed");
    assert!(e.svc.vm().snapshot_ids_on_disk(h.id).await.is_empty(), "nor left on disk");
    let events = e.svc.events(&ann, h.id, 0).await.unwrap();
    assert!(events.iter().any(|ev| ev.message.contains("Snapshot 'doomed' failed")));

    let s = snap(&e, &ann, h.id, "good").await;
    std::fs::write(disk(&e, h.id), b"changed since").unwrap();
    for (before, op) in [(HostingState::Running, None), (HostingState::Stopped, Some(Operation::Stop))] {
        if let Some(op) = op {
            e.svc.action(&ann, h.id, op).await.unwrap();
            assert_eq!(settle(&e, &ann, h.id).await.state, before);
        }
        e.svc.faults().set_fail_snapshot(true);
        e.svc.restore_snapshot(&ann, h.id, s.id).await.unwrap();
        let v = settle(&e, &ann, h.id).await;
        assert_eq!(v.state, before, "{:?}", v.state_reason);
        assert!(v.state_reason.unwrap_or_default().contains("the site is as it was"));
        assert_eq!(std::fs::read(disk(&e, h.id)).unwrap(), b"changed since", "{before}: its own disk is back");
        assert!(!e.svc.vm().has_previous_disk(h.id));
    }
    assert_eq!(e.svc.vm().state(h.id).await.unwrap(), VmState::ShutOff);
    assert!(e.svc.vm().has_managed_save(h.id).await.unwrap(), "the stopped site keeps its saved memory");

    // A snapshot of the stopped site (of its saved memory) that fails leaves it stopped.
    e.svc.faults().set_fail_snapshot(true);
    e.svc.take_snapshot(&ann, h.id, "stopped").await.unwrap();
    let v = settle(&e, &ann, h.id).await;
    assert_eq!(v.state, HostingState::Stopped, "{:?}", v.state_reason);
    let reason = v.state_reason.unwrap_or_default();
    assert!(reason.contains("Snapshot 'stopped' failed") && reason.contains("the site is as it was"), "{reason}");
    assert!(e.svc.vm().has_managed_save(h.id).await.unwrap(), "its saved memory is still there");
    assert_eq!(e.svc.list_snapshots(&ann, h.id).await.unwrap().iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["good"]);
    assert_eq!(e.svc.vm().snapshot_ids_on_disk(h.id).await, [s.id], "nothing of it left on disk");
}

#[tokio::test]
async fn deleting_a_hosting_deletes_its_snapshots() {
    let e = env().await;
    let ann = e.user("ann").await;
    let h = site(&e, &ann, "ann").await;
    let s = snap(&e, &ann, h.id, "one").await;
    e.svc.action(&ann, h.id, Operation::Delete).await.unwrap();
    assert!(e.svc.wait_settled(&ann, h.id, Duration::from_secs(60)).await.unwrap().is_none());
    assert_eq!(e.svc.snapshot_count(ann.user_id).await.unwrap(), 0, "the rows are gone");
    assert!(!e.svc.vm().snapshot_dir(h.id, s.id).exists(), "and the files");
}

#[tokio::test]
async fn reconciliation_settles_interrupted_snapshots_and_restores_and_stray_files() {
    let e = env().await;
    let ann = e.user("ann").await;
    let h = site(&e, &ann, "ann").await;
    let db = e.svc.store().db().clone();
    let vm = e.svc.vm();

    // A process that died between a snapshot's save and its restore: the VM is off, its
    // memory only in the snapshot, the row still `taking`.
    let s = snap(&e, &ann, h.id, "half").await;
    snapshot::Entity::update_many()
        .col_expr(snapshot::Column::State, Expr::value(SnapshotState::Taking))
        .filter(snapshot::Column::Id.eq(s.id))
        .exec(&db)
        .await
        .unwrap();
    vm.destroy(h.id).await.unwrap();
    e.svc.store().pretend_abandoned(h.id, HostingState::Running, Some(Operation::Snapshot)).await.unwrap();
    e.svc.reconcile().await.unwrap();
    let v = settle(&e, &ann, h.id).await;
    assert_eq!(v.state, HostingState::Running, "restored from the snapshot's memory: {:?}", v.state_reason);
    assert_eq!(vm.state(h.id).await.unwrap(), VmState::Running);
    assert!(e.svc.list_snapshots(&ann, h.id).await.unwrap().is_empty(), "the unfinished snapshot is removed");
    assert!(!vm.snapshot_dir(h.id, s.id).exists());

    // A restore that died with the site's disk set aside and the VM down: the disk goes back.
    let s = snap(&e, &ann, h.id, "whole").await;
    let dir = vm.vm_dir(h.id);
    std::fs::write(dir.join("disk.qcow2"), b"snapshot disk").unwrap();
    std::fs::write(dir.join("disk.before.qcow2"), b"own disk").unwrap();
    vm.destroy(h.id).await.unwrap();
    e.svc.store().pretend_abandoned(h.id, HostingState::Running, Some(Operation::RestoreSnapshot)).await.unwrap();
    e.svc.reconcile().await.unwrap();
    assert_eq!(settle(&e, &ann, h.id).await.state, HostingState::Stopped);
    assert_eq!(std::fs::read(dir.join("disk.qcow2")).unwrap(), b"own disk");
    assert!(!vm.has_previous_disk(h.id));

    // Files without a row go; a row whose files are gone goes (with an event).
    std::fs::create_dir_all(vm.snapshot_dir(h.id, 9999)).unwrap();
    std::fs::remove_file(vm.snapshot_dir(h.id, s.id).join("disk.qcow2")).unwrap();
    e.svc.reconcile().await.unwrap();
    assert!(!vm.snapshot_dir(h.id, 9999).exists());
    assert!(e.svc.list_snapshots(&ann, h.id).await.unwrap().is_empty());
    let events = e.svc.events(&ann, h.id, 0).await.unwrap();
    assert!(events.iter().any(|ev| ev.message == "Snapshot 'whole' lost its files and was removed"), "{events:?}");
}
