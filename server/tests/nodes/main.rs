//! `make test-nodes`: more than one hypervisor, for real, without leaving this machine.
//!
//! Node 1 is `qemu:///system` (the node of the settings); node 2 is a second libvirt daemon
//! (root's `qemu:///session`) reached through a real remote URI, over SSH to an sshd bound to
//! 127.0.0.1 (`ops/test-node2.sh start IMAGE_DIR` sets it up; `VMW_NODE2_URI` names it). Sites
//! are placed on both and both are served through one nginx. Real VMs (TCG): ignored by plain
//! runs; `make test-nodes` runs `cargo nextest run -p server --test nodes --run-ignored only`.
//! Tests of more replicas of the app belong in this binary too.
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use service::ServiceConfig;
use service::accounts::{Accounts, Actor, NewUser, Options};
use service::hosting::nodes::NewNode;
use service::hosting::{CreateHosting, HostingService, HostingState};
use service::proxy::Proxy;
use service::vm::VmManager;
use vmw_test_support::{PortWindow, free_port};

const BOOT: Duration = Duration::from_secs(600);
const PORTS: u16 = 20;

fn image_dir() -> PathBuf {
    let dir = std::env::var_os("VMW_GUEST_IMAGE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/images/current"));
    assert!(dir.join("base.qcow2").exists(), "guest image missing at {} (`make image`)", dir.display());
    dir.canonicalize().unwrap()
}

fn node2_uri() -> String {
    std::env::var("VMW_NODE2_URI").expect("VMW_NODE2_URI: run `ops/test-node2.sh start IMAGE_DIR` and pass `ops/test-node2.sh uri` (make test-nodes does)")
}

/// Removes this test's domains from both hypervisors and stops its nginx, pass or fail.
struct Cleanup {
    dir: tempfile::TempDir,
    prefix: String,
    uris: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for uri in &self.uris {
            let virsh = |args: &[&str]| Command::new("virsh").arg("-c").arg(uri).args(args).output();
            let Ok(out) = virsh(&["list", "--all", "--name"]) else { continue };
            for name in String::from_utf8_lossy(&out.stdout).lines().filter(|n| n.starts_with(&self.prefix)) {
                let _ = virsh(&["destroy", name]);
                let _ = virsh(&["undefine", "--managed-save", name]);
            }
        }
        let prefix = self.dir.path().join("nginx");
        let _ = Command::new("nginx").arg("-p").arg(&prefix).arg("-c").arg(prefix.join("nginx.conf")).args(["-s", "quit"]).output();
    }
}

/// GET `path` from nginx on `port`: (status, body).
fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out)
}

