//! App replicas on one database (PostgreSQL when TEST_DATABASE_URL is set; on SQLite the one
//! process leads at once): one leader per node under an advisory lock, a successor when it
//! goes, events fanned out between replicas (LISTEN/NOTIFY), and the lease of a replica that
//! died taken over once it expires. The replicas here are two `HostingService`s in one test
//! process on one database, one data dir and libvirt's `test:///default` driver (one hypervisor
//! for the whole process, as two replicas on one host share one libvirt). `server/tests/replicas.rs`
//! runs two real processes.
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use service::accounts::Actor;
use service::db::entity::hosting;
use service::db::now_ms;
use service::hosting::{CreateHosting, EventKind, HostingService, HostingState, LiveEvent, Operation};
use service::leader::{Leadership, node_key};
use service::proxy::Proxy;
use service::vm::VmManager;

mod support;
use support::{Env, env_with};

async fn env() -> Env {
    env_with(|c| {
        c.reconcile_interval_secs = 1;
        c.idle_sleep_secs = 0;
    })
    .await
}

/// A second replica of `e`'s service: the same database, data dir, nginx and hypervisor, its
/// own instance id.
async fn replica(e: &Env, instance: &str) -> HostingService {
    let mut cfg = e.svc.config().clone();
    cfg.instance_id = instance.into();
    let cfg = Arc::new(cfg);
    let vm = VmManager::connect(&cfg).await.expect("libvirt test driver");
    let svc = HostingService::new(e.db.conn(), cfg.clone(), vm, Proxy::new(&cfg), e.accounts.clone()).await.unwrap();
    svc.faults().set_skip_ready_probe(true);
    svc
}

async fn until(what: &str, within: Duration, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn stop(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        t.abort();
    }
}

#[tokio::test]
async fn one_leader_per_node_and_a_successor_within_seconds_when_it_goes() {
    let e = env().await;
    let db = e.db.conn();
    let a = Leadership::campaign(&db, node_key(1), "a");
    assert!(a.settled(Duration::from_secs(5)).await, "the first campaign leads");
    if !e.db.is_postgres() {
        return; // SQLite: one process, it leads at once (above)
    }
    let b = Leadership::campaign(&db, node_key(1), "b");
    let other_node = Leadership::campaign(&db, node_key(2), "c");
    assert!(!b.settled(Duration::from_secs(5)).await, "one leader per node");
    assert!(other_node.settled(Duration::from_secs(5)).await, "another node's leader is another lock");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(a.is_leader() && !b.is_leader(), "the leader keeps leading, the other keeps waiting");
    let t = Instant::now();
    drop(a);
    until("b leads once a is gone", Duration::from_secs(5), async || b.is_leader()).await;
    println!("successor after {:?}", t.elapsed());
}

#[tokio::test]
async fn only_the_leader_runs_background_work_and_another_replica_follows_its_events() {
    let e = env().await;
    let [ann] = e.users(["ann"]).await;
    let a_tasks = e.svc.start_background().await.unwrap();
    assert!(e.svc.is_leader());
    if !e.db.is_postgres() {
        stop(a_tasks);
        return;
    }
    let b = replica(&e, "replica-b").await;
    let b_tasks = b.start_background().await.unwrap();
    assert!(!b.is_leader(), "one replica leads");

    // A create made through the leader, followed from the other replica's live events.
    let mut rx = b.subscribe();
    let h = e.svc.create(&ann, CreateHosting { slug: Some("ann".into()), ..Default::default() }).await.unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv()).await.expect("the create's events reach replica b").unwrap();
        if let LiveEvent::Event(ev) = ev {
            if ev.hosting_id == h.id {
                seen.push(ev.clone());
                if ev.kind == EventKind::State && ev.status == service::hosting::EventStatus::Running {
                    break;
                }
            }
        }
    }
    assert!(seen.len() >= 3, "queued, its steps and running: {seen:#?}");
    let stored = e.svc.events(&ann, h.id, 0).await.unwrap();
    assert_eq!(seen.iter().map(|e| e.id).collect::<Vec<_>>(), stored.iter().map(|e| e.id).collect::<Vec<_>>(), "every event, in order, with its stored id");

    // The leader goes: replica b takes over the background work within seconds.
    let t = Instant::now();
    stop(a_tasks);
    until("replica b leads", Duration::from_secs(8), async || b.is_leader()).await;
    println!("takeover after {:?}", t.elapsed());

    // And work b does is seen by the first one (now a follower listening again).
    let again = e.svc.start_background().await.unwrap();
    assert!(!e.svc.is_leader());
    let mut rx = e.svc.subscribe();
    b.action(&ann, h.id, Operation::Stop).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(LiveEvent::Event(ev)) = rx.recv().await {
                if ev.hosting_id == h.id && ev.kind == EventKind::State && ev.status == service::hosting::EventStatus::Stopped {
                    return ev;
                }
            }
        }
    })
    .await
    .expect("the stop done by b reaches a");
    assert!(got.message.contains("Stopped"), "{got:?}");
    stop(again);
    stop(b_tasks);
}

#[tokio::test]
async fn a_dead_replicas_lease_is_respected_until_it_expires_then_the_work_is_finished() {
    let e = env().await;
    if !e.db.is_postgres() {
        return; // needs two instance ids on one shared database
    }
    let [ann] = e.users(["ann"]).await;
    let h = e.svc.create(&ann, CreateHosting { slug: Some("ann".into()), ..Default::default() }).await.unwrap();
    let v = e.svc.wait_settled(&ann, h.id, Duration::from_secs(30)).await.unwrap().unwrap();
    assert_eq!(v.state, HostingState::Running);
    // A replica that died in the middle of this create: its lease runs 4 s more.
    let dead = "dead-replica:0123456789ab:1";
    hosting::Entity::update_many()
        .col_expr(hosting::Column::State, Expr::value(HostingState::Provisioning))
        .col_expr(hosting::Column::Operation, Expr::value(Some(Operation::Create)))
        .col_expr(hosting::Column::LeaseOwner, Expr::value(Some(dead.to_owned())))
        .col_expr(hosting::Column::LeaseUntil, Expr::value(Some(now_ms() + 4000)))
        .filter(hosting::Column::Id.eq(h.id))
        .exec(&e.db.conn())
        .await
        .unwrap();
    let tasks = e.svc.start_background().await.unwrap();
    assert!(e.svc.is_leader());
    // Reconciliation runs every second: the live lease keeps it off the row.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let row = e.svc.store().require(h.id).await.unwrap();
    assert_eq!((row.state, row.lease_owner.as_deref()), (HostingState::Provisioning, Some(dead)), "another replica's live lease is theirs");
    // Once it expires the leader takes the create over: cleaned up and made again, running.
    let owner = Actor { user_id: ann.user_id, is_admin: false };
    until("the abandoned create runs", Duration::from_secs(20), async || {
        let r = e.svc.store().require(h.id).await.unwrap();
        r.state == HostingState::Running && r.operation.is_none()
    })
    .await;
    let evs = e.svc.events(&owner, h.id, 0).await.unwrap();
    assert!(evs.iter().any(|e| e.message.contains("interrupted")), "the owner is told: {evs:#?}");
    assert_eq!(e.svc.store().require(h.id).await.unwrap().lease_owner, None, "no lease left behind");
    stop(tasks);
}
