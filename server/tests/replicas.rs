//! Two app replicas: the real binary, two processes on distinct ports, one PostgreSQL
//! (TEST_DATABASE_URL; without it this test only says it did not run), one data dir and one
//! nginx. A login on one works on the other; a create made through one is followed live from
//! the other's event stream; both write the same nginx files, naming both replicas and both
//! wakers, and nginx keeps answering through the survivor; the replica that leads is killed (SIGKILL) in the middle of a create
//! and nothing is lost: the other takes the lead within seconds, takes the create over once the
//! dead one's lease expires (30 s), and finishes it.
//!
//! The hypervisor is libvirt's `test:///default` driver, which lives inside each process: the
//! replicas share the database, the data dir and nginx, but not the (fake) VMs. What this
//! test asserts is the database side of "nothing lost": the abandoned create is not stuck, not
//! doubled, holds no leftover lease and exactly one pair of port leases, and ends running, with
//! its owner told. The survivor made its VM again (its own driver never saw the first one).
//!
//!     make test-replicas        (a throwaway PostgreSQL, this test)
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use vmw_test_support::{EmptyDb, PortWindow, fake_guest_image, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_vm-webhoster");

struct Replica {
    child: Child,
    base: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Replica {
    fn url(&self, p: &str) -> String {
        format!("{}{p}", self.base)
    }

    fn logged(&self, what: &str) -> bool {
        self.logs.lock().unwrap().iter().any(|l| l.contains(what))
    }
}

struct Cluster {
    data: tempfile::TempDir,
    db: EmptyDb,
    ports: [PortWindow; 2],
    nginx: String,
    prefix: String,
    apps: [u16; 2],
    wakers: [u16; 2],
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let prefix = self.data.path().join("nginx");
        let _ = std::process::Command::new("nginx")
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .args(["-s", "quit"])
            .output();
    }
}

impl Cluster {
    async fn new() -> Self {
        let data = tempfile::tempdir().unwrap();
        fake_guest_image(data.path());
        Cluster {
            data,
            db: EmptyDb::new().await,
            ports: [PortWindow::claim(100), PortWindow::claim(100)],
            nginx: format!("127.0.0.1:{}", free_port()),
            prefix: format!("vmwrep{:06x}-", uuid::Uuid::new_v4().as_u128() & 0xffffff),
            apps: [free_port(), free_port()],
            wakers: [free_port(), free_port()],
        }
    }

    /// Starts replica `i` (0 or 1) and waits until it answers.
    async fn start(&self, i: usize) -> Replica {
        let d = self.data.path().to_str().unwrap().to_owned();
        let listen = format!("127.0.0.1:{}", self.apps[i]);
        let wake = format!("127.0.0.1:{}", self.wakers[i]);
        let apps = self.apps.map(|p| format!("127.0.0.1:{p}")).join(",");
        let wakers = self.wakers.map(|p| format!("127.0.0.1:{p}")).join(",");
        let (http, ssh) = (self.ports[0].base().to_string(), self.ports[1].base().to_string());
        let mut child = Command::new(BIN)
            .args(["serve", "--data-dir", &d, "--site-root", &d, "--listen", &listen, "--wake-listen", &wake])
            .args(["--app-upstreams", &apps, "--waker-upstreams", &wakers, "--database-url", self.db.url()])
            .args(["--libvirt-uri", "test:///default", "--domain-type", "qemu", "--nginx-listen", &self.nginx])
            .args(["--domain-prefix", &self.prefix, "--pool-size", "0", "--pool-paused", "0", "--no-golden"])
            .args(["--http-port-base", &http, "--ssh-port-base", &ssh, "--reconcile-interval-secs", "1"])
            .args(["--step-delay-ms", "1000", "--log-level", "info", "--tls", "off"])
            .env("NO_COLOR", "1")
            .env_remove("VMW_INSTANCE_ID")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        for out in [Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>, Box::new(child.stderr.take().unwrap())] {
            let logs = logs.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    if std::env::var_os("TEST_LOG").is_some() {
                        eprintln!("[replica {i}] {l}");
                    }
                    logs.lock().unwrap().push(l);
                }
            });
        }
        let r = Replica { child, base: format!("http://{listen}"), logs };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(resp) = reqwest::get(r.url("/api/v1/health")).await {
                if resp.status().is_success() {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "replica {i} answers within 60 s: {:#?}", r.logs.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        r
    }
}