#[tokio::test]
#[ignore = "real VMs on two hypervisors: make test-nodes"]
async fn sites_on_two_nodes_are_both_served_through_one_nginx() {
    vmw_test_support::init_tracing();
    let uri2 = node2_uri();
    let dir = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (http, ssh) = (PortWindow::claim(PORTS), PortWindow::claim(PORTS));
    let prefix = format!("vmwt-nodes-{}-", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let nginx_port = free_port();
    let cfg = Arc::new(ServiceConfig {
        data_dir: dir.path().to_path_buf(),
        guest_image_dir: image_dir(),
        libvirt_uri: "qemu:///system".into(),
        domain_prefix: prefix.clone(),
        nginx_listen: std::net::SocketAddr::from(([127, 0, 0, 1], nginx_port)),
        app_upstream: std::net::SocketAddr::from(([127, 0, 0, 1], free_port())),
        http_port_base: http.base(),
        ssh_port_base: ssh.base(),
        port_range_len: PORTS,
        ready_timeout_secs: 420,
        // Node 1 has room for 4 small sites, node 2 (below) for 8: the first site goes to node 2.
        node_memory_mib: Some(1024),
        node_disk_gib: Some(100),
        memory_overcommit: 1.0,
        // The node's URI names its key files: they must be in the key folder (its own).
        node_key_dir: key_dir(&uri2),
        // Node 2 is root's `qemu:///session`, which a privileged libvirtd serves with its
        // system driver: node 1's daemon (ops/test-node2.sh). Allowed explicitly; each node's
        // domains keep their own prefix and marker, so neither touches the other's.
        allow_shared_libvirt_daemon: true,
        ..ServiceConfig::default()
    });
    let _cleanup = Cleanup { dir, prefix, uris: vec![cfg.libvirt_uri.clone(), uri2.clone()] };
    let db_url = format!("sqlite://{}/t.sqlite?mode=rwc", cfg.data_dir.display());
    let db = service::db::connect_and_migrate(&db_url).await.unwrap();
    let accounts = Accounts::with_options(db.clone(), Options { first_user_admin: true, ..Options::default() });
    let vm = VmManager::connect(&cfg).await.expect("libvirt qemu:///system (ops/start-host-services.sh)");
    let proxy = Proxy::new(&cfg);
    proxy.ensure_running().await.expect("nginx starts");
    let svc = HostingService::new(db.clone(), cfg.clone(), vm, proxy, accounts.clone()).await.unwrap();
    let user = |name: &'static str| {
        let accounts = accounts.clone();
        async move {
            let u = accounts
                .register(NewUser { email: format!("{name}@example.com"), username: name.into(), password: "correct horse battery".into() })
                .await
                .unwrap();
            Actor { user_id: u.id, is_admin: u.is_admin }
        }
    };
    let admin = user("boss").await;

    // Adding node 2 checks that it answers over its URI and has the guest image in a pool.
    let two = svc
        .add_node(&admin, NewNode { name: "node-2".into(), libvirt_uri: uri2.clone(), address: "127.0.0.1".into(), memory_mib: 2048, disk_gib: 100 })
        .await
        .expect("node 2 is added (is ops/test-node2.sh started?)");
    assert!(two.health.connected && two.health.image_ok, "{two:?}");
    assert!(two.health.libvirt_version.is_some(), "{two:?}");

    // Placement: the node with more room (node 2), then, node 2 drained, node 1.
    let ann = user("ann").await;
    let on_two = svc.create(&ann, CreateHosting { slug: Some("on-two".into()), ..Default::default() }).await.unwrap();
    assert_eq!(on_two.node_id, two.id);
    svc.set_node_drained(&admin, two.id, true).await.unwrap();
    let on_one = svc.create(&ann, CreateHosting { slug: Some("on-one".into()), ..Default::default() }).await.unwrap();
    assert_eq!(on_one.node_id, svc.node_id());
    svc.set_node_drained(&admin, two.id, false).await.unwrap();

    for (h, node) in [(&on_two, two.id), (&on_one, svc.node_id())] {
        let v = svc.wait_settled(&ann, h.id, BOOT).await.unwrap().unwrap();
        assert_eq!(v.state, HostingState::Running, "{} on node {node}: {v:?}", h.slug);
        // The VM is on its node's hypervisor.
        let ids: Vec<i32> = svc.on(node).unwrap().vm().list_domains().await.unwrap().into_iter().map(|d| d.0).collect();
        assert!(ids.contains(&h.id), "domain of {} not on node {node}: {ids:?}", h.slug);
    }
    // Both served through the one nginx: each site's page names it.
    for slug in ["on-two", "on-one"] {
        let (status, body) = get(nginx_port, &format!("/{slug}/"));
        assert_eq!(status, 200, "/{slug}/ through nginx: {body}");
        assert!(body.contains(slug), "/{slug}/ is not its own page: {body}");
    }
    // The admin's view: both nodes, each with its site.
    let nodes = svc.nodes_info(&admin).await.unwrap();
    assert_eq!(nodes.len(), 2);
    for (n, slug) in nodes.iter().map(|n| (n, if n.id == two.id { "on-two" } else { "on-one" })) {
        assert!(n.health.connected, "{n:?}");
        assert_eq!(n.sites.iter().map(|s| s.slug.as_str()).collect::<Vec<_>>(), vec![slug], "{n:?}");
    }
    // Deleting the site on node 2 empties it; then it can be removed.
    svc.action(&ann, on_two.id, service::hosting::Operation::Delete).await.unwrap();
    assert!(svc.wait_settled(&ann, on_two.id, Duration::from_secs(120)).await.unwrap().is_none());
    svc.remove_node(&admin, two.id).await.unwrap();
    assert_eq!(svc.nodes_info(&admin).await.unwrap().len(), 1);
}

/// The folder of the key file a node URI names (`keyfile=DIR/id_ed25519`), if any.
fn key_dir(uri: &str) -> Option<std::path::PathBuf> {
    let query = uri.split_once('?')?.1;
    let file = query.split('&').find_map(|kv| kv.strip_prefix("keyfile="))?;
    std::path::Path::new(file).parent().map(|p| p.to_path_buf())
}
