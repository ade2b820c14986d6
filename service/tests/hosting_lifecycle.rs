//! The hosting lifecycle in the shared test environment (`support`: libvirt's test driver, a
//! real nginx, a real database). Failure injection fails each provisioning step in turn and
//! checks that nothing is left behind (omicron's `action_failure_can_unwind`).
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use service::accounts::Actor;
use service::db::entity::{hosting_event, port_lease};
use service::hosting::{CreateHosting, EventKind, EventStatus, HostingService, HostingState, Operation, Step};
use service::proxy::Proxy;
use service::vm::{VmManager, VmState};
use service::Error;

mod support;
use support::{Env, env, env_with};

async fn settle(e: &Env, a: &Actor, id: i32) -> Option<service::hosting::HostingView> {
    e.svc.wait_settled(a, id, Duration::from_secs(60)).await.unwrap()
}

/// Nothing of hosting `id` remains: no domain, no disk folder, no nginx file, no port lease.
async fn assert_clean_slate(e: &Env, id: i32) {
    let domains = e.svc.vm().list_domains().await.unwrap();
    assert!(!domains.iter().any(|(d, _)| *d == id), "domain of hosting {id} left behind: {domains:?}");
    let dir = e.svc.vm().vm_dir(id);
    assert!(!dir.exists(), "VM folder {} left behind", dir.display());
    let site = e.svc.proxy().site_file(id);
    assert!(!site.exists(), "nginx file {} left behind", site.display());
    assert!(!e.svc.proxy().list_routes().await.unwrap().contains(&id));
    let leases = port_lease::Entity::find()
        .filter(port_lease::Column::HostingId.eq(id))
        .all(&e.db.conn())
        .await
        .unwrap();
    assert!(leases.is_empty(), "ports still leased: {leases:?}");
}

/// The steps named by hosting `id`'s events of `kind` with `status`, in the order they happened.
async fn steps_with(e: &Env, id: i32, kind: EventKind, status: EventStatus) -> Vec<Step> {
    use sea_orm::QueryOrder;
    hosting_event::Entity::find()
        .filter(hosting_event::Column::HostingId.eq(id))
        .filter(hosting_event::Column::Kind.eq(kind))
        .filter(hosting_event::Column::Status.eq(status))
        .order_by_asc(hosting_event::Column::Id)
        .all(&e.db.conn())
        .await
        .unwrap()
        .into_iter()
        .filter_map(|ev| ev.step)
        .collect()
}

/// The steps of a cold create, in order.
fn cold_steps() -> Vec<Step> {
    HostingService::create_steps(service::hosting::CreateKind::Cold)
}

fn with_slug(slug: &str) -> CreateHosting {
    CreateHosting { slug: Some(slug.into()), ..Default::default() }
}

/// A new hosting of `a`'s with the defaults, once it is running.
async fn running(e: &Env, a: &Actor) -> service::hosting::HostingView {
    let h = e.svc.create(a, CreateHosting::default()).await.unwrap();
    let v = settle(e, a, h.id).await.unwrap();
    assert_eq!(v.state, HostingState::Running, "reason: {:?}", v.state_reason);
    v
}

#[tokio::test]
async fn create_goes_through_every_step_to_running_and_publishes_the_route() {
    let e = env().await;
    let alice = e.user("alice").await;
    let h = e.svc.create(&alice, CreateHosting::default()).await.unwrap();
    assert_eq!(h.slug, "alice", "the slug defaults to the username");
    assert!(matches!(h.state, HostingState::Queued | HostingState::Provisioning));

    let h = settle(&e, &alice, h.id).await.unwrap();
    assert_eq!(h.state, HostingState::Running, "reason: {:?}", h.state_reason);
    assert!(h.ssh_port.is_some() && h.http_port.is_some());
    assert!(h.ssh_command.as_deref().unwrap().starts_with(&format!("ssh -p {} ubuntu@", h.ssh_port.unwrap())));
    assert!(e.svc.proxy().site_file(h.id).exists());
    let domains = e.svc.vm().list_domains().await.unwrap();
    assert!(domains.contains(&(h.id, VmState::Running)), "{domains:?}");

    assert_eq!(steps_with(&e, h.id, EventKind::Step, EventStatus::Succeeded).await, cold_steps(), "every step succeeded, in order");
}

