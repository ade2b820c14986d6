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

/// Issue 28: a second URI of a daemon that is already a node is refused (its reconciliation
/// would judge the first node's domains), whatever the URI's spelling; a daemon of its own is
/// added, and its domains get a name prefix of their own.
#[tokio::test]
async fn a_second_uri_of_a_known_daemon_is_refused_and_each_node_names_its_domains_its_own_way() {
    let e = small_home().await;
    let [admin, fay] = e.users(["boss", "fay"]).await;
    // The node of the settings is `test:///default`; this is the same daemon, spelled otherwise.
    let again = NewNode { name: "again".into(), libvirt_uri: "test:///default?mode=direct".into(), ..test_node(&e, "again", 2048) };
    let r = e.svc.add_node(&admin, again).await;
    match &r {
        Err(Error::Conflict { field: Some("libvirt_uri"), message }) => assert!(message.contains(&e.svc.config().node_name), "{message}"),
        other => panic!("a second URI of the node's daemon was not refused: {other:?}"),
    }
    assert_eq!(e.svc.nodes_info(&admin).await.unwrap().len(), 1, "nothing stored");

    // A daemon of its own (a private test driver) is a node; the same one again is refused.
    let two = e.svc.add_node(&admin, test_node(&e, "two", 2048)).await.unwrap();
    let twice = e.svc.add_node(&admin, NewNode { name: "two-again".into(), ..test_node(&e, "two", 2048) }).await;
    assert!(matches!(twice, Err(Error::Conflict { field: Some("libvirt_uri"), .. })), "{twice:?}");

    // Its domains: `{prefix}n{id}-{hosting}`; the node of the settings keeps `{prefix}{hosting}`.
    let h = site(&e, &fay, "fay-two").await;
    assert_eq!(h.node_id, two.id, "the node with the most room");
    let prefix = &e.svc.config().domain_prefix;
    let svc_two = e.svc.on(two.id).unwrap();
    assert_eq!(svc_two.vm().domain_name(h.id), format!("{prefix}n{}-{}", two.id, h.id));
    assert_eq!(e.svc.vm().domain_name(h.id), format!("{prefix}{}", h.id));
    assert_eq!(svc_two.vm().list_domains().await.unwrap().iter().map(|d| d.0).collect::<Vec<_>>(), vec![h.id]);
    assert!(e.svc.vm().list_domains().await.unwrap().is_empty(), "the other node's domain is not the home node's");
    // Plaintext libvirt needs the operator's setting: refused before anything is reached.
    let tcp = e.svc.add_node(&admin, NewNode { name: "tcp".into(), libvirt_uri: "qemu+tcp://127.0.0.1/system".into(), ..test_node(&e, "tcp", 2048) }).await;
    assert!(matches!(&tcp, Err(Error::Validation { field: "libvirt_uri", message }) if message.contains("--allow-plaintext-libvirt")), "{tcp:?}");
    let key = e.svc.add_node(&admin, NewNode { name: "key".into(), libvirt_uri: "qemu+ssh://root@127.0.0.1/system?keyfile=/root/.ssh/id_ed25519".into(), ..test_node(&e, "key", 2048) }).await;
    assert!(matches!(&key, Err(Error::Validation { field: "libvirt_uri", message }) if message.contains("--node-key-dir")), "{key:?}");
}

/// Issue 28: reconciliation removes a domain with no row only when it carries its own node's
/// marker: another node's domain (of the same daemon), another app's, or one from before the
/// markers, all named with this node's prefix, survive.
#[tokio::test]
async fn reconciliation_removes_only_orphans_carrying_its_own_nodes_marker() {
    let e = small_home().await;
    let prefix = e.svc.config().domain_prefix.clone();
    let conn = virt::connect::Connect::open(Some("test:///default")).unwrap();
    let marker = |node: &str| format!("<metadata><vmw:node xmlns:vmw='{}' name='{node}'/></metadata>", service::vm::NODE_NS);
    let define = |id: i32, meta: &str| {
        let xml = format!(
            "<domain type='test'><name>{prefix}{id}</name>{meta}<memory unit='MiB'>128</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>"
        );
        conn.define_domain_xml(&xml).unwrap();
    };
    define(9991, ""); // from before the markers, or another app's
    define(9992, &marker("node-2")); // another node's, on the same daemon, same prefix
    define(9993, &marker(&e.svc.config().node_name)); // this node's own orphan
    let ids = |d: Vec<(i32, service::vm::VmState)>| d.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
    assert_eq!(ids(e.svc.vm().list_domains().await.unwrap()), vec![9991, 9992, 9993], "all named as this node's");

    let report = e.svc.reconcile().await.unwrap();
    assert_eq!(report.orphan_domains, vec![9993], "{report:?}");
    assert_eq!(ids(e.svc.vm().list_domains().await.unwrap()), vec![9991, 9992], "the domains it did not make survive");
    // A VM this node makes carries its marker (so its own orphans do go).
    let spec = service::vm::VmSpec { hosting_id: 9994, vcpus: 1, memory_mib: 128, disk_gib: 1, http_port: 1, ssh_port: 2, priority: Default::default() };
    e.svc.vm().create_disk(&spec).await.unwrap();
    e.svc.vm().define(&spec).await.unwrap();
    assert_eq!(e.svc.reconcile().await.unwrap().orphan_domains, vec![9994]);
    for id in [9991, 9992] {
        conn.lookup_domain_by_name(&format!("{prefix}{id}")).unwrap().undefine().unwrap();
    }
}
