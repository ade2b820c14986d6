//! Real VMs: libvirt `qemu:///system`, the guest image built by guest/build-image.sh, a real
//! nginx on a loopback port, real OpenSSH. Ignored by plain `cargo test` (each boot takes 20-40 s
//! under TCG); `make test` runs them with `--run-ignored`. When they run and something they need
//! is missing, they fail with the reason: they never pass silently.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use service::accounts::{Accounts, Actor, NewUser};
use service::db::entity::{hosting_event, port_lease};
use service::hosting::{CreateHosting, EventStatus, HostingService, HostingState, Operation, Step};
use service::proxy::Proxy;
use service::vm::VmManager;
use service::ServiceConfig;
use vmw_test_support::{PortWindow, free_port};

const BOOT_TIMEOUT: Duration = Duration::from_secs(420);

fn image_dir() -> PathBuf {
    let dir = std::env::var_os("VMW_GUEST_IMAGE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/images/current"));
    assert!(
        dir.join("base.qcow2").exists(),
        "guest image missing at {} (run guest/build-image.sh, or `make image`)",
        dir.display()
    );
    dir.canonicalize().unwrap()
}

/// A temporary data dir QEMU (run by libvirt as an unprivileged user) can reach.
fn data_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A config whose every name and port is this test run's own (the port windows' bases given).
fn config(data_dir: &Path, tag: &str, http_port_base: u16, ssh_port_base: u16) -> ServiceConfig {
    ServiceConfig {
        data_dir: data_dir.to_path_buf(),
        guest_image_dir: image_dir(),
        libvirt_uri: std::env::var("VMW_TEST_LIBVIRT_URI").unwrap_or_else(|_| "qemu:///system".into()),
        domain_prefix: format!("vmwt-{tag}-{}-", &uuid::Uuid::new_v4().simple().to_string()[..6]),
        nginx_listen: std::net::SocketAddr::from(([127, 0, 0, 1], free_port())),
        app_upstream: std::net::SocketAddr::from(([127, 0, 0, 1], free_port())),
        http_port_base,
        ssh_port_base,
        port_range_len: PORTS,
        ready_timeout_secs: 300,
        ..ServiceConfig::default()
    }
}

const PORTS: u16 = 20;

/// One test's data dir, its config and its SQLite file (in the data dir), holding its ports.
struct Setup {
    dir: tempfile::TempDir,
    cfg: ServiceConfig,
    db_url: String,
    _ports: [PortWindow; 2],
}

/// A test that failed half-way leaves no VM and no nginx running: every domain of its own prefix
/// goes (the golden one too), whatever state it is in.
impl Drop for Setup {
    fn drop(&mut self) {
        let uri = self.cfg.libvirt_uri.clone();
        let virsh = |args: &[&str]| Command::new("virsh").arg("-c").arg(&uri).args(args).output();
        let Ok(out) = virsh(&["list", "--all", "--name"]) else { return };
        for name in String::from_utf8_lossy(&out.stdout).lines().filter(|n| n.starts_with(&self.cfg.domain_prefix)) {
            let _ = virsh(&["destroy", name]);
            let _ = virsh(&["undefine", "--managed-save", name]);
        }
        // And its nginx (a daemon of its own), if it still runs.
        let prefix = self.dir.path().join("nginx");
        let _ = Command::new("nginx").arg("-p").arg(&prefix).arg("-c").arg(prefix.join("nginx.conf")).args(["-s", "quit"]).output();
    }
}

fn setup(tag: &str) -> Setup {
    let dir = data_dir();
    let (http, ssh) = (PortWindow::claim(PORTS), PortWindow::claim(PORTS));
    let cfg = config(dir.path(), tag, http.base(), ssh.base());
    let db_url = format!("sqlite://{}/t.sqlite?mode=rwc", dir.path().display());
    Setup { dir, cfg, db_url, _ports: [http, ssh] }
}

struct Stack {
    svc: HostingService,
    accounts: Accounts,
    db: sea_orm::DatabaseConnection,
    cfg: Arc<ServiceConfig>,
}

async fn stack(cfg: ServiceConfig, db_url: &str) -> Stack {
    let cfg = Arc::new(cfg);
    let db = service::db::connect_and_migrate(db_url).await.unwrap();
    let accounts = Accounts::new(db.clone());
    let vm = VmManager::connect(&cfg).await.expect("libvirt qemu:///system (run ops/start-host-services.sh)");
    let proxy = Proxy::new(&cfg);
    proxy.ensure_running().await.expect("nginx starts");
    let svc = HostingService::new(db.clone(), cfg.clone(), vm, proxy, accounts.clone()).await.unwrap();
    Stack { svc, accounts, db, cfg }
}

async fn register(accounts: &Accounts, name: &str) -> Actor {
    let u = accounts
        .register(NewUser { email: format!("{name}@example.com"), username: name.into(), password: "correct horse battery".into() })
        .await
        .unwrap();
    Actor { user_id: u.id, is_admin: u.is_admin }
}

fn keygen(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("id_ed25519");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "vmw-test", "-f"])
        .arg(&key)
        .output()
        .expect("ssh-keygen (openssh-client)");
    assert!(out.status.success(), "{out:?}");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public.trim().to_owned())
}