#[tokio::test]
async fn each_failing_step_is_rolled_back_and_leaves_nothing_behind() {
    let e = env_with(|c| c.max_hostings_per_user = 20).await;
    let bob = e.user("bob").await;
    let steps = cold_steps();
    for (i, step) in steps.iter().copied().enumerate() {
        e.svc.faults().fail_at(Some(step));
        let h = e.svc.create(&bob, with_slug(&format!("fail-{i}"))).await.unwrap();
        let h = settle(&e, &bob, h.id).await.unwrap();
        assert_eq!(h.state, HostingState::Failed, "step {step:?}");
        let reason = h.state_reason.unwrap();
        assert!(reason.contains(step.label()), "reason names the step: {reason}");
        assert!(reason.contains("removed"), "reason says it was rolled back: {reason}");
        assert!(h.ssh_port.is_none() && h.http_port.is_none());
        assert_clean_slate(&e, h.id).await;

        // Each finished step was undone, in reverse order.
        let mut expected = steps[..i].to_vec();
        expected.reverse();
        assert_eq!(steps_with(&e, h.id, EventKind::Undo, EventStatus::Undone).await, expected, "undo order after failing {step:?}");
    }
    // The failed hostings can be deleted, which removes their rows.
    for h in e.svc.list(&bob).await.unwrap() {
        e.svc.action(&bob, h.id, Operation::Delete).await.unwrap();
        assert!(settle(&e, &bob, h.id).await.is_none());
    }
    assert!(e.svc.list(&bob).await.unwrap().is_empty());
}

#[tokio::test]
async fn nginx_refusing_the_site_config_rolls_back_and_keeps_other_sites() {
    let e = env().await;
    let [carol, dave] = e.users(["carol", "dave"]).await;
    let ok = running(&e, &dave).await;

    e.svc.proxy().inject_invalid_config(true);
    let h = e.svc.create(&carol, CreateHosting::default()).await.unwrap();
    let h = settle(&e, &carol, h.id).await.unwrap();
    e.svc.proxy().inject_invalid_config(false);
    assert_eq!(h.state, HostingState::Failed);
    assert!(h.state_reason.as_deref().unwrap().contains(Step::AddRoute.label()));
    assert_clean_slate(&e, h.id).await;
    assert!(e.svc.proxy().site_file(ok.id).exists(), "the other site's route survived");
}

#[tokio::test]
async fn a_failed_route_never_shows_another_tenants_nginx_lines() {
    let e = env().await;
    let [erin, frank] = e.users(["erin", "frank"]).await;
    let theirs = running(&e, &frank).await;
    // frank's site file got broken on disk (by hand, a full disk...): nginx -t names it.
    let file = e.svc.proxy().site_file(theirs.id);
    let before = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{before}\nfrank_secret_directive on;\n")).unwrap();
    let h = e.svc.create(&erin, with_slug("erin-site")).await.unwrap();
    let h = settle(&e, &erin, h.id).await.unwrap();
    std::fs::write(&file, before).unwrap();
    assert_eq!(h.state, HostingState::Failed);
    let reason = h.state_reason.clone().unwrap();
    assert!(reason.contains(Step::AddRoute.label()) && reason.contains("nginx"), "{reason}");
    let events = e.svc.events(&erin, h.id, 0).await.unwrap();
    for text in events.iter().map(|ev| ev.message.as_str()).chain([reason.as_str()]) {
        for leak in ["frank", "frank_secret_directive", "[emerg]", ".conf"] {
            assert!(!text.contains(leak), "erin sees '{leak}': {text}");
        }
    }
}

