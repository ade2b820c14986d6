//! More than one node, on libvirt's test driver: the node of the settings (`test:///default`)
//! and nodes added by URI (each a private test driver of its own, `test:///DIR/nodeN.xml`).
//! Adding validates and checks the node; placement takes the node with the most free capacity
//! that is healthy and not drained; ports never clash between nodes on one address; a node that
//! goes down shows its sites as unreachable and changes no row; a node is removed only empty.
mod support;

use std::time::Duration;

use service::Error;
use service::accounts::Actor;
use service::hosting::nodes::NewNode;
use service::hosting::{CreateHosting, HostingState, Operation};
use support::{Env, env_with};

const SETTLE: Duration = Duration::from_secs(30);

/// The node of the settings has 1024 MiB (no overcommit): room for four small (256 MiB) sites.
async fn small_home() -> Env {
    env_with(|c| {
        c.node_memory_mib = Some(1024);
        c.memory_overcommit = 1.0;
        c.node_disk_gib = Some(1000);
        c.max_hostings_per_user = 10;
    })
    .await
}

/// A node of its own private test driver (its own domains), on 127.0.0.1.
fn test_node(e: &Env, name: &str, memory_mib: u64) -> NewNode {
    let file = e.svc.config().data_dir.join(format!("{name}.xml"));
    std::fs::write(&file, "<node/>").unwrap();
    NewNode {
        name: name.into(),
        libvirt_uri: format!("test://{}", file.display()),
        address: "127.0.0.1".into(),
        memory_mib,
        disk_gib: 1000,
    }
}

async fn site(e: &Env, a: &Actor, slug: &str) -> service::hosting::HostingView {
    let h = e.svc.create(a, CreateHosting { slug: Some(slug.into()), ..Default::default() }).await.unwrap();
    e.svc.wait_settled(a, h.id, SETTLE).await.unwrap().unwrap()
}

#[tokio::test]
async fn sites_go_to_the_node_with_the_most_free_room_and_ports_never_clash_on_one_address() {
    let e = small_home().await;
    let [admin, ann] = e.users(["boss", "ann"]).await;
    let home = e.svc.node_id();
    let two = e.svc.add_node(&admin, test_node(&e, "two", 2048)).await.unwrap();
    assert!(two.health.connected && two.health.image_ok, "{two:?}");
    assert!(two.health.libvirt_version.is_some());
    assert_eq!(two.memory_limit_mib, 2048, "{two:?}");

    // Free memory (two, home) starts at (2048, 1024): each site goes to the node with more,
    // a tie to the older node.
    let mut placed = Vec::new();
    for i in 0..9 {
        let h = site(&e, &ann, &format!("site-{i}")).await;
        assert_eq!(h.state, HostingState::Running, "{h:?}");
        placed.push(h);
    }
    let (t, o) = (two.id, home);
    assert_eq!(placed.iter().map(|h| h.node_id).collect::<Vec<_>>(), vec![t, t, t, t, o, t, o, t, o]);
    let a = placed[0].clone();

    // Two nodes on one address: every forward port is different.
    let mut ports = std::collections::HashSet::new();
    for h in &placed {
        assert!(ports.insert(h.http_port.unwrap()), "http port {:?} twice", h.http_port);
        assert!(ports.insert(h.ssh_port.unwrap()), "ssh port {:?} twice", h.ssh_port);
    }

    // Each site's VM is on its own node's hypervisor, and nowhere else.
    let svc_two = e.svc.on(two.id).unwrap();
    let on_home: Vec<i32> = e.svc.vm().list_domains().await.unwrap().into_iter().map(|d| d.0).collect();
    let on_other: Vec<i32> = svc_two.vm().list_domains().await.unwrap().into_iter().map(|d| d.0).collect();
    for h in &placed {
        let (mine, other) = if h.node_id == home { (&on_home, &on_other) } else { (&on_other, &on_home) };
        assert!(mine.contains(&h.id) && !other.contains(&h.id), "site {} on node {}", h.id, h.node_id);
    }

    // The admin's view: both nodes, their sites, their commitments.
    let nodes = e.svc.nodes_info(&admin).await.unwrap();
    assert_eq!(nodes.len(), 2);
    let n2 = nodes.iter().find(|n| n.id == two.id).unwrap();
    assert_eq!(n2.sites.len(), 6);
    assert_eq!(n2.memory_committed_mib, 6 * 256);
    assert!(n2.sites.iter().any(|s| s.slug == "site-0"));

    // Operations go to the site's node: a stop and a start of a site on two.
    e.svc.action(&ann, a.id, Operation::Stop).await.unwrap();
    let h = e.svc.wait_settled(&ann, a.id, SETTLE).await.unwrap().unwrap();
    assert_eq!(h.state, HostingState::Stopped);
    e.svc.action(&ann, a.id, Operation::Start).await.unwrap();
    let h = e.svc.wait_settled(&ann, a.id, SETTLE).await.unwrap().unwrap();
    assert_eq!(h.state, HostingState::Running);

    // Reconciling every node keeps every site as it is (no node takes another's VMs for orphans).
    for svc in e.svc.node_services() {
        svc.reconcile().await.unwrap();
    }
    for h in &placed {
        let now = e.svc.get(&ann, h.id).await.unwrap();
        assert_eq!(now.state, HostingState::Running, "{now:?}");
    }
    assert_eq!(svc_two.vm().list_domains().await.unwrap().len(), 6);
}