fn ssh(key: &Path, port: u16, user: &str, remote: &str) -> String {
    let out = Command::new("ssh")
        .args(["-i"])
        .arg(key)
        .args(["-p", &port.to_string()])
        .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR"])
        .arg(format!("{user}@127.0.0.1"))
        .arg(remote)
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn sftp_put(key: &Path, port: u16, user: &str, local: &Path, remote: &str) {
    let batch = local.with_extension("batch");
    std::fs::write(&batch, format!("put {} {remote}\n", local.display())).unwrap();
    let out = Command::new("sftp")
        .arg("-i")
        .arg(key)
        .args(["-P", &port.to_string()])
        .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-b"])
        .arg(&batch)
        .arg(format!("{user}@127.0.0.1"))
        .output()
        .unwrap();
    assert!(out.status.success(), "sftp failed: {}", String::from_utf8_lossy(&out.stderr));
}

async fn get(url: &str, host: Option<&str>) -> (u16, String) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut req = client.get(url);
    if let Some(h) = host {
        req = req.header("Host", h);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

async fn assert_gone(st: &Stack, id: i32) {
    let domains = st.svc.vm().list_domains().await.unwrap();
    assert!(!domains.iter().any(|(d, _)| *d == id), "domain left: {domains:?}");
    assert!(!st.svc.vm().vm_dir(id).exists(), "disk/seed folder left");
    assert!(!st.svc.proxy().site_file(id).exists(), "nginx file left");
    let leases = port_lease::Entity::find().filter(port_lease::Column::HostingId.eq(id)).all(&st.db).await.unwrap();
    assert!(leases.is_empty(), "ports left: {leases:?}");
}

#[tokio::test]
#[ignore = "boots a real VM (qemu:///system); run by `make test`"]
async fn a_real_vm_serves_its_site_through_nginx_and_takes_ssh_and_sftp() {
    let s = setup("site");
    let nginx = s.cfg.nginx_listen.clone();
    let st = stack(s.cfg.clone(), &s.db_url).await;
    let user = register(&st.accounts, "kim").await;
    let (key, public) = keygen(s.dir.path());

    let t0 = Instant::now();
    let h = st.svc.create(&user, CreateHosting { public_keys: vec![public], ..Default::default() }).await.unwrap();
    let h = st.svc.wait_settled(&user, h.id, BOOT_TIMEOUT).await.unwrap().unwrap();
    assert_eq!(h.state, HostingState::Running, "{:?}", h.state_reason);
    eprintln!("create -> running: {:?}", t0.elapsed());

    // The welcome page at all three addresses.
    for (url, host) in [
        (format!("http://{nginx}/kim/"), None),
        (format!("http://{nginx}/{}/", user.user_id), None),
        (format!("http://{nginx}/"), Some("kim.localhost")),
    ] {
        let (status, body) = get(&url, host).await;
        assert_eq!(status, 200, "{url} {host:?}");
        assert!(body.contains("Welcome to kim"), "{url} {host:?}: {body}");
    }

    // SSH in as the guest user with the key the test generated: the VM is the one we asked for.
    let port = h.ssh_port.unwrap() as u16;
    let out = ssh(&key, port, "ubuntu", "hostname; nproc; grep MemTotal /proc/meminfo; id -un");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "kim", "hostname: {out}");
    assert_eq!(lines[1], "1", "vCPUs of the small plan: {out}");
    let mem_kib: u64 = lines[2].split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!((150_000..=262_144).contains(&mem_kib), "MemTotal {mem_kib} KiB for a 256 MiB plan");
    assert_eq!(lines[3], "ubuntu");

    // SFTP a file into the web root and fetch it through nginx.
    let local = s.dir.path().join("hello.html");
    let marker = format!("uploaded-{}", uuid::Uuid::new_v4());
    std::fs::write(&local, &marker).unwrap();
    sftp_put(&key, port, "ubuntu", &local, "/var/www/html/hello.html");
    let (status, body) = get(&format!("http://{nginx}/kim/hello.html"), None).await;
    assert_eq!((status, body.trim()), (200, marker.as_str()));

    // The tenant makes their own nginx send headers meant to steer the shared nginx or to act on
    // the visitor (they have sudo in their VM): the visitor gets none of them, and never an app
    // path (followed, X-Accel-Redirect would have fetched /api/v1/users/me from the app).
    use base64::Engine;
    let hostile = r#"server {
    listen 80 default_server;
    root /var/www/html;
    location = /evil {
        add_header X-Accel-Redirect /api/v1/users/me;
        add_header X-Accel-Buffering no;
        add_header X-Accel-Expires 3600;
        add_header Set-Cookie "vmw_session=evil; Path=/";
        add_header Clear-Site-Data "\"*\"";
        add_header Strict-Transport-Security "max-age=31536000";
        return 200 "tenant-page";
    }
    location = /evil-redirect {
        add_header Set-Cookie "vmw_session=evil; Path=/";
        return 302 /elsewhere;
    }
    location / { try_files $uri $uri/ =404; }
}
"#;
    let b64 = base64::engine::general_purpose::STANDARD.encode(hostile);
    ssh(&key, port, "ubuntu", &format!("echo {b64} | base64 -d | sudo tee /etc/nginx/sites-enabled/default >/dev/null && sudo nginx -t -q && sudo nginx -s reload && sleep 1"));
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for (path, want) in [("/kim/evil", 200), ("/kim/evil-redirect", 302)] {
        let r = client.get(format!("http://{nginx}{path}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), want, "{path}");
        for h in ["set-cookie", "x-accel-redirect", "x-accel-buffering", "x-accel-expires", "clear-site-data", "strict-transport-security"] {
            assert!(r.headers().get(h).is_none(), "{path}: the VM's {h} reached the visitor");
        }
        let body = r.text().await.unwrap();
        if want == 200 {
            assert_eq!(body.trim(), "tenant-page", "{path}: the VM's own answer, not an app path");
        }
    }

    // Delete: the site, the domain, the disk, the seed, the nginx file and the ports are gone.
    st.svc.action(&user, h.id, Operation::Delete).await.unwrap();
    assert!(st.svc.wait_settled(&user, h.id, Duration::from_secs(120)).await.unwrap().is_none());
    assert_gone(&st, h.id).await;
    // nginx no longer routes /kim/ to a VM (it falls through to the app, which is not
    // running in this test: 502 from the app location, never the site).
    let (status, body) = get(&format!("http://{nginx}/kim/"), None).await;
    assert_ne!(status, 200);
    assert!(!body.contains("Welcome to kim"));
    st.svc.proxy().stop().await.unwrap();
}

/// The child half of the crash tests: runs the service, creates a hosting, and waits to be killed.
#[tokio::test]
#[ignore = "helper process of the crash tests"]
async fn crash_child() {
    let Ok(spec) = std::env::var("VMW_CRASH_CHILD") else { return };
    let (data_dir, prefix, nginx, http_base, ssh_base, db_url, golden) =
        serde_json::from_str::<(String, String, std::net::SocketAddr, u16, u16, String, bool)>(&spec).unwrap();
    // The parent holds the port windows.
    let mut cfg = config(Path::new(&data_dir), "crash", http_base, ssh_base);
    cfg.domain_prefix = prefix;
    cfg.nginx_listen = nginx;
    cfg.golden = golden;
    let st = stack(cfg, &db_url).await;
    let user = register(&st.accounts, "lee").await;
    let h = st.svc.create(&user, CreateHosting::default()).await.unwrap();
    if std::env::var_os("VMW_CRASH_WAKE").is_some() {
        // Then asleep, and woken by a visit: the parent kills this process during the wake.
        assert_eq!(st.svc.wait_settled(&user, h.id, BOOT_TIMEOUT).await.unwrap().unwrap().state, HostingState::Running);
        st.svc.action(&user, h.id, Operation::Sleep).await.unwrap();
        assert_eq!(st.svc.wait_settled(&user, h.id, Duration::from_secs(120)).await.unwrap().unwrap().state, HostingState::Sleeping);
        let _ = st.svc.visit(h.id, Duration::from_secs(60)).await;
    }
    tokio::time::sleep(Duration::from_secs(600)).await;
}

/// Starts the child half of a crash test ([`crash_child`]) on `s`'s data dir and ports, after
/// making the golden snapshot when `golden` (the child's create is then a clone). `wake`: the
/// child also puts its site to sleep and wakes it with a visit. Returns the child and the
/// database, migrated before the child starts (two processes migrating one SQLite file race).
async fn crash_child_of(mut s: Setup, golden: bool, wake: bool) -> (std::process::Child, sea_orm::DatabaseConnection, Setup) {
    s.cfg.golden = golden;
    if golden {
        let st = stack(s.cfg.clone(), &s.db_url).await;
        assert!(st.svc.fill_pool_once().await.unwrap(), "the golden snapshot was made");
        st.svc.proxy().stop().await.unwrap();
    }
    let spec = serde_json::to_string(&(
        s.dir.path().display().to_string(),
        s.cfg.domain_prefix.clone(),
        s.cfg.nginx_listen,
        s.cfg.http_port_base,
        s.cfg.ssh_port_base,
        s.db_url.clone(),
        golden,
    ))
    .unwrap();
    let db = service::db::connect_and_migrate(&s.db_url).await.unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap());
    child.args(["--exact", "crash_child", "--ignored", "--nocapture"]).env("VMW_CRASH_CHILD", spec);
    if wake {
        child.env("VMW_CRASH_WAKE", "1");
    }
    (child.spawn().unwrap(), db, s)
}

/// Kills (-9) the crash child `after` the first event that matches `event` is logged.
async fn kill_once_logged(child: &mut std::process::Child, db: &sea_orm::DatabaseConnection, event: sea_orm::Condition, patience: Duration, after: Duration) {
    let deadline = Instant::now() + patience;
    while hosting_event::Entity::find().filter(event.clone()).one(db).await.unwrap().is_none() {
        assert!(Instant::now() < deadline, "the child never logged {event:?}");
        assert!(child.try_wait().unwrap().is_none(), "the child service exited early");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(after).await;
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The service started again on a crash test's data dir, its background work running: the stack,
/// those tasks, an admin, and the child's hosting.
async fn restarted(s: &Setup) -> (Stack, Vec<tokio::task::JoinHandle<()>>, Actor, service::hosting::HostingView) {
    let st = stack(s.cfg.clone(), &s.db_url).await;
    let tasks = st.svc.start_background().await.unwrap();
    let user = Actor { user_id: 1, is_admin: true };
    let h = st.svc.list(&user).await.unwrap().pop().expect("the hosting row survived");
    (st, tasks, user, h)
}

/// The end of a crash test: the site deleted and gone, the restarted service stopped.
async fn deleted_after_restart(st: Stack, tasks: Vec<tokio::task::JoinHandle<()>>, user: &Actor, id: i32) {
    st.svc.action(user, id, Operation::Delete).await.unwrap();
    assert!(st.svc.wait_settled(user, id, Duration::from_secs(120)).await.unwrap().is_none());
    assert_gone(&st, id).await;
    for t in tasks {
        t.abort();
    }
    st.svc.proxy().stop().await.unwrap();
}

/// Kills (-9) a child service right after its create finished step `kill_after`, restarts the
/// service, and checks the create ends as a running site with one VM, never a half-made one.
async fn killed_after_step_then_restarted(tag: &str, kill_after: &str, golden: bool) {
    let s = setup(tag);
    let (mut child, db, s) = crash_child_of(s, golden, false).await;

    let finished = sea_orm::Condition::all()
        .add(hosting_event::Column::Step.eq(kill_after))
        .add(hosting_event::Column::Status.eq("succeeded"));
    kill_once_logged(&mut child, &db, finished, Duration::from_secs(120), Duration::ZERO).await;

    // Restart: start-up reconciliation cleans the half-made hosting and provisions it again.
    let (st, tasks, user, h) = restarted(&s).await;
    let h = st.svc.wait_settled(&user, h.id, BOOT_TIMEOUT).await.unwrap().unwrap();
    assert_eq!(h.state, HostingState::Running, "{:?}", h.state_reason);
    let domains = st.svc.vm().list_domains().await.unwrap();
    assert_eq!(domains.iter().filter(|(id, _)| *id == h.id).count(), 1, "{domains:?}");
    let evs = st.svc.events(&user, h.id, 0).await.unwrap();
    assert!(evs.iter().any(|e| e.message.contains("interrupted")), "the restart is in the audit trail");
    if golden {
        let last_try = evs.iter().rposition(|e| e.message.contains("interrupted")).unwrap();
        assert!(evs[last_try..].iter().any(|e| e.message.contains("clone of the golden")), "it was cloned again");
    }
    let (status, body) = get(&format!("http://{}/lee/", st.cfg.nginx_listen), None).await;
    assert_eq!(status, 200);
    assert!(body.contains("Welcome to lee"));

    deleted_after_restart(st, tasks, &user, h.id).await;
}

/// A clone asleep as a delta, woken by a visit, and the service killed (-9) in the middle of
/// the wake: while libvirt reads the expanded memory from the wake pipe. After a restart the site
/// is asleep (the restore failed with the pipe's writer gone, the saved memory kept) or running,
/// with one QEMU and nothing of the wake left; a visit then gets the site.
#[tokio::test]
#[ignore = "boots a real VM (qemu:///system); run by `make test`"]
async fn a_service_killed_while_a_clone_wakes_from_its_delta_ends_asleep_or_running() {
    let (mut child, db, s) = crash_child_of(setup("crashwake"), true, true).await;
    // A wake's restore runs ~0.05-0.4 s after it begins; QEMU loads the memory in its second half.
    let waking = sea_orm::Condition::all().add(hosting_event::Column::Message.starts_with("Waking up"));
    kill_once_logged(&mut child, &db, waking, BOOT_TIMEOUT, Duration::from_millis(250)).await;

    let (st, tasks, user, h) = restarted(&s).await;
    let v = st.svc.wait_settled(&user, h.id, Duration::from_secs(120)).await.unwrap().unwrap();
    let name = st.svc.vm().domain_name(h.id);
    eprintln!("after the kill during a wake and a restart: {:?} ({:?}), {} QEMU", v.state, v.state_reason, qemus(&name));
    assert!(matches!(v.state, HostingState::Sleeping | HostingState::Running), "{:?}: {:?}", v.state, v.state_reason);
    assert!(qemus(&name) <= 1, "never two QEMUs");
    assert!(!st.svc.vm().vm_dir(h.id).join("wake.save").exists(), "the wake's pipe is gone");

    let http = h.http_port.unwrap() as u16;
    assert_eq!(st.svc.visit(h.id, Duration::from_secs(60)).await.unwrap(), Some(std::net::SocketAddr::new(st.cfg.http_forward_bind, http)));
    let (status, body) = get(&format!("http://{}/lee/", st.cfg.nginx_listen), None).await;
    assert_eq!(status, 200);
    assert!(body.contains("Welcome to lee"));
    assert_eq!(qemus(&name), 1);
    let v = st.svc.wait_settled(&user, h.id, Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!(v.state, HostingState::Running, "{:?}", v.state_reason);
    assert!(!st.svc.vm().has_managed_save(h.id).await.unwrap(), "a woken VM keeps no saved state");

    deleted_after_restart(st, tasks, &user, h.id).await;
}

#[tokio::test]
#[ignore = "boots a real VM (qemu:///system); run by `make test`"]
async fn a_service_killed_mid_provisioning_finishes_the_job_after_restart() {
    killed_after_step_then_restarted("crash", "start_vm", false).await;
}

#[tokio::test]
#[ignore = "boots a real VM (qemu:///system); run by `make test`"]
async fn a_service_killed_between_a_clones_restore_and_its_personalisation_ends_running() {
    killed_after_step_then_restarted("crashclone", "clone_vm", true).await;
}

#[tokio::test]
#[ignore = "boots a real VM (qemu:///system); run by `make test`"]
async fn a_warm_spare_becomes_someones_live_site_in_seconds() {
    let mut s = setup("warm");
    s.cfg.pool_size = 1;
    let nginx = s.cfg.nginx_listen.clone();
    let st = stack(s.cfg.clone(), &s.db_url).await;

    // The pool makes a spare: booted once, then saved to disk.
    assert!(st.svc.fill_pool_once().await.unwrap(), "a spare was made");
    assert_eq!(st.svc.spares_ready().await.unwrap(), 1);
    assert!(!st.svc.fill_pool_once().await.unwrap(), "the pool is full");
    let spare = st.svc.store().on_node_in(&[HostingState::Spare]).await.unwrap().remove(0);
    assert_eq!(cpu_shares(&st.svc.vm().domain_name(spare.id)), 32, "a spare is made at a small CPU weight");

    let user = register(&st.accounts, "wendy").await;
    let (key, public) = keygen(s.dir.path());
    let t0 = Instant::now();
    let h = st.svc.create(&user, CreateHosting { public_keys: vec![public], ..Default::default() }).await.unwrap();
    let h = st.svc.wait_settled(&user, h.id, Duration::from_secs(120)).await.unwrap().unwrap();
    let took = t0.elapsed();
    assert_eq!(h.state, HostingState::Running, "{:?}", h.state_reason);
    eprintln!("warm create -> running: {took:?}");
    assert_eq!(st.svc.spares_ready().await.unwrap(), 0, "the spare was claimed");
    assert_eq!(cpu_shares(&st.svc.vm().domain_name(h.id)), 1024, "restored at the normal CPU weight");
    let evs = st.svc.events(&user, h.id, 0).await.unwrap();
    assert!(evs.iter().any(|e| e.message.contains("warm pool")), "the events say it came from the pool");
    for e in evs.iter().filter(|e| e.status == EventStatus::Succeeded) {
        eprintln!("  {:<16} {:>6} ms", e.step.map(|s| s.as_str()).unwrap_or("-"), e.duration_ms.unwrap_or(0));
    }

    // It is wendy's site now: her page, her hostname, her key.
    let (status, body) = get(&format!("http://{nginx}/wendy/"), None).await;
    assert_eq!(status, 200);
    assert!(body.contains("Welcome to wendy"), "{body}");
    let out = ssh(
        &key,
        h.ssh_port.unwrap() as u16,
        "ubuntu",
        "hostname; cat /etc/hostname; stat -c %U /var/www/html/index.html; echo edited > /var/www/html/index.html",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..3], ["wendy", "wendy", "ubuntu"], "hostname now and after a reboot, and she owns her page: {out}");
    let (_, body) = get(&format!("http://{nginx}/wendy/"), None).await;
    assert_eq!(body.trim(), "edited", "her own edit is served");

    st.svc.action(&user, h.id, Operation::Delete).await.unwrap();
    assert!(st.svc.wait_settled(&user, h.id, Duration::from_secs(120)).await.unwrap().is_none());
    assert_gone(&st, h.id).await;
    st.svc.proxy().stop().await.unwrap();
}

/// The ed25519 host key a site's SSH server offers (`ssh-keyscan`).
fn host_key(port: u16) -> String {
    let out = Command::new("ssh-keyscan").args(["-p", &port.to_string(), "-t", "ed25519", "-T", "20", "127.0.0.1"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let key = text.lines().find_map(|l| l.split_whitespace().nth(2)).map(str::to_owned);
    key.unwrap_or_else(|| panic!("no host key on port {port}: {}", String::from_utf8_lossy(&out.stderr)))
}

// Several threads: the test's blocking ssh to a sleeping site runs while its SSH waker accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "boots a real VM (qemu:///system); run by `make test`"]
async fn sites_cloned_from_the_golden_snapshot_are_their_own_and_survive_stop_and_start() {
    let mut s = setup("clone");
    s.cfg.golden = true;
    s.cfg.pool_paused = 2;
    s.cfg.max_hostings_per_user = 10;
    let nginx = s.cfg.nginx_listen;
    let st = stack(s.cfg.clone(), &s.db_url).await;

    // The golden snapshot: the one cold boot.
    let t = Instant::now();
    assert!(st.svc.fill_pool_once().await.unwrap(), "the golden snapshot was made");
    eprintln!("golden snapshot made in {:?}", t.elapsed());
    assert!(st.svc.vm().golden().is_some());

    // Each step of a clone create fails in turn (its undos run twice): nothing is left.
    let (key, public) = keygen(s.dir.path());
    let eve = register(&st.accounts, "eve").await;
    st.svc.faults().set_undo_twice(true);
    for (i, step) in [Step::AllocatePorts, Step::CloneVm, Step::WriteSeed, Step::AddRoute, Step::SetHostname, Step::Reidentify].into_iter().enumerate() {
        st.svc.faults().fail_at(Some(step));
        let req = CreateHosting { slug: Some(format!("eve-{i}")), public_keys: vec![public.clone()], ..Default::default() };
        let h = st.svc.create(&eve, req).await.unwrap();
        let h = st.svc.wait_settled(&eve, h.id, Duration::from_secs(180)).await.unwrap().unwrap();
        assert_eq!(h.state, HostingState::Failed, "failing {step:?}");
        assert!(h.state_reason.as_deref().unwrap().contains(step.label()), "{:?}", h.state_reason);
        assert_gone(&st, h.id).await;
        st.svc.action(&eve, h.id, Operation::Delete).await.unwrap();
        assert!(st.svc.wait_settled(&eve, h.id, Duration::from_secs(60)).await.unwrap().is_none());
    }
    st.svc.faults().set_undo_twice(false);
    assert!(st.svc.vm().golden().is_some(), "the golden survives its clones' failures");

    // Two spares, paused in RAM, made as clones.
    assert!(st.svc.fill_pool_once().await.unwrap());
    assert!(st.svc.fill_pool_once().await.unwrap());
    assert_eq!(st.svc.spares_in(service::hosting::SpareTier::Paused).await.unwrap(), 2);
    // Spares are made at a small CPU weight: a user's VM comes first on a busy host.
    let spares = st.svc.store().on_node_in(&[HostingState::Spare]).await.unwrap();
    assert_eq!(spares.len(), 2);
    for spare in &spares {
        assert_eq!(cpu_shares(&st.svc.vm().domain_name(spare.id)), 32, "spare {}", spare.id);
    }

    // Four sites in a row: two claim the paused spares, two are cloned on demand.
    let mut sites = Vec::new();
    for (n, name) in ["ada", "bob", "cyd", "dee"].into_iter().enumerate() {
        let user = register(&st.accounts, name).await;
        let t = Instant::now();
        let h = st.svc.create(&user, CreateHosting { public_keys: vec![public.clone()], ..Default::default() }).await.unwrap();
        let h = st.svc.wait_settled(&user, h.id, Duration::from_secs(180)).await.unwrap().unwrap();
        assert_eq!(h.state, HostingState::Running, "{name}: {:?}", h.state_reason);
        let evs = st.svc.events(&user, h.id, 0).await.unwrap();
        let how = if n < 2 { "warm pool" } else { "clone of the golden" };
        assert!(evs.iter().any(|e| e.message.contains(how)), "{name}: {how}");
        eprintln!("{how} create -> running: {:?}", t.elapsed());
        for e in evs.iter().filter(|e| e.status == EventStatus::Succeeded) {
            eprintln!("  {:<16} {:>6} ms", e.step.map(|s| s.as_str()).unwrap_or("-"), e.duration_ms.unwrap_or(0));
        }
        let (status, body) = get(&format!("http://{nginx}/{name}/"), None).await;
        assert_eq!(status, 200);
        assert!(body.contains(&format!("Welcome to {name}")), "{body}");
        assert_eq!(cpu_shares(&st.svc.vm().domain_name(h.id)), 1024, "{name}'s VM has the normal CPU weight");
        sites.push((user, h));
    }

    // Each has its own SSH host key and machine-id, and takes its owner's key.
    let mut keys = std::collections::HashSet::new();
    let mut ids = std::collections::HashSet::new();
    for (_, h) in &sites {
        let port = h.ssh_port.unwrap() as u16;
        assert!(keys.insert(host_key(port)), "{}: a host key another site has", h.slug);
        let out = ssh(&key, port, "ubuntu", "cat /etc/machine-id; hostname");
        let lines: Vec<&str> = out.lines().collect();
        assert!(ids.insert(lines[0].to_owned()), "{}: a machine-id another site has", h.slug);
        assert_eq!(lines[1], h.slug, "its own hostname");
    }

    // A file written into one survives stop (saved to disk: no QEMU, no RAM) and start (restored).
    let (user, h) = &sites[0];
    let port = h.ssh_port.unwrap() as u16;
    ssh(&key, port, "ubuntu", "echo kept-across-stop > /var/www/html/note.txt");
    st.svc.action(user, h.id, Operation::Stop).await.unwrap();
    let v = st.svc.wait_settled(user, h.id, Duration::from_secs(120)).await.unwrap().unwrap();
    assert_eq!(v.state, HostingState::Stopped, "{:?}", v.state_reason);
    assert_eq!(st.svc.vm().state(h.id).await.unwrap(), service::vm::VmState::ShutOff);
    assert!(st.svc.vm().has_managed_save(h.id).await.unwrap(), "stop saved the VM to disk");
    let t = Instant::now();
    st.svc.action(user, h.id, Operation::Start).await.unwrap();
    let v = st.svc.wait_settled(user, h.id, Duration::from_secs(120)).await.unwrap().unwrap();
    assert_eq!(v.state, HostingState::Running, "{:?}", v.state_reason);
    eprintln!("start (restore) -> running: {:?}", t.elapsed());
    let (status, body) = get(&format!("http://{nginx}/{}/note.txt", h.slug), None).await;
    assert_eq!((status, body.trim()), (200, "kept-across-stop"));
    assert_eq!(host_key(port), host_key(port), "still answers SSH");

    // Asleep, a clone keeps its memory as its difference to the golden's: a few MB on disk
    // (~104 MB as QEMU saved it, ~37 MB with lzop). A visit wakes it with the same file, and
    // nothing of the wake is left beside its disk.
    st.svc.action(user, h.id, Operation::Sleep).await.unwrap();
    let v = st.svc.wait_settled(user, h.id, Duration::from_secs(120)).await.unwrap().unwrap();
    assert_eq!(v.state, HostingState::Sleeping, "{:?}", v.state_reason);
    let name = st.svc.vm().domain_name(h.id);
    let saved = std::fs::metadata(format!("/var/lib/libvirt/qemu/save/{name}.save")).unwrap().len();
    eprintln!("a sleeping clone's saved memory: {saved} bytes");
    assert!(saved < 16 << 20, "{saved} bytes on disk for a sleeping clone's memory");
    assert_eq!(qemus(&name), 0);
    let http = h.http_port.unwrap() as u16;
    let t = Instant::now();
    assert_eq!(st.svc.visit(h.id, Duration::from_secs(60)).await.unwrap(), Some(std::net::SocketAddr::new(st.cfg.http_forward_bind, http)));
    let (status, body) = get(&format!("http://{}:{http}/note.txt", st.cfg.http_forward_bind), None).await;
    eprintln!("visit to a sleeping clone -> its file: {:?}", t.elapsed());
    assert_eq!((status, body.trim()), (200, "kept-across-stop"));
    let v = st.svc.wait_settled(user, h.id, Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!(v.state, HostingState::Running, "{:?}", v.state_reason);
    assert!(!st.svc.vm().has_managed_save(h.id).await.unwrap(), "a woken VM keeps no saved state");
    assert!(!st.svc.vm().vm_dir(h.id).join("wake.save").exists());
    assert_eq!(qemus(&name), 1);

    // A clone's snapshot keeps its memory as a delta to the golden's too, and restores from it.
    let t = Instant::now();
    let snap = st.svc.take_snapshot(user, h.id, "woken").await.unwrap();
    let v = st.svc.wait_settled(user, h.id, Duration::from_secs(180)).await.unwrap().unwrap();
    assert_eq!((v.state, v.state_reason.clone()), (HostingState::Running, None));
    let sdir = st.svc.vm().snapshot_dir(h.id, snap.id);
    let memory = std::fs::metadata(sdir.join("memory.save")).unwrap().len();
    let snap = st.svc.list_snapshots(user, h.id).await.unwrap().into_iter().find(|x| x.id == snap.id).unwrap();
    eprintln!("a clone's snapshot, taken in {:?}: memory {memory} bytes, {} bytes in all", t.elapsed(), snap.size_bytes);
    assert!(memory < 16 << 20, "{memory} bytes for a clone's snapshot memory");
    assert_eq!(snap.size_bytes as u64, std::fs::read_dir(&sdir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum::<u64>(), "the size shown is what its files take");
    ssh(&key, port, "ubuntu", "echo after-the-snapshot > /var/www/html/note.txt; sync");
    let t = Instant::now();
    st.svc.restore_snapshot(user, h.id, snap.id).await.unwrap();
    let v = st.svc.wait_settled(user, h.id, Duration::from_secs(180)).await.unwrap().unwrap();
    assert_eq!((v.state, v.state_reason.clone()), (HostingState::Running, None));
    eprintln!("a clone's snapshot restored from its delta -> running in {:?}", t.elapsed());
    let (status, body) = get(&format!("http://{nginx}/{}/note.txt", h.slug), None).await;
    assert_eq!((status, body.trim()), (200, "kept-across-stop"), "the snapshot's file is back");
    assert!(!sdir.join("memory.pipe").exists());
    assert_eq!(qemus(&name), 1);

    // A process that died after such a restore returned (paused, its pipe left): reconciliation
    // expands the delta once more to check it, then lets the guest run.
    assert!(Command::new("virsh").args(["-c", "qemu:///system", "suspend", &name]).status().unwrap().success());
    assert!(Command::new("mkfifo").arg(sdir.join("memory.pipe")).status().unwrap().success());
    assert_eq!(st.svc.vm().state(h.id).await.unwrap(), service::vm::VmState::Paused);
    st.svc.reconcile().await.unwrap();
    assert_eq!(st.svc.vm().state(h.id).await.unwrap(), service::vm::VmState::Running, "resumed once its memory checked out");
    assert!(!sdir.join("memory.pipe").exists());
    assert_eq!(get(&format!("http://{nginx}/{}/note.txt", h.slug), None).await.1.trim(), "kept-across-stop");

    // Asleep, a snapshot copies the saved memory and the disk: the site is not woken for it.
    ssh(&key, port, "ubuntu", "echo taken-asleep > /var/www/html/note.txt; sync");
    st.svc.action(user, h.id, Operation::Sleep).await.unwrap();
    assert_eq!(st.svc.wait_settled(user, h.id, Duration::from_secs(120)).await.unwrap().unwrap().state, HostingState::Sleeping);
    let t = Instant::now();
    let asleep = st.svc.take_snapshot(user, h.id, "asleep").await.unwrap();
    assert!(asleep.size_bytes < 64 << 20, "the quota counts what is copied, not the plan's memory: {}", asleep.size_bytes);
    let v = st.svc.wait_settled(user, h.id, Duration::from_secs(120)).await.unwrap().unwrap();
    eprintln!("a sleeping clone's snapshot taken in {:?}", t.elapsed());
    assert_eq!(v.state, HostingState::Sleeping, "{:?}", v.state_reason);
    assert_eq!(qemus(&name), 0, "not woken for its snapshot");
    let asleep = st.svc.list_snapshots(user, h.id).await.unwrap().into_iter().find(|x| x.id == asleep.id).unwrap();
    assert_eq!(asleep.state, service::hosting::SnapshotState::Ready);
    let memory = std::fs::metadata(st.svc.vm().snapshot_dir(h.id, asleep.id).join("memory.save")).unwrap().len();
    assert!(memory < 16 << 20, "{memory} bytes for a sleeping clone's snapshot memory");
    // An SSH connection that comes while a snapshot of the sleeping site is being taken (made
    // to last 2 s) waits it out, then wakes the site and logs in.
    st.svc.faults().set_op_delay(Duration::from_secs(2));
    st.svc.take_snapshot(user, h.id, "asleep-2").await.unwrap();
    assert_eq!(ssh(&key, port, "ubuntu", "cat /var/www/html/note.txt").trim(), "taken-asleep");
    st.svc.faults().set_op_delay(Duration::ZERO);
    let v = st.svc.wait_settled(user, h.id, Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!(v.state, HostingState::Running, "{:?}", v.state_reason);
    assert_eq!(st.svc.list_snapshots(user, h.id).await.unwrap().len(), 3);
    assert_eq!(get(&format!("http://{nginx}/{}/note.txt", h.slug), None).await, (200, "taken-asleep\n".into()));
    ssh(&key, port, "ubuntu", "echo changed-after > /var/www/html/note.txt; sync");
    st.svc.restore_snapshot(user, h.id, asleep.id).await.unwrap();
    let v = st.svc.wait_settled(user, h.id, Duration::from_secs(180)).await.unwrap().unwrap();
    assert_eq!((v.state, v.state_reason.clone()), (HostingState::Running, None));
    assert_eq!(get(&format!("http://{nginx}/{}/note.txt", h.slug), None).await.1.trim(), "taken-asleep", "the asleep snapshot's file is back");
    assert_eq!(qemus(&name), 1);

    for (user, h) in &sites {
        st.svc.action(user, h.id, Operation::Delete).await.unwrap();
        assert!(st.svc.wait_settled(user, h.id, Duration::from_secs(120)).await.unwrap().is_none());
        assert_gone(&st, h.id).await;
    }
    st.svc.proxy().stop().await.unwrap();
}

/// The domain's live `cpu_shares` (`virsh schedinfo`).
fn cpu_shares(name: &str) -> u64 {
    let out = Command::new("virsh").args(["-c", "qemu:///system", "schedinfo", name]).output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    let line = out.lines().find(|l| l.starts_with("cpu_shares")).unwrap_or_else(|| panic!("no cpu_shares for {name}: {out}"));
    line.rsplit(':').next().unwrap().trim().parse().unwrap()
}

/// How many QEMU processes run the domain `name`.
fn qemus(name: &str) -> usize {
    let out = Command::new("pgrep").args(["-fc", &format!("guest={name},")]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

// Several threads: the test's blocking ssh runs while the service's SSH waker accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "boots a real VM (qemu:///system); run by `make test`"]
async fn an_idle_site_sleeps_without_qemu_and_wakes_for_ssh_and_http_even_after_a_crash() {
    let mut s = setup("sleep");
    s.cfg.golden = false;
    s.cfg.pool_size = 0;
    s.cfg.pool_paused = 0;
    s.cfg.idle_sleep_secs = 2;
    let st = stack(s.cfg.clone(), &s.db_url).await;
    let (key, public) = keygen(s.dir.path());
    let kim = register(&st.accounts, "kim").await;
    let h = st.svc.create(&kim, CreateHosting { public_keys: vec![public], ..Default::default() }).await.unwrap();
    let h = st.svc.wait_settled(&kim, h.id, BOOT_TIMEOUT).await.unwrap().unwrap();
    assert_eq!(h.state, HostingState::Running, "{:?}", h.state_reason);
    let (http, ssh_port) = (h.http_port.unwrap() as u16, h.ssh_port.unwrap() as u16);
    let name = st.svc.vm().domain_name(h.id);
    ssh(&key, ssh_port, "ubuntu", "echo kept-asleep > /var/www/html/note.txt");

    // No visit for longer than the idle time: asleep, no QEMU process, the memory on disk.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(st.svc.sleep_idle_sites().await.unwrap(), 1);
    let v = st.svc.get(&kim, h.id).await.unwrap();
    assert_eq!(v.state, HostingState::Sleeping, "{:?}", v.state_reason);
    assert_eq!(qemus(&name), 0, "a sleeping site holds no QEMU process");
    assert!(st.svc.vm().has_managed_save(h.id).await.unwrap());

    // An SSH connection to the sleeping site wakes it, and that same connection logs in.
    let t = Instant::now();
    assert_eq!(ssh(&key, ssh_port, "ubuntu", "cat /var/www/html/note.txt").trim(), "kept-asleep");
    eprintln!("ssh to a sleeping site -> logged in and ran a command: {:?}", t.elapsed());
    let v = st.svc.wait_settled(&kim, h.id, Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!(v.state, HostingState::Running, "{:?}", v.state_reason);
    assert_eq!(qemus(&name), 1);

    // Asleep again (by hand); a visit (what nginx's backup, the waker, asks) wakes it once,
    // however many ask at once, and the site answers with the same content.
    st.svc.action(&kim, h.id, Operation::Sleep).await.unwrap();
    let v = st.svc.wait_settled(&kim, h.id, Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!(v.state, HostingState::Sleeping, "{:?}", v.state_reason);
    let t = Instant::now();
    let visits = futures::future::join_all((0..4).map(|_| st.svc.visit(h.id, Duration::from_secs(60)))).await;
    eprintln!("4 visits to a sleeping site -> all told where it runs: {:?}", t.elapsed());
    for v in visits {
        assert_eq!(v.unwrap(), Some(std::net::SocketAddr::new(st.cfg.http_forward_bind, http)));
    }
    let (status, body) = get(&format!("http://{}:{http}/note.txt", st.cfg.http_forward_bind), None).await;
    assert_eq!((status, body.trim()), (200, "kept-asleep"));
    let wakes = st.svc.events(&kim, h.id, 0).await.unwrap().into_iter().filter(|e| e.message.starts_with("Waking up")).count();
    assert_eq!(wakes, 2, "one wake for SSH, one for the four visits");

    // Killed during a sleep (the VM saved, the row not yet): after restart it is asleep.
    st.svc.vm().managed_save(h.id).await.unwrap();
    st.svc.store().pretend_abandoned(h.id, HostingState::Running, Some(Operation::Sleep)).await.unwrap();
    st.svc.reconcile().await.unwrap();
    assert_eq!(st.svc.get(&kim, h.id).await.unwrap().state, HostingState::Sleeping);
    assert_eq!(qemus(&name), 0);

    // Killed during a wake (restored, before its SSH forward): after restart it runs, once, and
    // answers on its ports.
    st.svc.vm().start(h.id, service::vm::CpuPriority::Foreground, http).await.unwrap();
    st.svc.store().pretend_abandoned(h.id, HostingState::Sleeping, Some(Operation::Wake)).await.unwrap();
    st.svc.reconcile().await.unwrap();
    assert_eq!(st.svc.get(&kim, h.id).await.unwrap().state, HostingState::Running);
    assert_eq!(qemus(&name), 1, "never two QEMUs");
    let (status, body) = get(&format!("http://{}:{http}/note.txt", st.cfg.http_forward_bind), None).await;
    assert_eq!((status, body.trim()), (200, "kept-asleep"));
    assert_eq!(ssh(&key, ssh_port, "ubuntu", "cat /var/www/html/note.txt").trim(), "kept-asleep");

    st.svc.action(&kim, h.id, Operation::Delete).await.unwrap();
    assert!(st.svc.wait_settled(&kim, h.id, Duration::from_secs(120)).await.unwrap().is_none());
    assert_gone(&st, h.id).await;
    st.svc.proxy().stop().await.unwrap();
}

/// A stack of its own (no spares, no idle sleep) with one running site of a new account `user`,
/// cloned from the golden snapshot (made first) when `golden`, else booted; and its SSH key.
async fn one_running_site(tag: &str, golden: bool, user: &str) -> (Setup, Stack, PathBuf, Actor, service::hosting::HostingView) {
    let mut s = setup(tag);
    s.cfg.golden = golden;
    s.cfg.pool_size = 0;
    s.cfg.pool_paused = 0;
    s.cfg.idle_sleep_secs = 0;
    let st = stack(s.cfg.clone(), &s.db_url).await;
    if golden {
        assert!(st.svc.fill_pool_once().await.unwrap(), "the golden snapshot was made");
    }
    let (key, public) = keygen(s.dir.path());
    let owner = register(&st.accounts, user).await;
    let h = st.svc.create(&owner, CreateHosting { public_keys: vec![public], ..Default::default() }).await.unwrap();
    let h = st.svc.wait_settled(&owner, h.id, BOOT_TIMEOUT).await.unwrap().unwrap();
    assert_eq!(h.state, HostingState::Running, "{:?}", h.state_reason);
    (s, st, key, owner, h)
}

#[tokio::test]
#[ignore = "boots a real VM (qemu:///system); run by `make test`"]
async fn a_snapshot_restores_the_old_file_and_the_running_programs_of_a_site() {
    let (_s, st, key, liv, h) = one_running_site("snap", false, "liv").await;
    let nginx = st.cfg.nginx_listen;
    let ssh_port = h.ssh_port.unwrap() as u16;
    let url = format!("http://{nginx}/{}/note.txt", h.slug);

    // The site as it is when the snapshot is taken: a file, and a program running.
    let pid = ssh(&key, ssh_port, "ubuntu", "echo before-the-snapshot > /var/www/html/note.txt; sync; nohup sleep 100000 >/dev/null 2>&1 & echo $!");
    let pid = pid.trim().to_owned();
    let t = Instant::now();
    let snap = st.svc.take_snapshot(&liv, h.id, "before").await.unwrap();
    let v = st.svc.wait_settled(&liv, h.id, Duration::from_secs(180)).await.unwrap().unwrap();
    assert_eq!((v.state, v.state_reason.clone()), (HostingState::Running, None));
    let snap = st.svc.list_snapshots(&liv, h.id).await.unwrap().into_iter().find(|x| x.id == snap.id).unwrap();
    let memory = std::fs::metadata(st.svc.vm().snapshot_dir(h.id, snap.id).join("memory.save")).unwrap().len();
    eprintln!("snapshot taken in {:?}: {} MiB ({} MiB of memory, lzop)", t.elapsed(), snap.size_bytes >> 20, memory >> 20);
    assert_eq!(snap.state, service::hosting::SnapshotState::Ready);
    assert_eq!(get(&url, None).await, (200, "before-the-snapshot\n".into()), "the site runs on after its snapshot");

    // Changed since: another file content, the program gone.
    ssh(&key, ssh_port, "ubuntu", &format!("echo changed-later > /var/www/html/note.txt; kill {pid}; sync"));
    assert_eq!(get(&url, None).await.1.trim(), "changed-later");

    let t = Instant::now();
    st.svc.restore_snapshot(&liv, h.id, snap.id).await.unwrap();
    let v = st.svc.wait_settled(&liv, h.id, Duration::from_secs(180)).await.unwrap().unwrap();
    assert_eq!((v.state, v.state_reason.clone()), (HostingState::Running, None));
    eprintln!("snapshot restored -> running in {:?}", t.elapsed());
    assert_eq!(get(&url, None).await, (200, "before-the-snapshot\n".into()), "the old file is served again through nginx");
    assert_eq!(ssh(&key, ssh_port, "ubuntu", &format!("kill -0 {pid} && echo alive")).trim(), "alive", "its memory came back too");
    assert!(!st.svc.vm().has_managed_save(h.id).await.unwrap());

    // Deleting the site deletes its snapshot.
    st.svc.action(&liv, h.id, Operation::Delete).await.unwrap();
    assert!(st.svc.wait_settled(&liv, h.id, Duration::from_secs(120)).await.unwrap().is_none());
    assert_gone(&st, h.id).await;
    assert_eq!(st.svc.snapshot_count(liv.user_id).await.unwrap(), 0);
    st.svc.proxy().stop().await.unwrap();
}

/// Whether the other end closed `c` within `within` (EOF or reset).
async fn closed_within(c: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut b = [0u8; 256];
    let until = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(until, c.read(&mut b)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue, // a banner: read on
            Err(_) => return false,
        }
    }
}

// Several threads: the test's blocking ssh runs while the service's SSH waker accepts.
/// Issue 28, items 4 and 5: a silent TCP connection keeps no site awake, and connects, scans
/// and non-SSH bytes to a sleeping site's SSH port wake nothing (held connections bounded per
/// source), while a real `ssh` login wakes it; a site whose `/` redirects wakes and runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "boots a real VM (qemu:///system); run by `make test`"]
async fn only_ssh_wakes_a_sleeping_site_and_a_site_whose_root_redirects_wakes_and_runs() {
    use base64::Engine;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;
    let mut s = setup("sshid");
    s.cfg.golden = false;
    s.cfg.pool_size = 0;
    s.cfg.pool_paused = 0;
    s.cfg.idle_sleep_secs = 2;
    s.cfg.ssh_waker_held_per_source = 2;
    let st = stack(s.cfg.clone(), &s.db_url).await;
    let (key, public) = keygen(s.dir.path());
    let kim = register(&st.accounts, "kim").await;
    let h = st.svc.create(&kim, CreateHosting { public_keys: vec![public], ..Default::default() }).await.unwrap();
    let h = st.svc.wait_settled(&kim, h.id, BOOT_TIMEOUT).await.unwrap().unwrap();
    assert_eq!(h.state, HostingState::Running, "{:?}", h.state_reason);
    let (http, ssh_port) = (h.http_port.unwrap() as u16, h.ssh_port.unwrap() as u16);
    let name = st.svc.vm().domain_name(h.id);
    let web = st.cfg.http_forward_bind;
    let wakes = || async { st.svc.events(&kim, h.id, 0).await.unwrap().into_iter().filter(|e| e.message.starts_with("Waking up")).count() };

    // `/` answers 302 (the rest of the site 200), as many frameworks' and CMSs' do.
    let conf = "server {\n listen 80 default_server;\n listen [::]:80 default_server;\n root /var/www/html;\n location = / { return 302 /welcome.html; }\n location / { try_files $uri =404; }\n}\n";
    let b64 = base64::engine::general_purpose::STANDARD.encode(conf);
    ssh(&key, ssh_port, "ubuntu", &format!("echo kept-asleep > /var/www/html/note.txt && echo {b64} | base64 -d | sudo tee /etc/nginx/sites-enabled/default >/dev/null && sudo nginx -t -q && sudo nginx -s reload && sleep 1"));
    let no_follow = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(10)).build().unwrap();
    assert_eq!(no_follow.get(format!("http://{web}:{http}/")).send().await.unwrap().status().as_u16(), 302);

    // A silent TCP connection to the SSH port is no SSH session: the idle site still sleeps.
    let mut silent = TcpStream::connect(("127.0.0.1", ssh_port)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(st.svc.sleep_idle_sites().await.unwrap(), 1, "an open silent connection kept the site awake");
    let v = st.svc.get(&kim, h.id).await.unwrap();
    assert_eq!(v.state, HostingState::Sleeping, "{:?}", v.state_reason);
    assert!(closed_within(&mut silent, Duration::from_secs(10)).await, "the VM's forward went with the VM");
    assert_eq!(qemus(&name), 0);

    // Asleep: a scan (connect, close), a client that says nothing and one that is not SSH wake
    // nothing; a third connection from the same address is over the per-source bound (2).
    drop(TcpStream::connect(("127.0.0.1", ssh_port)).await.unwrap());
    let mut quiet = TcpStream::connect(("127.0.0.1", ssh_port)).await.unwrap();
    let mut http_ish = TcpStream::connect(("127.0.0.1", ssh_port)).await.unwrap();
    http_ish.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert!(closed_within(&mut http_ish, Duration::from_secs(2)).await, "not SSH: closed");
    let _quiet2 = TcpStream::connect(("127.0.0.1", ssh_port)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut over = TcpStream::connect(("127.0.0.1", ssh_port)).await.unwrap();
    assert!(closed_within(&mut over, Duration::from_secs(2)).await, "over the per-source bound: closed at once");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(st.svc.get(&kim, h.id).await.unwrap().state, HostingState::Sleeping, "no wake");
    assert_eq!((wakes().await, qemus(&name)), (0, 0));
    assert!(closed_within(&mut quiet, Duration::from_secs(12)).await, "silence is closed, not held forever");
    assert_eq!(st.svc.get(&kim, h.id).await.unwrap().state, HostingState::Sleeping, "still no wake");
    drop(_quiet2);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A real ssh login wakes it (its identification line is passed on: the login works), and
    // the wake ends running although `/` answers 302.
    let t = Instant::now();
    assert_eq!(ssh(&key, ssh_port, "ubuntu", "cat /var/www/html/note.txt").trim(), "kept-asleep");
    eprintln!("ssh to a sleeping site -> logged in and ran a command: {:?}", t.elapsed());
    let v = st.svc.wait_settled(&kim, h.id, Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!((v.state, v.operation), (HostingState::Running, None), "{:?}", v.state_reason);
    assert_eq!(wakes().await, 1);

    // Asleep again by hand; a visit wakes it, the wake finishes (running, not destroyed as
    // "not ready") and the site serves its redirect and its pages.
    st.svc.action(&kim, h.id, Operation::Sleep).await.unwrap();
    let v = st.svc.wait_settled(&kim, h.id, Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!(v.state, HostingState::Sleeping, "{:?}", v.state_reason);
    let t = Instant::now();
    assert_eq!(st.svc.visit(h.id, Duration::from_secs(60)).await.unwrap(), Some(std::net::SocketAddr::new(web, http)));
    let v = st.svc.wait_settled(&kim, h.id, Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!((v.state, v.operation), (HostingState::Running, None), "a 302 at / is ready: {:?}", v.state_reason);
    eprintln!("a site whose / redirects: woken and running in {:?}", t.elapsed());
    assert_eq!(qemus(&name), 1);
    assert_eq!(no_follow.get(format!("http://{web}:{http}/")).send().await.unwrap().status().as_u16(), 302);
    let (status, body) = get(&format!("http://{web}:{http}/note.txt"), None).await;
    assert_eq!((status, body.trim()), (200, "kept-asleep"));

    st.svc.action(&kim, h.id, Operation::Delete).await.unwrap();
    assert!(st.svc.wait_settled(&kim, h.id, Duration::from_secs(120)).await.unwrap().is_none());
    assert_gone(&st, h.id).await;
    st.svc.proxy().stop().await.unwrap();
}

/// Whether something accepts a TCP connection at `addr` (within 3 s).
fn answers(addr: std::net::SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok()
}

/// The guest's sshd greets at `addr`.
fn ssh_greets(addr: std::net::SocketAddr) -> bool {
    use std::io::Read;
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    let mut b = [0u8; 8];
    s.read_exact(&mut b).is_ok() && &b == b"SSH-2.0-"
}

fn hmp(uri: &str, name: &str, cmd: &str) -> String {
    let out = Command::new("virsh").args(["-c", uri, "qemu-monitor-command", "--hmp", name, cmd]).output().unwrap();
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Issue 28: the HTTP forward (only nginx, the waker and the probes use it) listens on its own
/// loopback address, never on the dashboard's host (127.0.0.1), where a tenant's page would
/// get the dashboard's cookies; SSH stays on 127.0.0.1 for users. A VM that still has its HTTP
/// forward on the old address (started, or defined, before the change) gets it moved: running,
/// at reconciliation; defined, at its next boot; asleep, when it is restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "boots a real VM (qemu:///system); run by `make test`"]
async fn a_sites_http_forward_is_not_on_the_dashboards_host_and_old_vms_move_over() {
    let s = setup("fwd");
    let st = stack(s.cfg.clone(), &s.db_url).await;
    let uri = s.cfg.libvirt_uri.clone();
    let fwd = st.cfg.http_forward_bind;
    assert_eq!(fwd.to_string(), "127.0.0.2", "the default");
    let dashboard_host: std::net::IpAddr = s.cfg.public_host.parse().unwrap();
    let user = register(&st.accounts, "fay").await;
    let h = st.svc.create(&user, CreateHosting::default()).await.unwrap();
    let h = st.svc.wait_settled(&user, h.id, BOOT_TIMEOUT).await.unwrap().unwrap();
    assert_eq!(h.state, HostingState::Running, "{:?}", h.state_reason);
    let (http, ssh) = (h.http_port.unwrap() as u16, h.ssh_port.unwrap() as u16);
    let name = st.svc.vm().domain_name(h.id);
    let on = |ip: std::net::IpAddr, port: u16| std::net::SocketAddr::new(ip, port);
    let check = |when: &str| {
        assert!(!answers(on(dashboard_host, http)), "{when}: the site's HTTP forward answers on the dashboard's host");
        assert!(ssh_greets(on(dashboard_host, ssh)), "{when}: SSH is on the dashboard's host for users");
        assert!(!answers(on(fwd, ssh)), "{when}: SSH is not on the HTTP forward address");
    };
    let served = |when: &'static str| {
        let nginx = s.cfg.nginx_listen;
        async move {
            let (status, body) = get(&format!("http://{fwd}:{http}/"), None).await;
            assert!(status == 200 && body.contains("Welcome to fay"), "{when}: direct {status}");
            let (status, body) = get(&format!("http://{nginx}/fay/"), None).await;
            assert!(status == 200 && body.contains("Welcome to fay"), "{when}: through nginx {status}");
        }
    };
    check("booted");
    served("booted").await;

    // A VM started before the change: its HTTP forward on 127.0.0.1 (the attack of issue 28
    // works: the raw port answers on the dashboard's host). Reconciliation moves it.
    hmp(&uri, &name, &format!("hostfwd_remove n0 tcp:{fwd}:{http}"));
    assert_eq!(hmp(&uri, &name, &format!("hostfwd_add n0 tcp:127.0.0.1:{http}-:80")).trim(), "");
    assert!(answers(on(dashboard_host, http)), "the old layout, made by hand");
    st.svc.reconcile().await.unwrap();
    check("a running VM after reconciliation");
    served("a running VM after reconciliation").await;

    // A VM defined before the change: its definition's HTTP forward on 127.0.0.1. Its next
    // start, a restore (a stop saves it) or a boot (after a power-off), binds it on the forward
    // address, and its definition is moved too.
    let virsh = |args: &[&str]| Command::new("virsh").arg("-c").arg(&uri).args(args).output().unwrap();
    let new_rule = format!("hostfwd=tcp:{fwd}:{http}-:80");
    let old_rule = format!("hostfwd=tcp:127.0.0.1:{http}-:80");
    for (halt, halted) in [(Operation::Stop, "a restore"), (Operation::PowerOff, "a boot")] {
        st.svc.action(&user, h.id, halt).await.unwrap();
        let v = st.svc.wait_settled(&user, h.id, Duration::from_secs(180)).await.unwrap().unwrap();
        assert_eq!(v.state, HostingState::Stopped, "{:?}", v.state_reason);
        let xml = String::from_utf8(virsh(&["dumpxml", "--inactive", &name]).stdout).unwrap();
        assert!(xml.contains(&new_rule), "{xml}");
        let old = s.dir.path().join("old.xml");
        std::fs::write(&old, xml.replace(&new_rule, &old_rule)).unwrap();
        let defined = virsh(&["define", old.to_str().unwrap()]);
        assert!(defined.status.success(), "{defined:?}");
        st.svc.action(&user, h.id, Operation::Start).await.unwrap();
        let v = st.svc.wait_settled(&user, h.id, BOOT_TIMEOUT).await.unwrap().unwrap();
        assert_eq!(v.state, HostingState::Running, "{:?}", v.state_reason);
        check(halted);
        served(halted).await;
        let xml = String::from_utf8(virsh(&["dumpxml", "--inactive", &name]).stdout).unwrap();
        assert!(xml.contains(&new_rule) && !xml.contains(&old_rule), "{halted}: the definition moved too");
    }

    // Asleep and woken by a visit: the restore binds the forward address.
    st.svc.action(&user, h.id, Operation::Sleep).await.unwrap();
    let v = st.svc.wait_settled(&user, h.id, Duration::from_secs(180)).await.unwrap().unwrap();
    assert_eq!(v.state, HostingState::Sleeping, "{:?}", v.state_reason);
    assert_eq!(st.svc.visit(h.id, Duration::from_secs(120)).await.unwrap(), Some(on(fwd, http)));
    let v = st.svc.wait_settled(&user, h.id, Duration::from_secs(120)).await.unwrap().unwrap();
    assert_eq!(v.state, HostingState::Running, "{:?}", v.state_reason);
    check("woken");
    served("woken").await;

    st.svc.action(&user, h.id, Operation::Delete).await.unwrap();
    assert!(st.svc.wait_settled(&user, h.id, Duration::from_secs(120)).await.unwrap().is_none());
    assert_gone(&st, h.id).await;
    st.svc.proxy().stop().await.unwrap();
}

/// Retries `f` (the guest agent may still be starting) until it succeeds; how long the
/// successful call took.
async fn timed_until_ok<F, Fut>(what: &str, patience: Duration, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = service::Result<()>>,
{
    let until = Instant::now() + patience;
    loop {
        let t = Instant::now();
        match f().await {
            Ok(()) => return t.elapsed(),
            Err(e) if Instant::now() < until => {
                eprintln!("{what}: {e} (retrying)");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// Stops and starts a site; how long the two took.
async fn stop_start(st: &Stack, user: &Actor, id: i32) -> Duration {
    let t = Instant::now();
    for (op, want) in [(Operation::Stop, HostingState::Stopped), (Operation::Start, HostingState::Running)] {
        st.svc.action(user, id, op).await.unwrap();
        let v = st.svc.wait_settled(user, id, Duration::from_secs(180)).await.unwrap().unwrap();
        assert_eq!(v.state, want, "{:?}", v.state_reason);
    }
    t.elapsed()
}

/// Puts a site to sleep, then wakes it with a visit; how long the visit waited for the site.
async fn sleep_wake(st: &Stack, user: &Actor, id: i32) -> Duration {
    st.svc.action(user, id, Operation::Sleep).await.unwrap();
    let v = st.svc.wait_settled(user, id, Duration::from_secs(120)).await.unwrap().unwrap();
    assert_eq!(v.state, HostingState::Sleeping, "{:?}", v.state_reason);
    let t = Instant::now();
    assert!(st.svc.visit(id, Duration::from_secs(60)).await.unwrap().is_some(), "the visit reaches the woken site");
    let took = t.elapsed();
    let v = st.svc.wait_settled(user, id, Duration::from_secs(120)).await.unwrap().unwrap();
    assert_eq!(v.state, HostingState::Running, "{:?}", v.state_reason);
    took
}

/// Issue 28, item 1: a tenant makes `chpasswd` hang in their VM, so their guest agent never
/// finishes a password call. Their calls answer `guest_timeout` within the setting (a pile of
/// them too), their site stays as it was, and meanwhile another tenant's password call,
/// stop/start and wake keep their normal latency.
#[tokio::test]
#[ignore = "boots two real VMs (qemu:///system); run by `make test`"]
async fn a_tenant_whose_guest_agent_hangs_holds_up_no_one_else() {
    const TIMEOUT: Duration = Duration::from_secs(4);
    let mut s = setup("stuck");
    s.cfg.guest_call_timeout_secs = TIMEOUT.as_secs();
    let st = stack(s.cfg.clone(), &s.db_url).await;
    let (ann, bob) = (register(&st.accounts, "ann").await, register(&st.accounts, "bob").await);
    let (key, public) = keygen(s.dir.path());
    let mut sites = Vec::new();
    for user in [&ann, &bob] {
        sites.push(st.svc.create(user, CreateHosting { public_keys: vec![public.clone()], ..Default::default() }).await.unwrap());
    }
    for (user, h) in [&ann, &bob].into_iter().zip(sites.iter_mut()) {
        *h = st.svc.wait_settled(user, h.id, BOOT_TIMEOUT).await.unwrap().unwrap();
        assert_eq!(h.state, HostingState::Running, "{:?}", h.state_reason);
    }
    let (a, b) = (sites[0].clone(), sites[1].clone());
    let pw = "correct horse battery";

    // Quiet baselines: both agents answer; bob's password call and stop/start.
    timed_until_ok("ann's first password", Duration::from_secs(120), || st.svc.set_console_password(&ann, a.id, pw, pw)).await;
    timed_until_ok("bob's first password", Duration::from_secs(120), || st.svc.set_console_password(&bob, b.id, pw, pw)).await;
    let base_pw = timed_until_ok("bob's password", Duration::from_secs(30), || st.svc.set_console_password(&bob, b.id, pw, pw)).await;
    let base_cycle = stop_start(&st, &bob, b.id).await;
    let base_wake = sleep_wake(&st, &bob, b.id).await;
    timed_until_ok("bob's password after a start", Duration::from_secs(60), || st.svc.set_console_password(&bob, b.id, pw, pw)).await;
    eprintln!("quiet: bob's password {base_pw:?}, stop+start {base_cycle:?}, wake {base_wake:?}");

    // Ann, root in her VM, makes chpasswd hang: the agent waits for it and answers nothing.
    let a_port = a.ssh_port.unwrap() as u16;
    ssh(&key, a_port, "ubuntu", "printf '#!/bin/sh\\nexec sleep 3600\\n' | sudo tee /usr/local/sbin/chpasswd >/dev/null && sudo chmod 755 /usr/local/sbin/chpasswd && sudo mount --bind /usr/local/sbin/chpasswd /usr/sbin/chpasswd");

    // Her calls keep coming, three at a time: each answers guest_timeout in time.
    let stop_pile = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pile = tokio::spawn({
        let (svc, ann, id, stop) = (st.svc.clone(), ann, a.id, stop_pile.clone());
        async move {
            let mut answers = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let batch: Vec<_> = (0..3)
                    .map(|_| {
                        let svc = svc.clone();
                        tokio::spawn(async move {
                            let t = Instant::now();
                            let r = tokio::time::timeout(Duration::from_secs(60), svc.set_console_password(&ann, id, pw, pw)).await;
                            (r.map(|r| r.map_err(|e| e.code())), t.elapsed())
                        })
                    })
                    .collect();
                for c in batch {
                    answers.push(c.await.unwrap());
                }
            }
            answers
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Meanwhile bob: his password calls and his stop/start at their quiet pace.
    let mut busy_pw = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        st.svc.set_console_password(&bob, b.id, pw, pw).await.expect("bob's password while ann's agent hangs");
        busy_pw.push(t.elapsed());
    }
    let busy_cycle = stop_start(&st, &bob, b.id).await;
    let busy_wake = sleep_wake(&st, &bob, b.id).await;
    stop_pile.store(true, std::sync::atomic::Ordering::Relaxed);
    eprintln!("ann stuck: bob's passwords {busy_pw:?}, stop+start {busy_cycle:?}, wake {busy_wake:?}");
    busy_pw.sort();
    assert!(busy_pw[1] < base_pw * 3 + Duration::from_secs(2), "bob's passwords took {busy_pw:?} (quiet: {base_pw:?})");
    assert!(busy_cycle < base_cycle * 2 + Duration::from_secs(5), "bob's stop+start took {busy_cycle:?} (quiet: {base_cycle:?})");
    assert!(busy_wake < base_wake * 2 + Duration::from_secs(3), "bob's wake took {busy_wake:?} (quiet: {base_wake:?})");

    let answers = pile.await.unwrap();
    eprintln!("ann's calls: {} answered, the slowest in {:?}", answers.len(), answers.iter().map(|a| a.1).max());
    assert!(answers.len() >= 6);
    for (r, took) in answers {
        let r = r.unwrap_or_else(|_| panic!("ann's call still open after {took:?}"));
        assert_eq!(r, Err("guest_timeout"), "ann's call");
        assert!(took < TIMEOUT + Duration::from_secs(2), "ann's call answered after {took:?}");
    }
    // Later ones too, and her site is as it was: running, no operation, serving.
    let t = Instant::now();
    let r = st.svc.set_console_password(&ann, a.id, pw, pw).await;
    assert!(matches!(r, Err(service::Error::GuestTimeout(_))), "{r:?}");
    assert!(t.elapsed() < TIMEOUT + Duration::from_secs(2), "{:?}", t.elapsed());
    let v = st.svc.get(&ann, a.id).await.unwrap();
    assert_eq!((v.state, v.operation), (HostingState::Running, None));
    let (status, _) = get(&format!("http://{}/{}/", s.cfg.nginx_listen, a.slug), None).await;
    assert_eq!(status, 200, "ann's site still serves");
    st.svc.proxy().stop().await.unwrap();
}

/// Issue 28, item 2: nobody reads the guest's serial line (its getty stopped). Input pushed at
/// its console is taken only up to the session's small budget, then waits (the WebSocket's
/// reader stops reading); once something in the guest reads the line, it flows again.
#[tokio::test]
#[ignore = "boots a real VM (qemu:///system); run by `make test`"]
async fn console_input_waits_while_the_guest_does_not_read_it() {
    use service::hosting::{ConsoleInput, ConsoleOutput, ConsoleStatus};
    use service::vm::{INPUT_BUDGET, Typed};
    use std::sync::atomic::{AtomicUsize, Ordering};
    const FRAME: usize = 64 * 1024;
    let s = setup("flood");
    let st = stack(s.cfg.clone(), &s.db_url).await;
    let user = register(&st.accounts, "flo").await;
    let (key, public) = keygen(s.dir.path());
    let h = st.svc.create(&user, CreateHosting { public_keys: vec![public], ..Default::default() }).await.unwrap();
    let h = st.svc.wait_settled(&user, h.id, BOOT_TIMEOUT).await.unwrap().unwrap();
    assert_eq!(h.state, HostingState::Running, "{:?}", h.state_reason);
    // No getty on the line (it would echo, and the echo goes at the line's baud rate). The
    // guest reads nothing while its vCPUs are paused (running, its kernel drains the serial
    // line at the UART's pace, ~30 KiB/s under TCG, whether a program reads it or not).
    let virsh = |verb: &str| {
        let out = Command::new("virsh").arg("-c").arg(&s.cfg.libvirt_uri).arg(verb).arg(st.svc.vm().domain_name(h.id)).output().unwrap();
        assert!(out.status.success(), "virsh {verb}: {}", String::from_utf8_lossy(&out.stderr));
    };

    ssh(&key, h.ssh_port.unwrap() as u16, "ubuntu", "sudo systemctl stop serial-getty@ttyS0.service");
    let session = st.svc.attach_console(&user, h.id).await.unwrap();
    let (mut output, input, budget) = (session.output, session.input, session.budget);
    let connected = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(o) = output.recv().await {
            if matches!(o, ConsoleOutput::Status(ConsoleStatus::Connected)) {
                return true;
            }
        }
        false
    });
    assert!(connected.await.unwrap_or(false), "the console connects");
    tokio::spawn(async move { while output.recv().await.is_some() {} });
    virsh("suspend");

    // Push 64 MiB as fast as the session takes it.
    let pushed = Arc::new(AtomicUsize::new(0));
    let pusher = tokio::spawn({
        let (pushed, budget) = (pushed.clone(), budget.clone());
        async move {
            while pushed.load(Ordering::Relaxed) < 64 << 20 {
                let room = budget.room(FRAME).await;
                if input.send(ConsoleInput::Data(Typed::new(vec![b'a'; FRAME], room))).await.is_err() {
                    break;
                }
                pushed.fetch_add(FRAME, Ordering::Relaxed);
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(8)).await;
    let stalled = pushed.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let later = pushed.load(Ordering::Relaxed);
    let slow = later - stalled;
    eprintln!(
        "taken while the guest reads nothing: {} KiB, {} KiB more in 5 s; queued in the session: {} KiB",
        stalled >> 10, slow >> 10, budget.queued() >> 10
    );
    // Unbounded, all 64 MiB went in well under a second.
    assert!(later < 2 << 20, "{} KiB taken from a client whose guest reads nothing", later >> 10);
    assert!(slow <= FRAME, "still taking input: {} KiB in 5 s", slow >> 10);
    assert!(budget.queued() <= INPUT_BUDGET);
    assert!(!pusher.is_finished());

    // The guest reads again: the input flows.
    virsh("resume");
    tokio::time::sleep(Duration::from_secs(20)).await;
    let flowed = pushed.load(Ordering::Relaxed) - later;
    eprintln!("once the guest reads: {} KiB in 20 s", flowed >> 10);
    assert!(flowed >= 2 * FRAME, "only {} KiB taken in 20 s once the guest reads", flowed >> 10);
    pusher.abort();
    st.svc.proxy().stop().await.unwrap();
}

/// What `debugfs` reads at `path` in the ext4 root filesystem of the qcow2 image `disk` (the
/// guest's root is the whole disk: `root=/dev/vda`), through a raw copy of it in `scratch`.
fn read_in_disk(disk: &Path, path: &str, scratch: &Path) -> String {
    let raw = scratch.join("disk.raw");
    let out = Command::new("qemu-img").args(["convert", "-f", "qcow2", "-O", "raw"]).arg(disk).arg(&raw).output().unwrap();
    assert!(out.status.success(), "qemu-img convert: {}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new("debugfs").args(["-R", &format!("cat {path}")]).arg(&raw).output().expect("debugfs (e2fsprogs)");
    let _ = std::fs::remove_file(&raw);
    assert!(out.status.success(), "debugfs: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Issue 31, the VM layer of a backup: a running site is captured with its filesystems frozen
/// for well under 2 s, serves and writes on afterwards, and the captured disk, rebased onto its
/// base at another path, holds the file it had just written (read with debugfs, no VM needed);
/// a sleeping site is captured with its memory (a delta to its golden's) and is not woken; a
/// site whose guest agent is gone gives the typed error, nothing copied, and runs on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "boots a real VM (qemu:///system); run by `make test`"]
async fn a_backup_capture_freezes_a_running_site_briefly_and_copies_a_sleeping_one_without_waking_it() {
    use service::vm::{BaseKind, CaptureOpts, CapturedFrom, MemoryForm, VmError, VmState};
    let (s, st, key, cara, h) = one_running_site("cap", true, "cara").await;
    let nginx = st.cfg.nginx_listen;
    let ssh_port = h.ssh_port.unwrap() as u16;
    let url = format!("http://{nginx}/{}/cap.txt", h.slug);
    let vm = st.svc.vm();
    let staging = |n: &str| {
        let p = s.dir.path().join(n);
        std::fs::create_dir_all(&p).unwrap();
        p
    };
    // Written and not synced: the freeze itself must bring it to the disk.
    ssh(&key, ssh_port, "ubuntu", "echo captured-while-running > /var/www/html/cap.txt");
    // Writing in the guest, bounded: a filesystem left frozen would hang it.
    let writes = |what: &str| {
        let cmd = format!("timeout 20 sh -c 'echo {what} > /var/www/html/after.txt && sync' && cat /var/www/html/after.txt");
        assert_eq!(ssh(&key, ssh_port, "ubuntu", &cmd).trim(), what, "the guest writes again: thawed");
    };

    // Running: frozen briefly, no memory, still serving and writing.
    let dir = staging("running");
    let c = vm.capture_for_backup(h.id, cara.user_id, &dir, CaptureOpts::default()).await.unwrap();
    eprintln!("running site captured: frozen {:?}, {} KiB, base {}", c.frozen_for, c.bytes >> 10, c.base.id);
    assert_eq!((c.from, c.memory.is_none(), c.base.kind), (CapturedFrom::Running, true, BaseKind::Golden));
    assert!(c.frozen_for.unwrap() < Duration::from_secs(2), "{:?}", c.frozen_for);
    assert_eq!(vm.state(h.id).await.unwrap(), VmState::Running);
    assert_eq!(get(&url, None).await, (200, "captured-while-running\n".into()), "the site serves on");
    writes("thawed-after-capture");
    // Its base is needed once: the golden's disk and memory, and the image's base.
    let base_files = vm.base_files(&c.base);
    assert_eq!(base_files[0], c.base.disk);
    assert!(base_files.iter().any(|p| p.ends_with("state.save")) && base_files.iter().any(|p| p.ends_with("base.qcow2")), "{base_files:?}");

    // The captured disk, its base restored at another path, holds the file.
    let restored = staging("restored");
    let moved = restored.join("golden-disk.qcow2");
    assert!(Command::new("cp").arg("--reflink=auto").arg(&c.base.disk).arg(&moved).status().unwrap().success());
    service::vm::rebase_overlay(&c.disk, &moved).await.unwrap();
    assert_eq!(read_in_disk(&c.disk, "/var/www/html/cap.txt", &restored), "captured-while-running\n");

    // Asleep: its memory and disk copied, and it sleeps on.
    st.svc.action(&cara, h.id, Operation::Sleep).await.unwrap();
    let v = st.svc.wait_settled(&cara, h.id, Duration::from_secs(120)).await.unwrap().unwrap();
    assert_eq!(v.state, HostingState::Sleeping, "{:?}", v.state_reason);
    let saved = PathBuf::from(format!("/var/lib/libvirt/qemu/save/{}.save", vm.domain_name(h.id)));
    let dir = staging("sleeping");
    let c2 = vm.capture_for_backup(h.id, cara.user_id, &dir, CaptureOpts::default()).await.unwrap();
    let (mem, form) = c2.memory.clone().expect("a sleeping site's memory is captured");
    eprintln!("sleeping site captured: {} KiB with memory as {form:?}", c2.bytes >> 10);
    assert_eq!((c2.from, c2.frozen_for, &c2.base), (CapturedFrom::Saved, None, &c.base));
    match &form {
        MemoryForm::Delta { golden, reference } => assert!(golden == &c.base.id && base_files.contains(reference), "{form:?}"),
        other => panic!("a clone's saved memory is a delta to its golden's, not {other:?}"),
    }
    assert_eq!(std::fs::read(&mem).unwrap(), std::fs::read(&saved).unwrap(), "the saved memory as it is");
    assert_eq!(vm.state(h.id).await.unwrap(), VmState::ShutOff, "not woken");
    assert!(vm.has_managed_save(h.id).await.unwrap());
    assert_eq!(st.svc.wait_settled(&cara, h.id, Duration::from_secs(5)).await.unwrap().unwrap().state, HostingState::Sleeping);

    // Woken. A copy that outlasts its bound is abandoned, the guest thawed.
    assert!(st.svc.visit(h.id, Duration::from_secs(60)).await.unwrap().is_some(), "the visit wakes it");
    let v = st.svc.wait_settled(&cara, h.id, Duration::from_secs(120)).await.unwrap().unwrap();
    assert_eq!(v.state, HostingState::Running, "{:?}", v.state_reason);
    let dir = staging("too-long");
    let r = vm.capture_for_backup(h.id, cara.user_id, &dir, CaptureOpts { copy_within: Duration::ZERO, ..CaptureOpts::default() }).await;
    assert!(matches!(r, Err(VmError::FrozenTooLong { .. })), "{r:?}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no part of the copy left");
    writes("thawed-after-an-abandoned-copy");

    // Frozen already (by someone else): the agent refuses a second freeze, typed; the thaw
    // sent on every path thaws it.
    let out = Command::new("virsh").args(["-c", &st.cfg.libvirt_uri, "domfsfreeze", &vm.domain_name(h.id)]).output().unwrap();
    assert!(out.status.success(), "virsh domfsfreeze: {}", String::from_utf8_lossy(&out.stderr));
    let r = vm.capture_for_backup(h.id, cara.user_id, &staging("frozen-twice"), CaptureOpts::default()).await;
    assert!(matches!(r, Err(VmError::FreezeFailed { .. })), "{r:?}");
    writes("thawed-after-a-refused-freeze");

    // Its guest agent stopped: the freeze fails, typed, nothing is copied, it runs on.
    ssh(&key, ssh_port, "ubuntu", "sudo systemctl stop qemu-guest-agent");
    let dir = staging("no-agent");
    let t = Instant::now();
    let r = vm.capture_for_backup(h.id, cara.user_id, &dir, CaptureOpts::default()).await;
    eprintln!("capture without an agent: {:?} in {:?}", r.as_ref().err(), t.elapsed());
    assert!(matches!(r, Err(VmError::FreezeFailed { .. })), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no unfrozen disk copied");
    assert_eq!(vm.state(h.id).await.unwrap(), VmState::Running);
    assert_eq!(get(&url, None).await, (200, "captured-while-running\n".into()));
    writes("still-writable");

    st.svc.action(&cara, h.id, Operation::Delete).await.unwrap();
    assert!(st.svc.wait_settled(&cara, h.id, Duration::from_secs(120)).await.unwrap().is_none());
    st.svc.proxy().stop().await.unwrap();
}

/// Issue 31, "Back up now": a running site's backup succeeds while it serves on, and the
/// repository alone gives back its disk (the overlay and the base stored once, rebased at the
/// restore's paths) holding the file it had just written; a sleeping site is backed up with its
/// memory without waking; an unchanged site's next backup adds under 1 MiB. Prints the timings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "boots a real VM (qemu:///system); run by `make test`"]
async fn back_up_now_stores_a_running_site_restorably_and_a_sleeping_one_without_waking_it() {
    use service::backup::{Restic, SnapshotFilter, SnapshotId, Tag};
    use service::hosting::{BackupSource, BackupState, BackupView};
    use service::vm::VmState;
    let (s, st, key, bea, h) = one_running_site("bak", true, "bea").await;
    let ssh_port = h.ssh_port.unwrap() as u16;
    let url = format!("http://{}/{}/bak.txt", st.cfg.nginx_listen, h.slug);
    ssh(&key, ssh_port, "ubuntu", "echo backed-up-while-running > /var/www/html/bak.txt");
    let done = |b: BackupView| {
        let svc = st.svc.clone();
        let bea = bea.clone();
        async move {
            let t = Instant::now();
            loop {
                let now = svc.get_backup(&bea, h.id, b.id).await.unwrap();
                if now.state != BackupState::Running {
                    svc.wait_settled(&bea, h.id, Duration::from_secs(60)).await.unwrap();
                    return now;
                }
                assert!(t.elapsed() < Duration::from_secs(300), "backup {} still running", b.id);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };

    let t = Instant::now();
    let b1 = done(st.svc.back_up(&bea, h.id, false).await.unwrap()).await;
    let first = t.elapsed();
    assert_eq!(b1.state, BackupState::Succeeded, "{:?}", b1.error);
    assert_eq!((b1.captured_from, b1.with_memory), (Some(BackupSource::Running), false));
    assert_eq!(st.svc.vm().state(h.id).await.unwrap(), VmState::Running);
    assert_eq!(get(&url, None).await, (200, "backed-up-while-running\n".into()), "the site serves on");
    let t = Instant::now();
    let b2 = done(st.svc.back_up(&bea, h.id, false).await.unwrap()).await;
    let second = t.elapsed();
    assert_eq!(b2.state, BackupState::Succeeded, "{:?}", b2.error);
    eprintln!(
        "TIMING backup of a running site: first {first:?} ({} KiB added of {} KiB), second {second:?} ({} KiB added)",
        b1.bytes_added.unwrap() >> 10,
        b1.bytes_total.unwrap() >> 10,
        b2.bytes_added.unwrap() >> 10
    );

    // From the repository alone: the site's snapshot and its base, rebased where restored.
    let restic = Restic::new(st.cfg.backup_repo_settings()).unwrap();
    let target = s.dir.path().join("restored");
    let snap = SnapshotId::parse(b1.snapshot_id.clone().unwrap()).unwrap();
    restic.restore(&snap, &target, None).await.unwrap();
    let base_id = b1.base_id.clone().unwrap();
    let base_tags = [Tag::parse(format!("base-{base_id}")).unwrap(), Tag::parse("kind-base").unwrap()];
    let bases = restic.snapshots(&SnapshotFilter::tagged(base_tags)).await.unwrap();
    assert_eq!(bases.len(), 1, "the base is stored once");
    restic.restore(&SnapshotId::parse(bases[0].id.clone()).unwrap(), &target, None).await.unwrap();
    let at = |p: &Path| target.join(p.strip_prefix("/").unwrap());
    let staging = st.cfg.data_dir.join("backups/staging").join(b1.id.to_string());
    let disk = at(&staging.join("disk.qcow2"));
    let golden_disk = bases[0].paths.iter().map(PathBuf::from).find(|p| p.ends_with("disk.qcow2")).expect("the golden's disk");
    let image_base = bases[0].paths.iter().map(PathBuf::from).find(|p| p.ends_with("base.qcow2")).expect("the image's base");
    service::vm::rebase_overlay(&at(&golden_disk), &at(&image_base)).await.unwrap();
    service::vm::rebase_overlay(&disk, &at(&golden_disk)).await.unwrap();
    assert_eq!(read_in_disk(&disk, "/var/www/html/bak.txt", &target), "backed-up-while-running\n");

    // Asleep: backed up with its memory, not woken; unchanged, the next one adds little.
    st.svc.action(&bea, h.id, Operation::Sleep).await.unwrap();
    let v = st.svc.wait_settled(&bea, h.id, Duration::from_secs(120)).await.unwrap().unwrap();
    assert_eq!(v.state, HostingState::Sleeping, "{:?}", v.state_reason);
    let t = Instant::now();
    let b3 = done(st.svc.back_up(&bea, h.id, false).await.unwrap()).await;
    let third = t.elapsed();
    assert_eq!(b3.state, BackupState::Succeeded, "{:?}", b3.error);
    assert_eq!((b3.captured_from, b3.with_memory), (Some(BackupSource::Saved), true));
    assert_eq!(st.svc.vm().state(h.id).await.unwrap(), VmState::ShutOff, "not woken");
    let t = Instant::now();
    let b4 = done(st.svc.back_up(&bea, h.id, false).await.unwrap()).await;
    let fourth = t.elapsed();
    assert_eq!(b4.state, BackupState::Succeeded, "{:?}", b4.error);
    eprintln!(
        "TIMING backup of a sleeping site: first {third:?} ({} KiB added of {} KiB), unchanged again {fourth:?} ({} KiB added)",
        b3.bytes_added.unwrap() >> 10,
        b3.bytes_total.unwrap() >> 10,
        b4.bytes_added.unwrap() >> 10
    );
    assert!(b4.bytes_added.unwrap() < 1 << 20, "an unchanged site's backup adds under 1 MiB: {b4:?}");
    let v = st.svc.wait_settled(&bea, h.id, Duration::from_secs(5)).await.unwrap().unwrap();
    assert_eq!(v.state, HostingState::Sleeping, "still asleep");
    assert_eq!(st.svc.vm().state(h.id).await.unwrap(), VmState::ShutOff);

    st.svc.action(&bea, h.id, Operation::Delete).await.unwrap();
    assert!(st.svc.wait_settled(&bea, h.id, Duration::from_secs(120)).await.unwrap().is_none());
    st.svc.proxy().stop().await.unwrap();
}

/// Restoring a backup (issue 31) on a real site: it serves file v1, is backed up (disk only,
/// frozen), changes to v2, and a restore in place brings back v1 (booted cold from the
/// backup's disk), with the snapshot of its v2 state kept to undo it; the download of the
/// backup is one standalone qcow2 (`qemu-img check` passes, no backing file). Prints timings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "boots a real VM (qemu:///system); run by `make test`"]
async fn restore_in_place_serves_the_backups_file_again_and_the_download_is_standalone() {
    use service::hosting::{BackupState, BackupView};
    use vmw_types::RestoreTarget;
    let (_s, st, key, rea, h) = one_running_site("rst", true, "rea").await;
    let ssh_port = h.ssh_port.unwrap() as u16;
    let url = format!("http://{}/{}/v.txt", st.cfg.nginx_listen, h.slug);
    ssh(&key, ssh_port, "ubuntu", "echo v1 > /var/www/html/v.txt && sync");
    assert_eq!(get(&url, None).await, (200, "v1\n".into()));
    let done = |b: BackupView| backup_ended(&st.svc, &rea, h.id, b);
    let b = done(st.svc.back_up(&rea, h.id, false).await.unwrap()).await;
    assert_eq!(b.state, BackupState::Succeeded, "{:?}", b.error);
    ssh(&key, ssh_port, "ubuntu", "echo v2 > /var/www/html/v.txt && sync");
    assert_eq!(get(&url, None).await, (200, "v2\n".into()));

    let t = Instant::now();
    st.svc.restore_backup(&rea, h.id, b.id, RestoreTarget::InPlace).await.unwrap();
    let v = st.svc.wait_settled(&rea, h.id, Duration::from_secs(300)).await.unwrap().unwrap();
    let in_place = t.elapsed();
    assert_eq!((v.state, v.state_reason.clone()), (HostingState::Running, None), "{:?}", v.state_reason);
    assert_eq!(get(&url, None).await, (200, "v1\n".into()), "the backup's file is served again");
    let snaps = st.svc.list_snapshots(&rea, h.id).await.unwrap();
    assert!(snaps.iter().any(|s| s.name == format!("before restoring backup {}", b.id)), "the state before is kept: {snaps:?}");

    let t = Instant::now();
    let d = st.svc.download_backup(&rea, h.id, b.id).await.unwrap();
    let download = t.elapsed();
    let info = std::process::Command::new("qemu-img").args(["info", "--output=json"]).arg(&d.path).output().unwrap();
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    assert!(info.contains("\"format\": \"qcow2\"") && !info.contains("backing-filename"), "{info}");
    let check = std::process::Command::new("qemu-img").args(["check", "-q"]).arg(&d.path).status().unwrap();
    assert!(check.success(), "qemu-img check passes");
    eprintln!("TIMING restore in place of a running site (snapshot first, cold boot): {in_place:?}; download prepared ({} MiB) in {download:?}", d.len >> 20);
    drop(d);

    st.svc.action(&rea, h.id, Operation::Delete).await.unwrap();
    assert!(st.svc.wait_settled(&rea, h.id, Duration::from_secs(120)).await.unwrap().is_none());
    st.svc.proxy().stop().await.unwrap();
}

/// Restoring a backup as a new site (issue 31) on a real site: it serves file v1, is backed
/// up without memory, changes to v2, is backed up with its memory, changes to v3. The backup
/// with memory restored as a new site comes back running from that memory (no boot) and serves
/// v2; the one without is booted cold and serves v1; each under its new name with its own SSH
/// host key, while the old site serves v3. Prints both times to the new site's page answering
/// (the issue's goal: <= 10 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "boots a real VM (qemu:///system); run by `make test`"]
async fn restore_as_a_new_site_serves_the_backups_file_under_its_new_name() {
    use service::hosting::{BackupState, BackupView};
    use vmw_types::RestoreTarget;
    let (_s, st, key, ren, h) = one_running_site("rsn", true, "ren").await;
    let ssh_port = h.ssh_port.unwrap() as u16;
    let url = |slug: &str| format!("http://{}/{slug}/v.txt", st.cfg.nginx_listen);
    let done = |b: BackupView| backup_ended(&st.svc, &ren, h.id, b);
    ssh(&key, ssh_port, "ubuntu", "echo v1 > /var/www/html/v.txt && sync");
    let cold = done(st.svc.back_up(&ren, h.id, false).await.unwrap()).await;
    assert_eq!(cold.state, BackupState::Succeeded, "{:?}", cold.error);
    ssh(&key, ssh_port, "ubuntu", "echo v2 > /var/www/html/v.txt && sync");
    let warm = done(st.svc.back_up(&ren, h.id, true).await.unwrap()).await;
    assert_eq!(warm.state, BackupState::Succeeded, "{:?}", warm.error);
    assert!(warm.with_memory, "a running site's backup with its memory");
    ssh(&key, ssh_port, "ubuntu", "echo v3 > /var/www/html/v.txt && sync");
    let keys = |port: i32| {
        let out = std::process::Command::new("ssh-keyscan").args(["-t", "ed25519", "-p", &port.to_string(), "127.0.0.1"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().map(|l| l.split_whitespace().last().unwrap_or("").to_owned()).collect::<Vec<_>>()
    };
    let old_key = keys(h.ssh_port.unwrap());
    let mut made = Vec::new();
    let mut timings = Vec::new();
    for (b, slug, want, how) in [(&warm, None, "v2\n", "from the backup's memory"), (&cold, Some("rsn-cold"), "v1\n", "cold boot of the backup's disk")] {
        let t = Instant::now();
        let new = st.svc.restore_backup(&ren, h.id, b.id, RestoreTarget::NewSite { slug: slug.map(str::to_owned) }).await.unwrap();
        let v = st.svc.wait_settled(&ren, new.id, Duration::from_secs(300)).await.unwrap().expect("the new site is kept");
        assert_eq!(v.state, HostingState::Running, "{:?}", v.state_reason);
        let answering = loop {
            if get(&url(&new.slug), None).await.0 == 200 {
                break t.elapsed();
            }
            assert!(t.elapsed() < Duration::from_secs(300), "the new site's page never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        made.push(new.id);
        assert_eq!(get(&url(&new.slug), None).await, (200, want.into()), "the new site serves the backup's file ({how})");
        let new_key = keys(v.ssh_port.unwrap());
        assert!(!new_key.is_empty() && new_key != old_key, "its own SSH host key ({how}): {old_key:?} {new_key:?}");
        let events = st.svc.events(&ren, new.id, 0).await.unwrap();
        let from_memory = events.iter().any(|e| e.message.starts_with("Restored running from the backup's memory"));
        assert_eq!(from_memory, b.with_memory, "restored from memory only when the backup has it: {events:?}");
        timings.push(format!("TIMING restore as a new site, to its page answering ({how}): {answering:?}"));
    }
    assert_eq!(get(&url(&h.slug), None).await, (200, "v3\n".into()), "the old one what it had");
    for t in &timings {
        eprintln!("{t}");
    }

    for id in made.into_iter().chain([h.id]) {
        st.svc.action(&ren, id, Operation::Delete).await.unwrap();
        assert!(st.svc.wait_settled(&ren, id, Duration::from_secs(120)).await.unwrap().is_none());
    }
    st.svc.proxy().stop().await.unwrap();
}

/// Backup `b` of site `id` once it ended (and the site's operation with it).
async fn backup_ended(svc: &service::hosting::HostingService, a: &Actor, id: i32, b: service::hosting::BackupView) -> service::hosting::BackupView {
    let t = Instant::now();
    loop {
        let now = svc.get_backup(a, id, b.id).await.unwrap();
        if now.state != service::hosting::BackupState::Running {
            svc.wait_settled(a, id, Duration::from_secs(60)).await.unwrap();
            return now;
        }
        assert!(t.elapsed() < Duration::from_secs(300), "backup {} still running", b.id);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `make bench-backup` (a release build; not part of `make test`): backups and restores of
/// real VMs (clones of the golden snapshot) into a fresh local repository, as a table. The
/// 1,000-site projection's assumptions are printed with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: make bench-backup"]
async fn bench_backup() {
    use service::hosting::{BackupState, BackupView};
    use vmw_types::RestoreTarget;
    let (_s, st, key, u, h) = one_running_site("bkb", true, "bkb").await;
    let svc = &st.svc;
    let mib = |b: Option<i64>| b.unwrap_or(0) as f64 / (1 << 20) as f64;
    // What the repository takes on disk (restic's figure is before compression).
    let repo = st.cfg.data_dir.join("backups/repository");
    fn dir_bytes(p: &Path) -> u64 {
        std::fs::read_dir(p).map_or(0, |d| {
            d.flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => dir_bytes(&e.path()),
                    _ => e.metadata().map_or(0, |m| m.len()),
                })
                .sum()
        })
    }
    let timed = |id: i32| {
        let (svc, u, repo) = (svc, &u, repo.clone());
        async move {
            let before = dir_bytes(&repo);
            let t = Instant::now();
            let b: BackupView = backup_ended(svc, u, id, svc.back_up(u, id, false).await.unwrap()).await;
            assert_eq!(b.state, BackupState::Succeeded, "{:?}", b.error);
            let stored = (dir_bytes(&repo) - before) as f64 / (1 << 20) as f64;
            (t.elapsed().as_secs_f64(), b, stored)
        }
    };
    ssh(&key, h.ssh_port.unwrap() as u16, "ubuntu", "echo bench > /var/www/html/v.txt && sync");
    // The repository's first backup stores the golden base too.
    let (first_any, b0, s0) = timed(h.id).await;
    // Another new site's first backup: the base is there already.
    let public = std::fs::read_to_string(format!("{}.pub", key.display())).unwrap().trim().to_owned();
    let h2 = svc.create(&u, CreateHosting { slug: Some("bkb-two".into()), public_keys: vec![public], ..Default::default() }).await.unwrap();
    let h2 = svc.wait_settled(&u, h2.id, BOOT_TIMEOUT).await.unwrap().unwrap();
    assert_eq!(h2.state, HostingState::Running, "{:?}", h2.state_reason);
    let (first, b1, s1) = timed(h2.id).await;
    let (unchanged, b2, s2) = timed(h2.id).await;
    // 20 MiB of new (incompressible) data in the site.
    ssh(&key, h2.ssh_port.unwrap() as u16, "ubuntu", "head -c 20971520 /dev/urandom > /var/www/html/blob && sync");
    let (changed, b4, s4) = timed(h2.id).await;
    // Restore as a new site, to its page answering.
    let t = Instant::now();
    let new = svc.restore_backup(&u, h.id, b0.id, RestoreTarget::NewSite { slug: None }).await.unwrap();
    let v = svc.wait_settled(&u, new.id, Duration::from_secs(300)).await.unwrap().expect("the new site");
    assert_eq!(v.state, HostingState::Running, "{:?}", v.state_reason);
    let url = format!("http://{}/{}/v.txt", st.cfg.nginx_listen, new.slug);
    assert_eq!(get(&url, None).await, (200, "bench\n".into()));
    let restore_new = t.elapsed().as_secs_f64();
    // A sleeping site's backup (not woken).
    svc.action(&u, h2.id, Operation::Sleep).await.unwrap();
    svc.wait_settled(&u, h2.id, Duration::from_secs(120)).await.unwrap();
    let (asleep, b3, s3) = timed(h2.id).await;

    // 1,000 sites nightly on one node: unchanged sites cost what an unchanged backup costs
    // (capture and restic's own start-up and scan), changed ones add their changed bytes at the
    // upload rate measured on the first backup; backups run `concurrency` at a time.
    let concurrency = 2.0;
    let changed_mib = 20.0;
    let changed_share = 0.2;
    // The upload rate of new data: what the 20 MiB backup took beyond an unchanged one.
    let rate = 20.0 / (changed - unchanged).max(0.1);
    let per_site = unchanged + changed_share * changed_mib / rate;
    let projected_h = 1000.0 * per_site / concurrency / 3600.0;

    println!("| what | seconds | MiB added (restic, before compression) | MiB the repository grew on disk |");
    println!("|---|---|---|---|");
    println!("| first backup into an empty repository (the golden base too) | {first_any:.1} | {:.1} | {s0:.1} |", mib(b0.bytes_added));
    println!("| first backup of a new site (base already stored) | {first:.1} | {:.2} | {s1:.2} |", mib(b1.bytes_added));
    println!("| next backup of an unchanged running site | {unchanged:.1} | {:.2} | {s2:.2} |", mib(b2.bytes_added));
    println!("| backup after 20 MiB of new data in the site | {changed:.1} | {:.1} | {s4:.1} |", mib(b4.bytes_added));
    println!("| backup of a sleeping site (not woken) | {asleep:.1} | {:.2} | {s3:.2} |", mib(b3.bytes_added));
    println!("| restore as a new site, to its page answering | {restore_new:.1} | - | - |");
    println!(
        "| projected: 1,000 sites nightly ({concurrency} at a time; {:.0} % of them with {changed_mib} MiB new a day, at {rate:.0} MiB/s) | {:.0} ({projected_h:.2} h) | - | - |",
        changed_share * 100.0,
        projected_h * 3600.0
    );
    for id in [new.id, h2.id, h.id] {
        svc.action(&u, id, Operation::Delete).await.unwrap();
        let _ = svc.wait_settled(&u, id, Duration::from_secs(120)).await;
    }
    svc.proxy().stop().await.unwrap();
}