#[tokio::test]
async fn nginx_logs_past_the_cap_are_rotated_and_nginx_writes_a_new_one() {
    let e = env().await;
    let proxy = e.svc.proxy();
    let logs = proxy.prefix().join("logs");
    let door = format!("http://{}/", e.svc.config().nginx_local_addr());
    let client = reqwest::Client::new();
    for _ in 0..5 {
        client.get(&door).send().await.unwrap();
    }
    // nginx writes a request's log line after the answer has gone out: wait until the
    // last one is in (under load it came after the size was read, and the test failed).
    let len = || std::fs::metadata(logs.join("access.log")).map(|m| m.len()).unwrap_or(0);
    let mut size = len();
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let now = len();
        if now == size && std::fs::read_to_string(logs.join("access.log")).unwrap().lines().count() >= 5 {
            break;
        }
        size = now;
    }
    assert!(size > 100, "requests were logged: {size}");
    assert!(proxy.rotate_logs(size * 10).await.unwrap().is_empty(), "under the cap: nothing rotated");
    assert!(proxy.rotate_logs(100).await.unwrap().contains(&"access.log"));
    assert_eq!(std::fs::metadata(logs.join("access.log.1")).unwrap().len(), size, "the old log is kept once");
    // nginx reopened: the next request goes to a fresh access.log, not the renamed file.
    let mut fresh = 0;
    for _ in 0..50 {
        client.get(&door).send().await.unwrap();
        fresh = std::fs::metadata(logs.join("access.log")).map(|m| m.len()).unwrap_or(0);
        if fresh > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fresh > 0 && fresh < size, "a new, small access.log: {fresh}");
    // Each worker reopens on its own after the signal (a loaded machine showed one request go
    // to the old file first): once they all have, nothing more goes to the old one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let old_len = || std::fs::metadata(logs.join("access.log.1")).unwrap().len();
    let (old_before, fresh_before) = (old_len(), len());
    for _ in 0..5 {
        client.get(&door).send().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(old_len(), old_before, "nothing more went to the old one");
    assert!(len() > fresh_before, "the new access.log takes the requests");
}

#[tokio::test]
async fn the_dashboards_own_host_labels_are_neither_usernames_nor_site_names() {
    let e = env_with(|c| {
        c.public_host = "dash.host.example".into();
        c.base_domain = "sites.example".into();
    })
    .await;
    // Host labels every dashboard keeps (www, mail, static, ...) are refused at sign-up.
    for name in ["www", "mail", "static", "pkg", "admin", "localhost"] {
        let err = e
            .accounts
            .register(service::accounts::NewUser {
                email: format!("{name}@example.com"),
                username: name.into(),
                password: "correct horse battery".into(),
            })
            .await
            .unwrap_err();
        assert!(matches!(&err, Error::Validation { field: "username", message } if message.contains("reserved")), "{name}: {err:?}");
    }
    // This server's own labels cannot be site names, and a user of that name gets another.
    let dash = e.user("dash").await;
    for slug in ["dash", "sites"] {
        let err = e.svc.create(&dash, with_slug(slug)).await.unwrap_err();
        assert!(matches!(&err, Error::Conflict { field: Some("slug"), message } if message.contains("own host name")), "{slug}: {err:?}");
    }
    let h = e.svc.create(&dash, CreateHosting::default()).await.unwrap();
    assert_eq!(h.slug, "dash-2");
}

#[tokio::test]
async fn a_vm_that_never_answers_is_rolled_back_with_the_reason() {
    let e = env().await;
    e.svc.faults().set_skip_ready_probe(false); // nothing listens on the forwarded ports
    let erin = e.user("erin").await;
    let h = e.svc.create(&erin, CreateHosting::default()).await.unwrap();
    let h = settle(&e, &erin, h.id).await.unwrap();
    assert_eq!(h.state, HostingState::Failed);
    let reason = h.state_reason.unwrap();
    assert!(reason.contains(Step::WaitReady.label()), "{reason}");
    assert_clean_slate(&e, h.id).await;
}

