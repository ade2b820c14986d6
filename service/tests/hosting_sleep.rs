//! Sleep and wake on libvirt's test driver (a real nginx, a real database): the transitions,
//! who may ask, the idle check, "always on" and its limit, and what a visit to a site gets.
//! service/tests/real_vm.rs does the same with a real VM, SSH and crashes.
use std::time::Duration;

use service::Error;
use service::accounts::Actor;
use service::hosting::{ASLEEP, CreateHosting, HostingState, HostingView, Operation};
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

async fn act(e: &Env, a: &Actor, id: i32, op: Operation) -> HostingView {
    e.svc.action(a, id, op).await.unwrap();
    settle(e, a, id).await
}

/// Idle sites never sleep by themselves unless a test says so.
async fn env() -> Env {
    env_with(|c| {
        c.idle_sleep_secs = 0;
        c.max_hostings_per_user = 4;
    })
    .await
}

#[tokio::test]
async fn a_site_sleeps_and_wakes_by_hand_and_nobody_else_may_ask() {
    let e = env().await;
    let [ann, eve] = e.users(["ann", "eve"]).await;
    let h = site(&e, &ann, "ann").await;

    for op in [Operation::Sleep, Operation::Wake] {
        assert!(matches!(e.svc.action(&eve, h.id, op).await, Err(Error::NotFound(_))), "{op}: someone else's site is not found");
    }
    let v = act(&e, &ann, h.id, Operation::Sleep).await;
    assert_eq!((v.state, v.state_reason.as_deref()), (HostingState::Sleeping, Some(ASLEEP)));
    assert_eq!(e.svc.vm().state(h.id).await.unwrap(), VmState::ShutOff, "no VM runs");
    assert!(e.svc.vm().has_managed_save(h.id).await.unwrap(), "its memory is on disk");
    let node = e.svc.node_info(&ann).await.unwrap();
    assert_eq!((node.hostings_running, node.hostings_sleeping), (0, 1), "the admin page counts it asleep");
    let again = e.svc.action(&ann, h.id, Operation::Sleep).await;
    assert!(matches!(&again, Err(Error::Conflict { .. })), "{again:?}");
    assert!(again.unwrap_err().to_string().contains("sleeping"));

    let v = act(&e, &ann, h.id, Operation::Wake).await;
    assert_eq!(v.state, HostingState::Running, "{:?}", v.state_reason);
    assert_eq!(e.svc.vm().state(h.id).await.unwrap(), VmState::Running);
    assert!(matches!(e.svc.action(&ann, h.id, Operation::Wake).await, Err(Error::Conflict { .. })), "an awake site cannot wake");
}

#[tokio::test]
async fn visits_to_a_sleeping_site_wake_it_once_and_a_stopped_site_stays_down() {
    let e = env().await;
    let ann = e.user("ann").await;
    let h = site(&e, &ann, "ann").await;
    act(&e, &ann, h.id, Operation::Sleep).await;

    let visits = futures::future::join_all((0..5).map(|_| e.svc.visit(h.id, Duration::from_secs(30)))).await;
    let want = std::net::SocketAddr::new(e.svc.config().http_forward_bind, h.http_port.unwrap() as u16);
    for v in visits {
        assert_eq!(v.unwrap(), Some(want), "every held request goes on to the woken VM");
    }
    let v = settle(&e, &ann, h.id).await;
    assert_eq!(v.state, HostingState::Running);
    assert!(v.last_visit_at.is_some(), "the wake counts as a visit");
    let events = e.svc.events(&ann, h.id, 0).await.unwrap();
    assert_eq!(events.iter().filter(|ev| ev.message.starts_with("Waking up")).count(), 1, "five visits, one wake");

    // Stopped is down until its owner starts it: a visit does not start it.
    act(&e, &ann, h.id, Operation::Stop).await;
    assert_eq!(e.svc.visit(h.id, Duration::from_secs(5)).await.unwrap(), None);
    assert_eq!(settle(&e, &ann, h.id).await.state, HostingState::Stopped);
    assert_eq!(e.svc.visit(9_999_999, Duration::from_secs(1)).await.unwrap(), None, "no such site");
}

