//! The environment the service's test binaries run in: the hosting service on libvirt's
//! in-memory `test:///default` driver (the real libvirt API, no daemon), a real nginx in a
//! temporary prefix and a real database (SQLite, or PostgreSQL when TEST_DATABASE_URL is set).
// Each test binary uses the part of this module it needs.
#![allow(dead_code)]
pub mod backups;
use std::sync::Arc;

use service::ServiceConfig;
use service::accounts::{Accounts, Actor, NewUser, Options};
use service::hosting::HostingService;
use service::proxy::Proxy;
use service::vm::VmManager;
use vmw_test_support::{PortWindow, TestDb, fake_guest_image, free_port};

pub struct Env {
    _dir: tempfile::TempDir,
    _ports: [PortWindow; 2],
    pub db: TestDb,
    pub svc: HostingService,
    pub accounts: Accounts,
}

impl Drop for Env {
    fn drop(&mut self) {
        let proxy = self.svc.proxy().clone();
        // Stop this test's nginx; domains live in this process's test driver and vanish with it.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(proxy.stop())
        })
        .join();
    }
}

/// The environment with `tweak` applied to its configuration; readiness probes are skipped
/// (the test driver's domains run nothing).
pub async fn env_with(tweak: impl FnOnce(&mut ServiceConfig)) -> Env {
    vmw_test_support::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    // Each test gets its own port windows so parallel tests never compete for leases.
    let (http, ssh) = (PortWindow::claim(100), PortWindow::claim(100));
    let mut cfg = ServiceConfig {
        data_dir: dir.path().to_path_buf(),
        guest_image_dir: fake_guest_image(dir.path()),
        libvirt_uri: "test:///default".into(),
        domain_type: Some(service::DomainType::Qemu),
        domain_prefix: format!("vmwt{}-", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        nginx_listen: std::net::SocketAddr::from(([127, 0, 0, 1], free_port())),
        app_upstream: std::net::SocketAddr::from(([127, 0, 0, 1], free_port())),
        http_port_base: http.base(),
        ssh_port_base: ssh.base(),
        port_range_len: http.len(),
        ready_timeout_secs: 3,
        // Room for any test's VMs whatever the machine (capacity tests set their own).
        node_memory_mib: Some(1 << 20),
        node_disk_gib: Some(1 << 20),
        ..ServiceConfig::default()
    };
    tweak(&mut cfg);
    let cfg = Arc::new(cfg);
    let db = TestDb::new(service::db::connect_and_migrate).await;
    // The hosting tests were written when the first account administered the service.
    let accounts = Accounts::with_options(db.conn(), Options { first_user_admin: true, ..Options::default() });
    let vm = VmManager::connect(&cfg).await.expect("libvirt test driver");
    let proxy = Proxy::new(&cfg);
    proxy.ensure_running().await.expect("nginx starts");
    let svc = HostingService::new(db.conn(), cfg.clone(), vm, proxy, accounts.clone()).await.unwrap();
    svc.faults().set_skip_ready_probe(true);
    Env { _dir: dir, _ports: [http, ssh], db, svc, accounts }
}

pub async fn env() -> Env {
    env_with(|_| {}).await
}

impl Env {
    /// A new account `name` (`name@example.com`), as the caller it acts as.
    pub async fn user(&self, name: &str) -> Actor {
        let u = self
            .accounts
            .register(NewUser {
                email: format!("{name}@example.com"),
                username: name.into(),
                password: "correct horse battery".into(),
            })
            .await
            .unwrap();
        Actor { user_id: u.id, is_admin: u.is_admin }
    }

    /// New accounts, signed up in this order.
    pub async fn users<const N: usize>(&self, names: [&str; N]) -> [Actor; N] {
        let mut actors = Vec::with_capacity(N);
        for name in names {
            actors.push(self.user(name).await);
        }
        actors.try_into().unwrap_or_else(|_| unreachable!("one actor per name"))
    }

    /// Waits until hosting `id` has no operation running; it must still exist.
    pub async fn settled(&self, a: &Actor, id: i32) -> service::hosting::HostingView {
        self.svc.wait_settled(a, id, std::time::Duration::from_secs(60)).await.unwrap().expect("the hosting exists")
    }

    /// A new site `slug` of `a`, running.
    pub async fn running_site(&self, a: &Actor, slug: &str) -> service::hosting::HostingView {
        let req = service::hosting::CreateHosting { slug: Some(slug.into()), ..Default::default() };
        let h = self.svc.create(a, req).await.unwrap();
        let v = self.settled(a, h.id).await;
        assert_eq!(v.state, service::hosting::HostingState::Running, "{:?}", v.state_reason);
        v
    }
}