#[tokio::test]
async fn stop_start_restart_and_delete_follow_the_vm() {
    let e = env().await;
    let fay = e.user("fay").await;
    let h = running(&e, &fay).await;

    // One operation at a time: while the stop is in flight, a restart is refused as busy.
    e.svc.faults().set_op_delay(Duration::from_millis(800));
    let v = e.svc.action(&fay, h.id, Operation::Stop).await.unwrap();
    assert_eq!(v.operation, Some(Operation::Stop));
    let busy = e.svc.action(&fay, h.id, Operation::Restart).await;
    assert!(matches!(busy, Err(Error::Busy(_))), "{busy:?}");
    e.svc.faults().set_op_delay(Duration::ZERO);
    let v = settle(&e, &fay, h.id).await.unwrap();
    assert_eq!(v.state, HostingState::Stopped);
    assert_eq!(e.svc.vm().state(h.id).await.unwrap(), VmState::ShutOff);
    // Stopping a stopped one is refused with the reason; starting it works.
    let again = e.svc.action(&fay, h.id, Operation::Stop).await;
    assert!(matches!(again, Err(Error::Conflict { .. })), "{again:?}");
    e.svc.action(&fay, h.id, Operation::Start).await.unwrap();
    assert_eq!(settle(&e, &fay, h.id).await.unwrap().state, HostingState::Running);
    assert_eq!(e.svc.vm().state(h.id).await.unwrap(), VmState::Running);
    e.svc.action(&fay, h.id, Operation::Restart).await.unwrap();
    assert_eq!(settle(&e, &fay, h.id).await.unwrap().state, HostingState::Running);

    e.svc.action(&fay, h.id, Operation::Delete).await.unwrap();
    assert!(settle(&e, &fay, h.id).await.is_none(), "the row is gone");
    assert_clean_slate(&e, h.id).await;
    // The audit trail outlives the hosting.
    let evs = e.svc.events(&fay, h.id, 0).await.unwrap();
    assert!(evs.iter().any(|ev| ev.status == EventStatus::Deleted));
}

#[tokio::test]
async fn another_user_can_neither_see_nor_touch_a_hosting() {
    let e = env().await;
    let [gus, mallory] = e.users(["gus", "mallory"]).await;
    let h = running(&e, &gus).await;

    assert!(matches!(e.svc.get(&mallory, h.id).await, Err(Error::NotFound(_))));
    assert!(matches!(e.svc.events(&mallory, h.id, 0).await, Err(Error::NotFound(_))));
    assert!(matches!(e.svc.stats_history(&mallory, h.id).await, Err(Error::NotFound(_))));
    assert!(matches!(e.svc.console(&mallory, h.id, 10).await, Err(Error::NotFound(_))));
    for op in [Operation::Stop, Operation::Restart, Operation::Delete] {
        assert!(matches!(e.svc.action(&mallory, h.id, op).await, Err(Error::NotFound(_))));
    }
    assert!(e.svc.list(&mallory).await.unwrap().is_empty());
    assert!(matches!(e.svc.list_all(&mallory).await, Err(Error::Forbidden)));
    assert_eq!(e.svc.get(&gus, h.id).await.unwrap().state, HostingState::Running, "untouched");
}

#[tokio::test]
async fn bad_requests_get_specific_errors_and_store_nothing() {
    let e = env_with(|c| c.max_hostings_per_user = 1).await;
    let [hal, ivy] = e.users(["hal", "ivy"]).await;
    let bad_slug = e.svc.create(&hal, with_slug("Bad Slug!")).await;
    assert!(matches!(bad_slug, Err(Error::Validation { field: "slug", .. })), "{bad_slug:?}");
    let reserved = e.svc.create(&hal, with_slug("admin")).await;
    assert!(matches!(reserved, Err(Error::Validation { field: "slug", .. })), "{reserved:?}");
    let squat = e.svc.create(&hal, with_slug("ivy")).await;
    assert!(matches!(squat, Err(Error::Conflict { field: Some("slug"), .. })), "{squat:?}");
    let plan = e.svc.create(&hal, CreateHosting { plan: Some("huge".into()), ..Default::default() }).await;
    assert!(matches!(plan, Err(Error::Validation { field: "plan", .. })), "{plan:?}");
    let key = e
        .svc
        .create(&hal, CreateHosting { public_keys: vec!["ssh-rsa not-a-key".into()], ..Default::default() })
        .await;
    assert!(matches!(key, Err(Error::Validation { .. })), "{key:?}");
    let other_key = e.svc.create(&hal, CreateHosting { ssh_key_ids: vec![424242], ..Default::default() }).await;
    assert!(matches!(other_key, Err(Error::NotFound(_))), "{other_key:?}");
    assert!(e.svc.list(&hal).await.unwrap().is_empty(), "no failed request stored a row");

    let first = e.svc.create(&hal, CreateHosting::default()).await.unwrap();
    let taken = e.svc.create(&ivy, with_slug("hal")).await;
    assert!(matches!(taken, Err(Error::Conflict { field: Some("slug"), .. })), "{taken:?}");
    let over = e.svc.create(&hal, with_slug("second")).await;
    assert!(matches!(over, Err(Error::QuotaExceeded(_))), "{over:?}");
    assert_eq!(e.svc.list(&hal).await.unwrap().len(), 1);
    settle(&e, &hal, first.id).await;
}