#[tokio::test]
async fn an_idle_site_goes_to_sleep_and_a_visited_or_always_on_one_stays_up() {
    let e = env_with(|c| {
        c.idle_sleep_secs = 1;
        c.max_hostings_per_user = 4;
    })
    .await;
    let ann = e.user("ann").await;
    let idle = site(&e, &ann, "idle").await;
    let visited = site(&e, &ann, "visited").await;
    let kept = site(&e, &ann, "kept").await;
    let over_https = site(&e, &ann, "over-https").await;
    assert!(e.svc.set_always_on(&ann, kept.id, true).await.unwrap().always_on);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A request through nginx appends to the site's visits log (over HTTPS: its own file).
    std::fs::write(e.svc.proxy().visits_file(visited.id), "1796170000.000\n").unwrap();
    let tls_log = e.svc.proxy().tls_visits_file(over_https.id);
    std::fs::create_dir_all(tls_log.parent().unwrap()).unwrap();
    std::fs::write(&tls_log, "1796170000.000\n").unwrap();

    assert_eq!(e.svc.sleep_idle_sites().await.unwrap(), 1);
    assert_eq!(settle(&e, &ann, over_https.id).await.state, HostingState::Running, "a visit over HTTPS counts");
    assert_eq!(settle(&e, &ann, idle.id).await.state, HostingState::Sleeping);
    assert_eq!(settle(&e, &ann, visited.id).await.state, HostingState::Running);
    assert_eq!(settle(&e, &ann, kept.id).await.state, HostingState::Running);
    let events = e.svc.events(&ann, idle.id, 0).await.unwrap();
    assert!(events.iter().any(|ev| ev.message.contains("without visits")), "the owner is told why");
}

#[tokio::test]
async fn always_on_is_limited_per_user_and_the_limit_holds_for_two_at_once() {
    let e = env().await;
    let [admin, bob] = e.users(["ada", "bob"]).await;
    assert!(admin.is_admin && !bob.is_admin);
    let b1 = site(&e, &bob, "bob-one").await;
    let b2 = site(&e, &bob, "bob-two").await;

    let (r1, r2) = tokio::join!(e.svc.set_always_on(&bob, b1.id, true), e.svc.set_always_on(&bob, b2.id, true));
    assert_eq!([r1.is_ok(), r2.is_ok()].iter().filter(|ok| **ok).count(), 1, "one of two at once: {r1:?} {r2:?}");
    let refused = if r1.is_err() { r1 } else { r2 };
    match refused {
        Err(Error::Conflict { field: Some("always_on"), message }) => assert!(message.contains("at most 1"), "{message}"),
        other => panic!("{other:?}"),
    }
    let (on, off) = if settle(&e, &bob, b1.id).await.always_on { (b1.id, b2.id) } else { (b2.id, b1.id) };
    assert!(!e.svc.set_always_on(&bob, on, false).await.unwrap().always_on);
    assert!(e.svc.set_always_on(&bob, off, true).await.unwrap().always_on, "room again");
    assert!(matches!(e.svc.set_always_on(&admin, on, true).await, Ok(v) if v.always_on), "an admin has no limit");
    assert!(matches!(e.svc.set_always_on(&Actor { user_id: admin.user_id + 100, is_admin: false }, on, true).await, Err(Error::NotFound(_))));
}

#[tokio::test]
async fn a_sleeping_site_can_be_stopped_powered_off_started_and_deleted() {
    let e = env().await;
    let ann = e.user("ann").await;
    let h = site(&e, &ann, "ann").await;

    act(&e, &ann, h.id, Operation::Sleep).await;
    let v = act(&e, &ann, h.id, Operation::Stop).await;
    assert_eq!(v.state, HostingState::Stopped, "stopped: no visit wakes it");
    assert!(e.svc.vm().has_managed_save(h.id).await.unwrap(), "still saved: start restores it");
    assert_eq!(act(&e, &ann, h.id, Operation::Start).await.state, HostingState::Running);

    act(&e, &ann, h.id, Operation::Sleep).await;
    let v = act(&e, &ann, h.id, Operation::PowerOff).await;
    assert_eq!(v.state, HostingState::Stopped);
    assert!(!e.svc.vm().has_managed_save(h.id).await.unwrap(), "powered off: the next start boots");
    assert_eq!(act(&e, &ann, h.id, Operation::Start).await.state, HostingState::Running);

    act(&e, &ann, h.id, Operation::Sleep).await;
    e.svc.action(&ann, h.id, Operation::Delete).await.unwrap();
    assert!(e.svc.wait_settled(&ann, h.id, Duration::from_secs(60)).await.unwrap().is_none(), "deleted while asleep");
    assert!(!e.svc.vm().list_domains().await.unwrap().iter().any(|(d, _)| *d == h.id));
}