#[tokio::test]
async fn a_drained_or_full_node_takes_no_new_site_and_is_removed_only_when_empty() {
    let e = small_home().await;
    let [admin, bob] = e.users(["boss", "bob"]).await;
    let two = e.svc.add_node(&admin, test_node(&e, "two", 4096)).await.unwrap();

    let drained = e.svc.set_node_drained(&admin, two.id, true).await.unwrap();
    assert!(drained.drained);
    let h = site(&e, &bob, "bob-home").await;
    assert_eq!(h.node_id, e.svc.node_id(), "a drained node takes no new site");
    e.svc.set_node_drained(&admin, two.id, false).await.unwrap();
    let h2 = site(&e, &bob, "bob-two").await;
    assert_eq!(h2.node_id, two.id);

    // Only when it is empty.
    let busy = e.svc.remove_node(&admin, two.id).await;
    assert!(matches!(busy, Err(Error::Conflict { .. })), "{busy:?}");
    assert_eq!(e.svc.nodes_info(&admin).await.unwrap().len(), 2);
    e.svc.action(&bob, h2.id, Operation::Delete).await.unwrap();
    assert!(e.svc.wait_settled(&bob, h2.id, SETTLE).await.unwrap().is_none());
    e.svc.remove_node(&admin, two.id).await.unwrap();
    let left = e.svc.nodes_info(&admin).await.unwrap();
    assert_eq!(left.iter().map(|n| n.id).collect::<Vec<_>>(), vec![e.svc.node_id()]);
    // The node of the settings is never removed.
    let own = e.svc.remove_node(&admin, e.svc.node_id()).await;
    assert!(matches!(own, Err(Error::Conflict { .. })), "{own:?}");

    // Full everywhere: refused with node_full, nothing stored.
    let [carl] = e.users(["carl"]).await;
    for i in 0..3 {
        site(&e, &carl, &format!("carl-{i}")).await;
    }
    let full = e.svc.create(&carl, CreateHosting { slug: Some("one-too-many".into()), ..Default::default() }).await;
    assert!(matches!(full, Err(Error::NodeFull(_))), "{full:?}");
    assert_eq!(e.svc.list(&carl).await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_node_that_goes_down_shows_its_sites_unreachable_and_changes_nothing() {
    let e = small_home().await;
    let [admin, dan] = e.users(["boss", "dan"]).await;
    let two = e.svc.add_node(&admin, test_node(&e, "two", 4096)).await.unwrap();
    let h = site(&e, &dan, "dan-site").await;
    assert_eq!(h.node_id, two.id);
    assert!(!h.unreachable);

    e.svc.faults().set_node_down(two.id, true);
    e.svc.check_nodes().await;
    let v = e.svc.get(&dan, h.id).await.unwrap();
    assert!(v.unreachable, "{v:?}");
    assert_eq!((v.state, v.operation), (HostingState::Running, None), "not failed: {v:?}");
    let node = e.svc.nodes_info(&admin).await.unwrap().into_iter().find(|n| n.id == two.id).unwrap();
    assert!(!node.health.connected);
    assert!(node.health.last_error.as_deref().unwrap_or("").contains("unreachable"), "{:?}", node.health);
    // Work on its sites is refused (503), not attempted and failed; new sites go elsewhere.
    let stop = e.svc.action(&dan, h.id, Operation::Stop).await;
    assert!(matches!(stop, Err(Error::HostingUnavailable(_))), "{stop:?}");
    let other = site(&e, &dan, "dan-other").await;
    assert_eq!(other.node_id, e.svc.node_id());
    assert_eq!(e.svc.get(&dan, h.id).await.unwrap().state, HostingState::Running);

    // Back up: reachable, unchanged, and it works again.
    e.svc.faults().set_node_down(two.id, false);
    e.svc.check_nodes().await;
    let v = e.svc.get(&dan, h.id).await.unwrap();
    assert!(!v.unreachable && v.state == HostingState::Running, "{v:?}");
    e.svc.action(&dan, h.id, Operation::Stop).await.unwrap();
    assert_eq!(e.svc.wait_settled(&dan, h.id, SETTLE).await.unwrap().unwrap().state, HostingState::Stopped);
}

#[tokio::test]
async fn adding_a_node_checks_its_fields_its_uniqueness_and_that_it_answers() {
    let e = small_home().await;
    let [admin, eve] = e.users(["boss", "eve"]).await;
    let ok = test_node(&e, "two", 2048);

    let denied = e.svc.add_node(&eve, ok.clone()).await;
    assert!(matches!(denied, Err(Error::Forbidden)), "{denied:?}");
    let shell = e.svc.add_node(&admin, NewNode { libvirt_uri: "qemu+ssh://h/system?command=/bin/sh".into(), ..ok.clone() }).await;
    assert!(matches!(shell, Err(Error::Validation { field: "libvirt_uri", .. })), "{shell:?}");
    let ext = e.svc.add_node(&admin, NewNode { libvirt_uri: "ext:///system".into(), ..ok.clone() }).await;
    assert!(matches!(ext, Err(Error::Validation { field: "libvirt_uri", .. })), "{ext:?}");
    let addr = e.svc.add_node(&admin, NewNode { address: "node2.example".into(), ..ok.clone() }).await;
    assert!(matches!(addr, Err(Error::Validation { field: "address", .. })), "{addr:?}");
    // A URI nothing answers at: refused, nothing stored.
    let down = e.svc.add_node(&admin, NewNode { libvirt_uri: "test:///nonexistent/node.xml".into(), ..ok.clone() }).await;
    assert!(matches!(down, Err(Error::Validation { field: "libvirt_uri", .. })), "{down:?}");
    assert_eq!(e.svc.nodes_info(&admin).await.unwrap().len(), 1);

    e.svc.add_node(&admin, ok.clone()).await.unwrap();
    let twice = e.svc.add_node(&admin, ok.clone()).await;
    assert!(matches!(twice, Err(Error::Conflict { field: Some("name"), .. })), "{twice:?}");
    let same_uri = e.svc.add_node(&admin, NewNode { name: "three".into(), ..ok }).await;
    assert!(matches!(same_uri, Err(Error::Conflict { field: Some("libvirt_uri"), .. })), "{same_uri:?}");
    assert_eq!(e.svc.nodes_info(&admin).await.unwrap().len(), 2);
}