#[tokio::test]
async fn reconciliation_requeues_interrupted_creates_and_removes_orphans() {
    let e = env().await;
    let joan = e.user("joan").await;
    let h = running(&e, &joan).await;

    // Pretend the service died in the middle of provisioning: the row says provisioning and
    // the VM exists. An orphan domain and folder exist for an id with no row at all.
    e.svc.store().pretend_abandoned(h.id, HostingState::Provisioning, Some(Operation::Create)).await.unwrap();
    let orphan = service::vm::VmSpec { hosting_id: 9999, vcpus: 1, memory_mib: 128, disk_gib: 1, http_port: 1, ssh_port: 2, priority: Default::default() };
    e.svc.vm().create_disk(&orphan).await.unwrap();
    e.svc.vm().define(&orphan).await.unwrap();

    let report = e.svc.reconcile().await.unwrap();
    assert_eq!(report.requeued, vec![h.id]);
    assert!(report.orphan_domains.contains(&9999), "{report:?}");
    assert!(!e.svc.vm().vm_dir(9999).exists());
    assert!(!e.svc.vm().list_domains().await.unwrap().iter().any(|(id, _)| *id == 9999));

    let v = settle(&e, &joan, h.id).await.unwrap();
    assert_eq!(v.state, HostingState::Running, "the interrupted create was finished: {:?}", v.state_reason);
    let domains = e.svc.vm().list_domains().await.unwrap();
    assert_eq!(domains.iter().filter(|(id, _)| *id == h.id).count(), 1);
}

/// Fails each step of `steps` in turn (with every undo run twice when `twice`), creating a
/// hosting each time with `make` (which may first make a spare), and checks the clean slate.
async fn fail_each_step(e: &Env, who: &Actor, steps: &[Step], tag: &str, warm: bool) {
    e.svc.faults().set_undo_twice(true);
    for (i, step) in steps.iter().copied().enumerate() {
        if warm {
            assert!(e.svc.fill_pool_once().await.unwrap(), "a spare was made");
        }
        e.svc.faults().fail_at(Some(step));
        let h = e.svc.create(who, with_slug(&format!("{tag}-{i}"))).await.unwrap();
        let h = settle(e, who, h.id).await.unwrap();
        assert_eq!(h.state, HostingState::Failed, "step {step:?}");
        let reason = h.state_reason.unwrap();
        assert!(reason.contains(step.label()) && reason.contains("removed"), "{reason}");
        assert_clean_slate(e, h.id).await;
        if warm {
            let how = steps_with(e, h.id, EventKind::Step, EventStatus::Started).await;
            assert_eq!(how, steps[..=i].to_vec(), "a warm create ran the warm order up to the failing step");
        }
    }
    e.svc.faults().set_undo_twice(false);
}

#[tokio::test]
async fn every_undo_run_twice_still_leaves_nothing_behind_cold_and_warm() {
    // omicron's action_failure_can_unwind_idempotently: each step fails in turn, and every
    // undo of the rollback runs twice.
    let e = env_with(|c| c.max_hostings_per_user = 40).await;
    let kim = e.user("kim").await;
    fail_each_step(&e, &kim, &cold_steps(), "cold", false).await;
    assert_eq!(e.svc.spares_ready().await.unwrap(), 0);

    let e = env_with(|c| {
        c.max_hostings_per_user = 40;
        c.pool_size = 1;
    })
    .await;
    let lee = e.user("lee").await;
    fail_each_step(&e, &lee, &HostingService::create_steps(service::hosting::CreateKind::Warm), "warm", true).await;
    assert_eq!(e.svc.spares_ready().await.unwrap(), 0, "each failed claim used its spare up");
    // And a warm create that succeeds is live, from a spare.
    assert!(e.svc.fill_pool_once().await.unwrap());
    let h = running(&e, &lee).await;
    let started = steps_with(&e, h.id, EventKind::Step, EventStatus::Succeeded).await;
    assert_eq!(started, HostingService::create_steps(service::hosting::CreateKind::Warm));
    assert_eq!(h.created_as, Some(service::hosting::CreateKind::Warm), "the view says how its VM was made");
}