/// A sleeping site holds no memory: it counts only its disk against the node, so more sites fit
/// than the memory would hold awake. A wake takes its memory back: when none is left, the
/// awake site with the oldest visit is put to sleep first (not an always-on one); when no site
/// can give way the wake is refused with the reason, and the node is never overcommitted.
#[tokio::test]
async fn sleeping_sites_count_only_disk_and_a_wake_makes_room_or_is_refused() {
    let e = env_with(|c| {
        c.idle_sleep_secs = 0;
        c.max_hostings_per_user = 10;
        // Room for two small (256 MiB) sites awake.
        c.node_memory_mib = Some(512);
        c.memory_overcommit = 1.0;
    })
    .await;
    let [ada, ann] = e.users(["ada", "ann"]).await;
    assert!(ada.is_admin && !ann.is_admin);
    let a = site(&e, &ann, "ann-a").await;
    let b = site(&e, &ann, "ann-b").await;
    let full = e.svc.create(&ann, CreateHosting { slug: Some("ann-c".into()), ..Default::default() }).await;
    assert!(matches!(&full, Err(Error::NodeFull(_))), "two awake sites fill the memory: {full:?}");

    act(&e, &ann, a.id, Operation::Sleep).await;
    let c = site(&e, &ann, "ann-c").await;
    let node = e.svc.node_info(&ada).await.unwrap();
    assert_eq!((node.memory_committed_mib, node.memory_limit_mib), (512, 512), "the sleeping site's memory is not counted");

    // Waking a: the memory is full, so b (the awake site whose last visit is oldest) sleeps first.
    let v = act(&e, &ann, a.id, Operation::Wake).await;
    assert_eq!(v.state, HostingState::Running, "{:?}", v.state_reason);
    let vb = settle(&e, &ann, b.id).await;
    assert_eq!(vb.state, HostingState::Sleeping, "b made room");
    assert_eq!(vb.state_reason.as_deref(), Some(ASLEEP), "and wakes on its next visit");
    let events = e.svc.events(&ann, b.id, 0).await.unwrap();
    assert!(events.iter().any(|ev| ev.message.contains("make room")), "its owner is told why");
    assert_eq!(settle(&e, &ann, c.id).await.state, HostingState::Running, "one site was enough");
    assert_eq!(e.svc.vm().state(b.id).await.unwrap(), VmState::ShutOff);
    assert_eq!(e.svc.node_info(&ada).await.unwrap().memory_committed_mib, 512);

    // Both awake sites always on: nothing may give way, so b's wake is refused, and it sleeps on.
    for id in [a.id, c.id] {
        assert!(e.svc.set_always_on(&ada, id, true).await.unwrap().always_on);
    }
    match e.svc.action(&ann, b.id, Operation::Wake).await {
        Err(Error::NodeFull(why)) => assert!(why.contains("memory is full"), "{why}"),
        other => panic!("a wake with no room must be refused: {other:?}"),
    }
    assert_eq!(e.svc.visit(b.id, Duration::from_secs(5)).await.unwrap(), None, "a visitor gets the site-down page, not a wait");
    assert_eq!(settle(&e, &ann, b.id).await.state, HostingState::Sleeping);
    let events = e.svc.events(&ann, b.id, 0).await.unwrap();
    assert!(events.iter().any(|ev| ev.message.starts_with("Could not wake up") && ev.message.contains("memory is full")), "the owner sees why");
    for id in [a.id, c.id] {
        assert_eq!(settle(&e, &ann, id).await.state, HostingState::Running, "always on stays awake");
    }
    assert_eq!(e.svc.node_info(&ada).await.unwrap().memory_committed_mib, 512, "never overcommitted");

    // Room again (a stopped by hand): the wake goes through.
    act(&e, &ann, a.id, Operation::PowerOff).await;
    assert_eq!(e.svc.visit(b.id, Duration::from_secs(30)).await.unwrap(), None, "a powered-off site still counts its memory");
    e.svc.action(&ann, a.id, Operation::Delete).await.unwrap();
    assert!(e.svc.wait_settled(&ann, a.id, Duration::from_secs(60)).await.unwrap().is_none(), "deleted");
    assert!(e.svc.visit(b.id, Duration::from_secs(30)).await.unwrap().is_some(), "room after a delete: the visit wakes it");
    assert_eq!(settle(&e, &ann, b.id).await.state, HostingState::Running);
}