async fn call(r: &Replica, method: Method, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().request(method, r.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// An SSE stream's `(event name, data)` pairs as they arrive, with when they arrived. A stream
/// ends at each nginx reload (streams through nginx must); it is opened again after the last
/// event id seen, as a browser's EventSource does.
async fn open_stream(r: &Replica, id: i64, token: &str) -> tokio::sync::mpsc::UnboundedReceiver<(String, Value, Instant)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let url = r.url(&format!("/api/v1/hostings/{id}/stream"));
    let first = reqwest::Client::new().get(&url).bearer_auth(token).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let token = token.to_owned();
    tokio::spawn(async move {
        let mut resp = Some(first);
        let mut last_id: Option<String> = None;
        while !tx.is_closed() {
            let mut r = match resp.take() {
                Some(r) => r,
                None => {
                    let mut req = reqwest::Client::new().get(&url).bearer_auth(&token);
                    if let Some(l) = &last_id {
                        req = req.header("Last-Event-ID", l);
                    }
                    match req.send().await {
                        Ok(r) if r.status().is_success() => r,
                        _ => {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                    }
                }
            };
            let mut buf = String::new();
            while let Ok(Some(chunk)) = r.chunk().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let block: String = buf.drain(..end + 2).collect();
                    let mut name = String::new();
                    let mut data = String::new();
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            name = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim_start());
                        } else if let Some(v) = line.strip_prefix("id:") {
                            last_id = Some(v.trim().to_owned());
                        }
                    }
                    if let Ok(v) = serde_json::from_str(&data) {
                        let _ = tx.send((name, v, Instant::now()));
                    }
                }
            }
        }
    });
    rx
}

/// Reads the stream until an `event` says the hosting runs; returns the events seen.
async fn until_running(rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Value, Instant)>, within: Duration) -> Vec<(Value, Instant)> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let got = tokio::time::timeout_at(deadline, rx.recv()).await;
        let Ok(Some((name, v, at))) = got else { panic!("no `running` event within {within:?}; saw {seen:#?}") };
        if name == "event" {
            let running = v["kind"] == "state" && v["status"] == "running";
            seen.push((v, at));
            if running {
                return seen;
            }
        }
    }
}