#[tokio::test]
async fn with_the_warm_pool_on_the_first_person_to_sign_up_is_an_administrator() {
    let e = env_with(|c| c.pool_size = 2).await;
    assert!(e.svc.fill_pool_once().await.unwrap());
    assert!(e.svc.fill_pool_once().await.unwrap());
    assert_eq!(e.svc.spares_ready().await.unwrap(), 2);
    let [first, second] = e.users(["first", "second"]).await;
    assert!(first.is_admin, "the first account is an administrator");
    assert!(!second.is_admin);
    // Spares are nobody's: not listed for anyone, not even the administrator's own list.
    assert!(e.svc.list(&first).await.unwrap().is_empty());
    assert!(e.svc.list_all(&first).await.unwrap().is_empty());
}

/// A second app instance on the same database, libvirt and nginx (a replica).
async fn replica(e: &Env) -> HostingService {
    let mut cfg = e.svc.config().clone();
    cfg.instance_id = "replica".into();
    let cfg = Arc::new(cfg);
    let vm = VmManager::connect(&cfg).await.unwrap();
    let svc = HostingService::new(e.db.conn(), cfg.clone(), vm, Proxy::new(&cfg), e.accounts.clone()).await.unwrap();
    svc.faults().set_skip_ready_probe(true);
    svc
}

#[tokio::test]
async fn two_app_instances_on_one_database_run_a_raced_action_once() {
    let e = env().await;
    let b = replica(&e).await;
    let max = e.user("max").await;
    let h = running(&e, &max).await;
    assert_eq!(b.node_id(), e.svc.node_id(), "both manage the same node");

    // Both instances are asked to stop the same hosting at the same moment.
    for svc in [&e.svc, &b] {
        svc.faults().set_op_delay(Duration::from_millis(1500));
    }
    let (ra, rb) = tokio::join!(e.svc.action(&max, h.id, Operation::Stop), b.action(&max, h.id, Operation::Stop));
    let (won, lost) = match (&ra, &rb) {
        (Ok(_), Err(err)) | (Err(err), Ok(_)) => ((), err),
        other => panic!("exactly one instance must run the stop: {other:?}"),
    };
    let _ = won;
    assert!(matches!(lost, Error::Busy(_)), "the other is told it is busy (409): {lost:?}");
    // While the winner holds the hosting, neither instance's reconciliation touches it.
    for svc in [&b, &e.svc] {
        let rep = svc.reconcile().await.unwrap();
        let touched = [
            &rep.requeued,
            &rep.deletes_finished,
            &rep.ops_settled,
            &rep.states_corrected,
            &rep.failed_scrubbed,
            &rep.routes_restored,
            &rep.orphan_domains,
            &rep.orphan_dirs,
            &rep.orphan_routes,
            &rep.orphan_leases,
        ];
        assert!(touched.iter().all(|ids| !ids.contains(&h.id)), "reconciliation left the leased hosting alone: {rep:?}");
        let now = svc.get(&max, h.id).await.unwrap();
        assert_eq!(now.operation, Some(Operation::Stop), "still the winner's stop");
    }
    for svc in [&e.svc, &b] {
        svc.faults().set_op_delay(Duration::ZERO);
    }
    let v = settle(&e, &max, h.id).await.unwrap();
    assert_eq!(v.state, HostingState::Stopped);
    assert_eq!(e.svc.vm().state(h.id).await.unwrap(), VmState::ShutOff);
    // Settled, the hosting takes the next operation from either instance.
    b.action(&max, h.id, Operation::Start).await.unwrap();
    assert_eq!(settle(&e, &max, h.id).await.unwrap().state, HostingState::Running);
}