#[tokio::test]
async fn two_replicas_share_logins_and_live_events_and_a_killed_leader_loses_nothing() {
    if std::env::var_os("TEST_DATABASE_URL").is_none() {
        eprintln!("replicas need PostgreSQL: set TEST_DATABASE_URL (make test-replicas does); not run");
        return;
    }
    let c = Cluster::new().await;
    let mut a = c.start(0).await;
    let b = c.start(1).await;
    assert!(a.logged("this replica leads"), "the first replica leads");
    assert!(b.logged("another replica leads"), "the second one serves and waits");
    let ids: Vec<String> = [&a, &b]
        .iter()
        .map(|r| r.logs.lock().unwrap().iter().find(|l| l.contains("vm-webhoster listening")).cloned().unwrap_or_default())
        .collect();
    assert_ne!(ids[0], ids[1]);

    // A login on one replica works on the other (tokens and sessions are rows).
    let client = reqwest::Client::new();
    let r = client
        .post(a.url("/api/v1/auth/register"))
        .json(&json!({"email": "ann@example.com", "password": "correct horse battery", "username": "ann"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let login: Value = client
        .post(a.url("/api/v1/auth/login"))
        .form(&[("username", "ann@example.com"), ("password", "correct horse battery")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();
    let (s, me) = call(&b, Method::GET, "/api/v1/hostings", &token, None).await;
    assert_eq!(s, StatusCode::OK, "a token from replica a works on b: {me}");

    // A create through a, followed live from b's event stream.
    let (s, h) = call(&a, Method::POST, "/api/v1/hostings", &token, Some(json!({"slug": "ann"}))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{h}");
    let id = h["id"].as_i64().unwrap();
    let opened = Instant::now();
    let mut rx = open_stream(&b, id, &token).await;
    let seen = until_running(&mut rx, Duration::from_secs(60)).await;
    let live = seen.iter().filter(|(_, at)| at.duration_since(opened) > Duration::from_millis(900)).count();
    assert!(live >= 3, "steps 1 s apart arrive one by one at b, not as one replay: {seen:#?}");
    let (_, v) = call(&b, Method::GET, &format!("/api/v1/hostings/{id}"), &token, None).await;
    assert_eq!(v["state"], "running", "{v}");

    // A second create through a; a (the leader) is killed in the middle of it.
    let (s, h2) = call(&a, Method::POST, "/api/v1/hostings", &token, Some(json!({"slug": "ann-two"}))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{h2}");
    let id2 = h2["id"].as_i64().unwrap();
    let mut rx2 = open_stream(&b, id2, &token).await;
    // Two steps in: the create is half done.
    let mut steps = 0;
    while steps < 2 {
        let (name, v, _) = tokio::time::timeout(Duration::from_secs(20), rx2.recv()).await.expect("steps start").unwrap();
        if name == "event" && v["kind"] == "step" && v["status"] == "started" {
            steps += 1;
        }
    }
    // Both replicas write the same nginx files, naming both of them.
    let conf = std::fs::read_to_string(c.data.path().join("nginx/nginx.conf")).unwrap();
    let site = std::fs::read_to_string(c.data.path().join(format!("nginx/sites/hosting-{id}.server.conf"))).unwrap();
    for i in 0..2 {
        assert!(conf.contains(&format!("server 127.0.0.1:{};", c.apps[i])), "nginx's app upstream lists replica {i}: {conf}");
        assert!(site.contains(&format!("server 127.0.0.1:{} backup;", c.wakers[i])), "the site's backups list replica {i}'s waker: {site}");
    }
    let through_nginx = format!("http://{}/api/v1/health", c.nginx);
    a.child.start_kill().unwrap();
    let _ = a.child.wait().await;
    let killed = Instant::now();
    // The front door still answers: nginx passes every request to the replica that runs.
    for _ in 0..6 {
        let r = reqwest::get(&through_nginx).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "through nginx with replica a dead");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.logged("this replica leads") {
        assert!(Instant::now() < deadline, "b leads within 10 s of a's death");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took_lead = killed.elapsed();
    // The dead replica's lease expires (30 s after its last renewal), then b starts the create over.
    let seen = until_running(&mut rx2, Duration::from_secs(90)).await;
    let finished = killed.elapsed();
    println!("b led {took_lead:?} after the kill; the abandoned create ran {finished:?} after it");
    assert!(seen.iter().any(|(v, _)| v["message"].as_str().is_some_and(|m| m.contains("interrupted"))), "the owner is told: {seen:#?}");
    let (_, v) = call(&b, Method::GET, &format!("/api/v1/hostings/{id2}"), &token, None).await;
    assert_eq!((v["state"].as_str(), v["operation"].as_str()), (Some("running"), None), "{v}");
    let (_, list) = call(&b, Method::GET, "/api/v1/hostings", &token, None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(2), "no hosting lost or doubled: {list}");

    // In the database: no lease left on it, and exactly its two ports leased.
    let db = Database::connect(c.db.url()).await.unwrap();
    let one = |sql: &str| Statement::from_sql_and_values(DbBackend::Postgres, sql, [(id2 as i32).into()]);
    let row = db.query_one_raw(one("SELECT lease_owner FROM hostings WHERE id = $1")).await.unwrap().unwrap();
    assert_eq!(row.try_get::<Option<String>>("", "lease_owner").unwrap(), None);
    let row = db.query_one_raw(one("SELECT count(*) AS n FROM port_leases WHERE hosting_id = $1")).await.unwrap().unwrap();
    assert_eq!(row.try_get::<i64>("", "n").unwrap(), 2, "one HTTP and one SSH port, not a second pair");
    let _ = db.close().await;
}