#[tokio::test]
async fn a_quota_holds_when_two_instances_create_at_once() {
    let e = env_with(|c| c.max_hostings_per_user = 1).await;
    let b = replica(&e).await;
    let ned = e.user("ned").await;
    let (ra, rb) = tokio::join!(
        e.svc.create(&ned, with_slug("ned-one")),
        b.create(&ned, with_slug("ned-two"))
    );
    let oks = [ra.is_ok(), rb.is_ok()].iter().filter(|x| **x).count();
    assert_eq!(oks, 1, "one create, one refusal: {ra:?} {rb:?}");
    assert!(matches!(ra.as_ref().err().or(rb.as_ref().err()), Some(Error::QuotaExceeded(_))));
    let h = ra.or(rb).unwrap();
    settle(&e, &ned, h.id).await;
    assert_eq!(e.svc.list(&ned).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_create_past_the_nodes_memory_is_refused_with_what_is_committed() {
    // 1024 MiB x 1.5 = 1536 MiB: a medium (512) and a large (1024) fit, nothing more.
    let e = env_with(|c| {
        c.node_memory_mib = Some(1024);
        c.memory_overcommit = 1.5;
        c.max_hostings_per_user = 10;
    })
    .await;
    let [ann, bob] = e.users(["ann", "bob"]).await;
    let plan = |p: &str, slug: &str| CreateHosting { plan: Some(p.into()), slug: Some(slug.into()), ..Default::default() };
    e.svc.create(&ann, plan("medium", "ann-one")).await.unwrap();
    e.svc.create(&bob, plan("large", "bob-one")).await.unwrap();
    let err = e.svc.create(&ann, plan("small", "ann-two")).await.unwrap_err();
    assert_eq!(err.code(), "node_full");
    let msg = err.to_string();
    assert!(msg.contains("1536 MiB of memory is committed") && msg.contains("the limit is 1536 MiB"), "{msg}");
    assert!(!err.is_internal(), "the user is told why");
    assert_eq!(e.svc.list(&ann).await.unwrap().len(), 1, "nothing was stored");
    // The admin page shows the same numbers.
    let admin = Actor { is_admin: true, ..ann.clone() };
    let node = e.svc.node_info(&admin).await.unwrap();
    assert_eq!((node.memory_committed_mib, node.memory_limit_mib), (1536, 1536));
    assert_eq!(node.disk_committed_gib, 8 + 20);
}

#[tokio::test]
async fn the_nodes_disk_limit_holds_when_two_instances_create_at_once() {
    // 30 GiB x 1.0: one large (20 GiB) fits, two do not, whichever instance asks.
    let e = env_with(|c| {
        c.node_disk_gib = Some(30);
        c.disk_overcommit = 1.0;
    })
    .await;
    let b = replica(&e).await;
    let [ann, bob] = e.users(["ann", "bob"]).await;
    let large = |slug: &str| CreateHosting { plan: Some("large".into()), slug: Some(slug.into()), ..Default::default() };
    let (ra, rb) = tokio::join!(e.svc.create(&ann, large("ann-big")), b.create(&bob, large("bob-big")));
    let oks = [ra.is_ok(), rb.is_ok()].iter().filter(|x| **x).count();
    assert_eq!(oks, 1, "one create, one refusal: {ra:?} {rb:?}");
    let err = ra.as_ref().err().or(rb.as_ref().err()).unwrap();
    assert!(matches!(err, Error::NodeFull(m) if m.contains("20 GiB of disk is committed and the limit is 30 GiB")), "{err:?}");
}

#[tokio::test]
async fn events_older_than_the_retention_are_pruned_but_each_hostings_last_word_is_kept() {
    use sea_orm::{ActiveModelTrait, PaginatorTrait, Set};
    let e = env_with(|c| c.event_retention_days = 30).await;
    let ann = e.user("ann").await;
    let day = 86_400_000i64;
    let now = service::db::now_ms();
    let add = |hosting_id: i32, age_days: i64, message: &str| hosting_event::ActiveModel {
        hosting_id: Set(hosting_id),
        user_id: Set(ann.user_id),
        kind: Set(EventKind::State),
        step: Set(None),
        status: Set(EventStatus::Succeeded),
        message: Set(message.into()),
        duration_ms: Set(None),
        created_at: Set(now - age_days * day),
        ..Default::default()
    };
    let db = e.db.conn();
    for (h, age, m) in [(9001, 90, "old"), (9001, 40, "old too"), (9001, 2, "recent"), (9002, 60, "old, but the last of 9002")] {
        add(h, age, m).insert(&db).await.unwrap();
    }
    assert_eq!(e.svc.prune_events().await.unwrap(), 2);
    let mut left: Vec<String> = hosting_event::Entity::find().all(&db).await.unwrap().into_iter().map(|ev| ev.message).collect();
    left.sort();
    assert_eq!(left, ["old, but the last of 9002", "recent"]);
    assert_eq!(e.svc.prune_events().await.unwrap(), 0, "nothing more to prune");
    let kept = env_with(|c| c.event_retention_days = 0).await;
    add(9003, 400, "kept forever").insert(&kept.db.conn()).await.unwrap();
    add(9003, 300, "kept forever").insert(&kept.db.conn()).await.unwrap();
    assert_eq!(kept.svc.prune_events().await.unwrap(), 0, "0 keeps everything");
    assert_eq!(hosting_event::Entity::find().count(&kept.db.conn()).await.unwrap(), 2);
}

#[tokio::test]
async fn spares_count_against_the_node_and_the_pool_stops_when_it_is_full() {
    // 600 MiB: two small (256) spares fit, a third does not; a claim adds nothing.
    let e = env_with(|c| {
        c.pool_size = 3;
        c.node_memory_mib = Some(600);
        c.memory_overcommit = 1.0;
    })
    .await;
    assert!(e.svc.fill_pool_once().await.unwrap());
    assert!(e.svc.fill_pool_once().await.unwrap());
    assert!(!e.svc.fill_pool_once().await.unwrap(), "no room for a third spare");
    assert_eq!(e.svc.spares_ready().await.unwrap(), 2);
    let pia = e.user("pia").await;
    let h = e.svc.create(&pia, CreateHosting::default()).await.unwrap();
    assert!(settle(&e, &pia, h.id).await.is_some(), "a claimed spare needs no more room");
    let err = e.svc.create(&pia, CreateHosting { plan: Some("medium".into()), slug: Some("pia-big".into()), ..Default::default() }).await.unwrap_err();
    assert!(matches!(&err, Error::NodeFull(m) if m.contains("512 MiB of memory is committed")), "spares included: {err:?}");
}

#[tokio::test]
async fn a_create_takes_the_fastest_spare_paused_before_saved() {
    use service::hosting::SpareTier;
    let e = env_with(|c| {
        c.pool_paused = 1;
        c.pool_size = 1;
    })
    .await;
    assert!(e.svc.fill_pool_once().await.unwrap());
    assert!(e.svc.fill_pool_once().await.unwrap());
    assert!(!e.svc.fill_pool_once().await.unwrap(), "both tiers are full");
    assert_eq!((e.svc.spares_in(SpareTier::Paused).await.unwrap(), e.svc.spares_in(SpareTier::Saved).await.unwrap()), (1, 1));
    let domains = e.svc.vm().list_domains().await.unwrap();
    assert!(domains.iter().any(|(_, s)| *s == VmState::Paused), "one waits paused in RAM: {domains:?}");

    let ola = e.user("ola").await;
    let first = running(&e, &ola).await;
    assert_eq!(e.svc.spares_in(SpareTier::Paused).await.unwrap(), 0, "the paused one went first");
    assert_eq!(e.svc.spares_in(SpareTier::Saved).await.unwrap(), 1);
    let second = e.svc.create(&ola, with_slug("ola-two")).await.unwrap();
    let second = settle(&e, &ola, second.id).await.unwrap();
    assert_eq!(second.state, HostingState::Running);
    assert_eq!(e.svc.spares_ready().await.unwrap(), 0);
    for h in [first.id, second.id] {
        assert_eq!(e.svc.vm().state(h).await.unwrap(), VmState::Running);
    }
}
