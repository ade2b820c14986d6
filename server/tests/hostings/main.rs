#![recursion_limit = "512"]
//! The hosting API end to end over HTTP against the real application with hosting on:
//! libvirt's in-memory `test:///default` driver, a real nginx on a loopback port, SQLite or
//! PostgreSQL (TEST_DATABASE_URL). The original system's journey, every error case with its JSON
//! shape, and that a second user can neither see nor touch the first one's hosting, through the
//! REST API, the UI's server functions and the event stream.
use std::time::Duration;

use clap::Parser;
use reqwest::StatusCode;
use serde_json::{Value, json};
use vmw_test_support::http::{assert_api_error as assert_error, assert_field_error, client_with, no_redirect_client, send};
use vmw_test_support::{EmptyDb, PortWindow, fake_guest_image, free_port};

mod backup_restore;
mod backups;
mod backup_schedules;
mod console;
mod contract;
mod domains;
mod front_door;
mod metrics;
mod snapshots;
mod wake_abuse;

struct App {
    base: String,
    client: reqwest::Client,
    data: tempfile::TempDir,
    /// The running app's hosting service (fault injection).
    svc: service::hosting::HostingService,
    _db: EmptyDb,
    _ports: [PortWindow; 2],
}

impl Drop for App {
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

async fn spawn(max_per_user: u32) -> App {
    spawn_with(max_per_user, &[]).await
}

/// [`spawn`] with more command-line flags.
async fn spawn_with(max_per_user: u32, extra: &[&str]) -> App {
    vmw_test_support::init_tracing();
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    fake_guest_image(dir); // where --data-dir looks for it
    let prefix = format!("vmwapi{:06x}-", uuid::Uuid::new_v4().as_u128() & 0xffffff);
    // This test's own port windows, so parallel tests never compete for leases.
    let ports = [PortWindow::claim(100), PortWindow::claim(100)];
    let nginx = format!("127.0.0.1:{}", free_port());
    let d = dir.to_str().unwrap().to_owned();
    let (max, http, ssh) = (max_per_user.to_string(), ports[0].base().to_string(), ports[1].base().to_string());
    let args = vec![
        "vm-webhoster", "serve", "--data-dir", &d, "--site-root", &d, "--listen", "127.0.0.1:0",
        "--libvirt-uri", "test:///default", "--domain-type", "qemu", "--nginx-listen", &nginx,
        "--domain-prefix", &prefix, "--pool-size", "0", "--max-hostings-per-user", &max,
        "--http-port-base", &http, "--ssh-port-base", &ssh, "--tls", "off",
    ];
    let args: Vec<&str> = args.into_iter().chain(extra.iter().copied()).collect();
    let mut settings = server::config::Cli::parse_from(args).settings();
    // No flag for it: keep each range inside its window.
    settings.service.port_range_len = ports[0].len();
    let db = EmptyDb::new().await;
    settings.database_url = db.url().to_owned();
    let app = server::Application::build(settings).await.expect("builds");
    // The test driver's domains run nothing: count "running" as ready.
    let svc = app.state().hosting.clone().unwrap();
    svc.faults().set_skip_ready_probe(true);
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    App { base, client: no_redirect_client(), data, svc, _db: db, _ports: ports }
}

impl App {
    fn url(&self, p: &str) -> String {
        format!("{}{p}", self.base)
    }

    async fn register(&self, name: &str) -> String {
        let r = self
            .client
            .post(self.url("/api/v1/auth/register"))
            .json(&json!({"email": format!("{name}@example.com"), "password": "correct horse battery", "username": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let r = self
            .client
            .post(self.url("/api/v1/auth/login"))
            .form(&[("username", format!("{name}@example.com")), ("password", "correct horse battery".into())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["token_type"], "bearer");
        v["access_token"].as_str().unwrap().to_owned()
    }

    async fn call(&self, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        send(req).await
    }

    /// `POST /api/v1/host` as `token`: the new hosting's id.
    async fn create_host(&self, token: &str) -> i64 {
        let (s, h) = self.call(reqwest::Method::POST, "/api/v1/host", token, None).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{h}");
        h["id"].as_i64().unwrap()
    }

    /// Opens hosting `id`'s event stream as `token`, resuming after `last_event_id` if given.
    async fn stream(&self, token: &str, id: i64, last_event_id: Option<&str>) -> reqwest::Response {
        let mut req = self.client.get(self.url(&format!("/api/v1/hostings/{id}/stream"))).bearer_auth(token);
        if let Some(l) = last_event_id {
            req = req.header("last-event-id", l);
        }
        req.send().await.unwrap()
    }

    /// POST `/api/v1/auth/register` with this JSON body (no token).
    async fn register_raw(&self, body: &Value) -> (StatusCode, Value) {
        send(self.client.post(self.url("/api/v1/auth/register")).json(body)).await
    }

    /// `POST /api/v1/host/{action}` is accepted, and the hosting then settles as `want`.
    async fn act(&self, token: &str, action: &str, want: &str) -> Value {
        let (s, b) = self.call(reqwest::Method::POST, &format!("/api/v1/host/{action}"), token, None).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{action}: {b}");
        self.wait_for(token, want).await
    }

    async fn wait_for(&self, token: &str, want: &str) -> Value {
        for _ in 0..300 {
            let (s, v) = self.call(reqwest::Method::GET, "/api/v1/host", token, None).await;
            if s == StatusCode::OK && v["status"] == want && v["operation"].is_null() {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("hosting never became {want}");
    }
}

use reqwest::Method as M;

#[tokio::test]
async fn the_original_scripts_journey_works() {
    let app = spawn(3).await;
    let tok = app.register("scripter").await;
    let (s, me) = app.call(M::GET, "/api/v1/users/me", &tok, None).await;
    assert_eq!((s, me["username"].as_str()), (StatusCode::OK, Some("scripter")));

    // POST /host with no body at all, as the original's scripts do.
    let r = app.client.post(app.url("/api/v1/host")).bearer_auth(&tok).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let v: Value = r.json().await.unwrap();
    // It answers at once, before the VM exists (the test driver may already be provisioning).
    assert!(matches!(v["status"].as_str(), Some("queued" | "provisioning" | "running")), "{v}");
    assert!(v["state_reason"].is_null());
    let v = app.wait_for(&tok, "running").await;
    assert_eq!(v["user_url"], format!("http://127.0.0.1/{}/", me["id"]).replace("127.0.0.1/", &format!("127.0.0.1:{}/", v["site_url"].as_str().unwrap().split(':').nth(2).unwrap().split('/').next().unwrap())));
    assert!(v["ssh_command"].as_str().unwrap().starts_with("ssh -p "));

    let (s, b) = app.call(M::POST, "/api/v1/host", &tok, None).await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");

    let v = app.act(&tok, "stop", "stopped").await;
    assert!(v["state_reason"].as_str().unwrap_or("").contains("saved to disk"), "the API says how it stopped: {v}");
    let (s, b) = app.call(M::POST, "/api/v1/host/stop", &tok, None).await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    let (s, b) = app.call(M::POST, "/api/v1/host/power_off", &tok, None).await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    app.act(&tok, "start", "running").await;
    // A real power-off is its own action, and says so.
    let v = app.act(&tok, "power_off", "stopped").await;
    assert!(v["state_reason"].as_str().unwrap_or("").contains("Powered off"), "{v}");
    app.act(&tok, "start", "running").await;
    let (s, b) = app.call(M::POST, "/api/v1/host/reboot-now", &tok, None).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");

    let (s, _) = app.call(M::DELETE, "/api/v1/host?wait=60", &tok, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = app.call(M::GET, "/api/v1/host", &tok, None).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn bad_requests_get_one_error_shape_and_change_nothing() {
    let app = spawn(1).await;
    let post_raw = |body: &'static str| {
        send(app.client.post(app.url("/api/v1/auth/register")).header("content-type", "application/json").body(body))
    };
    let (s, b) = post_raw("{not json").await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_json");
    let (s, b) = post_raw(r#"{"email":"a@example.com"}"#).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_body");
    for (body, field) in [
        (json!({"email":"nope","password":"correct horse","username":"val"}), "email"),
        (json!({"email":"v@example.com","password":"short","username":"val"}), "password"),
        (json!({"email":"v@example.com","password":"correct horse","username":"9lives"}), "username"),
    ] {
        let (s, b) = app.register_raw(&body).await;
        assert_field_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", field);
    }
    let tok = app.register("first").await;
    for (body, field) in [
        (json!({"email":"first@example.com","password":"other password","username":"second"}), "email"),
        (json!({"email":"second@example.com","password":"other password","username":"first"}), "username"),
    ] {
        let (s, b) = app.register_raw(&body).await;
        assert_field_error(s, &b, StatusCode::CONFLICT, "conflict", field);
    }
    // The first account is untouched: its password still works.
    let r = app.client.post(app.url("/api/v1/auth/login")).form(&[("username", "first"), ("password", "correct horse battery")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let (s, b) = app.call(M::POST, "/api/v1/hostings", &tok, Some(json!({"slug": "Not OK!"}))).await;
    assert_field_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "slug");
    let (s, b) = app.call(M::POST, "/api/v1/hostings", &tok, Some(json!({"slug": "admin"}))).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let (s, b) = app.call(M::POST, "/api/v1/host", &tok, Some(json!({"ssh_public_key": "nope"}))).await;
    assert_field_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "public_key");
    let (s, b) = app.call(M::GET, "/api/v1/hostings", &tok, None).await;
    assert_eq!((s, b.as_array().unwrap().len()), (StatusCode::OK, 0), "no bad request stored anything");

    let (s, _) = app.call(M::POST, "/api/v1/hostings", &tok, Some(json!({"slug": "site-one"}))).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, b) = app.call(M::POST, "/api/v1/hostings", &tok, Some(json!({"slug": "site-two"}))).await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "quota_exceeded");
    let (s, b) = app.call(M::GET, "/api/v1/hostings/999999", &tok, None).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");

    let r = app.client.get(app.url("/api/v1/users/me")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers().get("www-authenticate").unwrap(), "Bearer");
    let (s, b) = app.call(M::GET, "/api/v1/users/me", "vmw_not_a_token", None).await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn another_user_gets_404_everywhere_and_changes_nothing() {
    let app = spawn(3).await;
    let alice = app.register("alice").await;
    let mallory = app.register("mallory").await;
    let id = app.create_host(&alice).await;
    app.wait_for(&alice, "running").await;

    for (m, path) in [
        (M::GET, format!("/api/v1/hostings/{id}")),
        (M::GET, format!("/api/v1/hostings/{id}/events")),
        (M::GET, format!("/api/v1/hostings/{id}/stats")),
        (M::GET, format!("/api/v1/hostings/{id}/console")),
        (M::GET, format!("/api/v1/hostings/{id}/stream")),
        (M::POST, format!("/api/v1/hostings/{id}/stop")),
        (M::POST, format!("/api/v1/hostings/{id}/restart")),
        (M::DELETE, format!("/api/v1/hostings/{id}")),
    ] {
        let (s, b) = app.call(m.clone(), &path, &mallory, None).await;
        assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    }
    let (_, list) = app.call(M::GET, "/api/v1/hostings", &mallory, None).await;
    assert_eq!(list.as_array().unwrap().len(), 0);

    // The UI's server functions, with mallory's session.
    let ui = client_with(Default::default());
    let r = ui.post(app.url("/api/fn/login")).header("accept", "application/json").form(&[("login", "mallory"), ("password", "correct horse battery")]).send().await.unwrap();
    assert!(r.status().is_success() || r.status().is_redirection(), "{}", r.status());
    let sid = id.to_string();
    for (f, form) in [
        ("get_hosting", vec![("id", sid.as_str())]),
        ("hosting_page", vec![("id", sid.as_str())]),
        ("hosting_console", vec![("id", sid.as_str()), ("lines", "10")]),
        ("hosting_action", vec![("id", sid.as_str()), ("action", "stop")]),
        ("hosting_action", vec![("id", sid.as_str()), ("action", "delete")]),
    ] {
        let r = ui.post(app.url(&format!("/api/fn/{f}"))).header("accept", "application/json").form(&form).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{f}");
    }
    // Nothing happened to alice's site.
    let (s, v) = app.call(M::GET, &format!("/api/v1/hostings/{id}"), &alice, None).await;
    assert_eq!((s, v["state"].as_str(), v["operation"].is_null()), (StatusCode::OK, Some("running"), true));
    let (_, evs) = app.call(M::GET, &format!("/api/v1/hostings/{id}/events"), &alice, None).await;
    assert!(!evs.as_array().unwrap().iter().any(|e| e["kind"] == "action"), "no action was ever started");
}

#[tokio::test]
async fn the_event_stream_replays_then_follows_and_resumes_from_last_event_id() {
    let app = spawn(3).await;
    let tok = app.register("streamer").await;
    let id = app.create_host(&tok).await;
    app.wait_for(&tok, "running").await;

    async fn first_chunk(app: &App, tok: &str, id: i64, last: Option<&str>) -> String {
        let mut r = app.stream(tok, id, last).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        let mut text = String::new();
        while let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_millis(500), r.chunk()).await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    }
    let all = first_chunk(&app, &tok, id, None).await;
    let ids: Vec<i64> = all.lines().filter_map(|l| l.strip_prefix("id: ")).map(|v| v.parse().unwrap()).collect();
    assert!(ids.len() >= 10, "the backlog of provisioning events: {all}");
    assert!(all.contains("event: hosting"), "the current hosting follows the backlog");
    let mid = ids[ids.len() / 2];
    let rest = first_chunk(&app, &tok, id, Some(&mid.to_string())).await;
    let rest_ids: Vec<i64> = rest.lines().filter_map(|l| l.strip_prefix("id: ")).map(|v| v.parse().unwrap()).collect();
    assert!(!rest_ids.is_empty() && rest_ids.iter().all(|i| *i > mid), "only what came after {mid}: {rest_ids:?}");

    // Live: a stop made while connected arrives on the stream.
    let mut r = app.stream(&tok, id, None).await;
    let (s, _) = app.call(M::POST, "/api/v1/host/stop", &tok, None).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !text.contains("\"status\":\"stopped\"") {
        assert!(tokio::time::Instant::now() < deadline, "no stop on the stream: {text}");
        if let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_secs(1), r.chunk()).await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test]
async fn a_stream_that_reconnects_after_its_hosting_was_deleted_hears_deleted_and_ends() {
    let app = spawn(3).await;
    let tok = app.register("reconnector").await;
    let other = app.register("bystander").await;
    let id = app.create_host(&tok).await;
    app.wait_for(&tok, "running").await;
    let (_, evs) = app.call(M::GET, &format!("/api/v1/hostings/{id}/events"), &tok, None).await;
    let seen = evs.as_array().unwrap().last().unwrap()["id"].as_i64().unwrap().to_string();
    let (s, _) = app.call(M::DELETE, "/api/v1/host?wait=60", &tok, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // The owner's browser reconnects with the last id it saw (its stream was cut mid-delete).
    let r = app.stream(&tok, id, Some(&seen)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = tokio::time::timeout(Duration::from_secs(10), r.text()).await.expect("the stream ends by itself").unwrap();
    assert!(text.contains("\"status\":\"deleted\""), "the deletion it missed is replayed: {text}");
    assert!(text.contains("event: deleted"), "and then the end: {text}");
    // Someone else learns nothing about it.
    assert_eq!(app.stream(&other, id, None).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_account_holds_at_most_8_streams_and_long_polls_and_the_next_gets_429() {
    let app = spawn(1).await;
    let tok = app.register("greedy").await;
    let id = app.create_host(&tok).await;
    let mut open = Vec::new();
    for n in 1..=8 {
        let r = app.stream(&tok, id, None).await;
        assert_eq!(r.status(), StatusCode::OK, "stream {n}");
        open.push(r);
    }
    let r = app.stream(&tok, id, None).await;
    let (s, body) = (r.status(), r.json::<Value>().await.unwrap());
    assert_error(s, &body, StatusCode::TOO_MANY_REQUESTS, "too_many_streams");
    assert!(body["error"]["message"].as_str().unwrap().contains('8'), "{body}");
    // A long poll takes a place too (and is refused before it acts) ...
    let (s, body) = app.call(reqwest::Method::GET, &format!("/api/v1/hostings/{id}?wait=5"), &tok, None).await;
    assert_error(s, &body, StatusCode::TOO_MANY_REQUESTS, "too_many_streams");
    let (s, body) = app.call(reqwest::Method::POST, &format!("/api/v1/hostings/{id}/stop?wait=5"), &tok, None).await;
    assert_error(s, &body, StatusCode::TOO_MANY_REQUESTS, "too_many_streams");
    // ... while short requests pass, and another account has its own places.
    let (s, v) = app.call(reqwest::Method::GET, &format!("/api/v1/hostings/{id}"), &tok, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_ne!(v["operation"], "stop", "the refused stop did not run: {v}");
    let other = app.register("patient").await;
    let oid = app.create_host(&other).await;
    assert_eq!(app.stream(&other, oid, None).await.status(), StatusCode::OK);
    drop(open);
}

#[tokio::test]
async fn a_create_past_the_nodes_capacity_is_507_node_full_with_the_numbers() {
    let app = spawn_with(1, &["--node-memory-mib", "400", "--memory-overcommit", "1.0"]).await;
    let ann = app.register("fullann").await;
    app.create_host(&ann).await; // small: 256 of 400 MiB
    let bob = app.register("fullbob").await;
    let (s, body) = app.call(reqwest::Method::POST, "/api/v1/hostings", &bob, Some(json!({"plan": "small"}))).await;
    assert_error(s, &body, StatusCode::INSUFFICIENT_STORAGE, "node_full");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("256 MiB of memory is committed and the limit is 400 MiB"), "{msg}");
    let (s, list) = app.call(reqwest::Method::GET, "/api/v1/hostings", &bob, None).await;
    assert_eq!((s, list), (StatusCode::OK, json!([])), "nothing was created");
}

#[tokio::test]
async fn a_wait_outside_1_to_600_seconds_is_400_and_changes_nothing() {
    let app = spawn(1).await;
    let tok = app.register("waiter").await;
    for bad in ["0", "601", "-1", "soon", ""] {
        let (s, body) = app.call(reqwest::Method::POST, &format!("/api/v1/host?wait={bad}"), &tok, None).await;
        assert_error(s, &body, StatusCode::BAD_REQUEST, "invalid_wait");
    }
    let (s, _) = app.call(reqwest::Method::GET, "/api/v1/host", &tok, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no refused create went through");
    let (s, _) = app.call(reqwest::Method::POST, "/api/v1/host?wait=1", &tok, None).await;
    assert_eq!(s, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn an_open_event_stream_ends_when_its_token_is_revoked() {
    let app = spawn(3).await;
    let login = app.register("revoker").await;
    let id = app.create_host(&login).await;
    let (s, t) = app.call(M::POST, "/api/v1/tokens", &login, Some(serde_json::json!({"name": "dashboard-tv", "password": "correct horse battery"}))).await;
    assert_eq!(s, StatusCode::CREATED);
    let api = t["token"].as_str().unwrap().to_owned();
    let mut r = app.stream(&api, id, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (s, _) = app.call(M::DELETE, &format!("/api/v1/tokens/{}", t["id"]), &login, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // The stream keeps sending what happens (keep-alives, events) until it notices, then ends.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        assert!(tokio::time::Instant::now() < deadline, "the stream outlived its revoked token");
        match tokio::time::timeout(Duration::from_secs(1), r.chunk()).await {
            Ok(Ok(None)) | Ok(Err(_)) => break,
            _ => {}
        }
    }
    // And the revoked token opens no new one.
    let r = app.stream(&api, id, None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_openapi_document_lists_every_endpoint() {
    let app = spawn(1).await;
    let r = app.client.get(app.url("/api/v1/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = r.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths: Vec<&str> = doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    for p in [
        "/api/v1/health", "/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/users/me", "/api/v1/tokens",
        "/api/v1/tokens/{id}", "/api/v1/ssh-keys", "/api/v1/ssh-keys/{id}", "/api/v1/host", "/api/v1/host/{action}",
        "/api/v1/hostings", "/api/v1/hostings/{id}", "/api/v1/hostings/{id}/events", "/api/v1/hostings/{id}/stats",
        "/api/v1/hostings/{id}/console", "/api/v1/hostings/{id}/stream", "/api/v1/hostings/{id}/{action}",
        "/api/v1/account/activity", "/api/v1/admin/users", "/api/v1/admin/users/{id}/disable", "/api/v1/admin/users/{id}/enable",
        "/api/v1/admin/nodes", "/api/v1/admin/nodes/{id}", "/api/v1/admin/nodes/{id}/drain", "/api/v1/admin/nodes/{id}/undrain",
        "/api/v1/admin/hostings", "/api/v1/admin/events",
        "/api/v1/hostings/{id}/console/ws", "/api/v1/hostings/{id}/console/password",
    ] {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    // Operation ids must be unique (an OpenAPI validity rule client generators rely on).
    let mut ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate operationId");
    let docs = app.client.get(app.url("/api/v1/docs")).send().await.unwrap();
    assert!(docs.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = docs.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-eval"), "{csp}");
    let page = docs.text().await.unwrap();
    // Swagger UI from our own assets, started by our script (no inline script under the CSP).
    assert!(page.contains("src=\"/pkg/swagger-ui/swagger-ui-bundle.js\"") && page.contains("src=\"/api/v1/docs/init.js\""), "{page}");
    assert!(!page.contains("<script>"), "no inline script: {page}");
    let init = app.client.get(app.url("/api/v1/docs/init.js")).send().await.unwrap();
    assert!(init.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert!(init.text().await.unwrap().contains("/api/v1/openapi.json"));
}

/// `.route("PATH", get(a).post(b))` lines of the API router's source: (PATH, [methods]).
fn router_routes(src: &str) -> Vec<(String, Vec<&'static str>)> {
    src.lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix(".route(\"")?;
            let (path, handlers) = rest.split_once('"')?;
            let methods = ["get", "post", "put", "patch", "delete"]
                .into_iter()
                .filter(|m| handlers.contains(&format!("({m}(")) || handlers.contains(&format!(".{m}(")) || handlers.contains(&format!(" {m}(")))
                .collect();
            Some((path.to_owned(), methods))
        })
        .collect()
}

#[tokio::test]
async fn every_api_route_is_documented_with_its_bodies_and_error_schema() {
    let app = spawn(1).await;
    let doc: Value = app.client.get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    let paths = doc["paths"].as_object().unwrap();

    // Every route of the router (its source, so a new route cannot be forgotten) is in the
    // document with each of its methods; only the document and its viewer are not.
    let routes = router_routes(include_str!("../../src/api/mod.rs"));
    assert!(routes.len() >= 15, "{routes:?}");
    for (path, methods) in &routes {
        if ["/openapi.json", "/docs", "/docs/init.js"].contains(&path.as_str()) {
            continue;
        }
        assert!(!methods.is_empty(), "{path}: no method found");
        let full = format!("/api/v1{path}");
        for m in methods {
            assert!(paths.get(&full).and_then(|p| p.get(*m)).is_some(), "{} {full} is routed but not documented", m.to_uppercase());
        }
    }

    let error_ref = "#/components/schemas/ErrorBody";
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            if op.get("security").is_some() || op.get("requestBody").is_some() {
                assert!(responses.keys().any(|c| c.starts_with('4')), "{method} {path} documents no 4xx");
            }
            for (code, resp) in responses {
                let content = resp["content"].as_object();
                let schema = content.and_then(|c| c.values().next()).map(|m| &m["schema"]);
                match code.as_bytes()[0] {
                    // 101: the WebSocket handshake's answer, which has no body.
                    b'1' | b'2' if code == "101" || code == "204" => assert!(content.is_none(), "{method} {path} {code} has a body"),
                    b'2' => assert!(schema.is_some_and(|s| s.is_object()), "{method} {path} {code}: no body schema"),
                    b'4' => {
                        let s = schema.unwrap_or_else(|| panic!("{method} {path} {code}: no error body"));
                        assert_eq!(s["$ref"], error_ref, "{method} {path} {code}");
                    }
                    _ => assert!(schema.is_some(), "{method} {path} {code}: no body schema"),
                }
            }
            if op.get("security").is_some() {
                assert!(responses.contains_key("401"), "{method} {path} takes a token but documents no 401");
            }
        }
    }
}

#[tokio::test]
async fn an_administrator_sees_nodes_and_every_hosting_and_acts_on_anyones_hosting_while_others_get_404() {
    let app = spawn_with(1, &["--first-user-admin"]).await;
    let root = app.register("chief").await;
    let ann = app.register("annie").await;
    let eve = app.register("evelyn").await;
    let id = app.create_host(&ann).await;
    app.wait_for(&ann, "running").await;

    for path in ["/api/v1/admin/nodes", "/api/v1/admin/hostings", "/api/v1/admin/events", "/api/v1/admin/users"] {
        let (s, b) = app.call(M::GET, path, &ann, None).await;
        assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
    }
    let (s, nodes) = app.call(M::GET, "/api/v1/admin/nodes", &root, None).await;
    assert_eq!(s, StatusCode::OK, "{nodes}");
    let n = &nodes[0];
    assert_eq!((n["hostings_total"].as_u64(), n["hostings_running"].as_u64(), n["hostings_stopped"].as_u64()), (Some(1), Some(1), Some(0)), "{n}");
    assert!(n["memory_committed_mib"].as_u64().unwrap() > 0, "{n}");
    assert_eq!(n["memory_free_mib"].as_u64().unwrap(), n["memory_limit_mib"].as_u64().unwrap() - n["memory_committed_mib"].as_u64().unwrap());
    assert_eq!(n["disk_free_gib"].as_u64().unwrap(), n["disk_limit_gib"].as_u64().unwrap() - n["disk_committed_gib"].as_u64().unwrap());
    let (s, all) = app.call(M::GET, "/api/v1/admin/hostings", &root, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!((all[0]["id"].as_i64(), all[0]["owner"].as_str(), all[0]["state"].as_str()), (Some(id), Some("annie"), Some("running")), "{all}");

    // Another user cannot touch it; the administrator can.
    let (s, b) = app.call(M::POST, &format!("/api/v1/hostings/{id}/stop"), &eve, None).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, v) = app.call(M::POST, &format!("/api/v1/hostings/{id}/stop?wait=60"), &root, None).await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::ACCEPTED, Some("stopped")), "{v}");
    let (_, nodes) = app.call(M::GET, "/api/v1/admin/nodes", &root, None).await;
    assert_eq!((nodes[0]["hostings_running"].as_u64(), nodes[0]["hostings_stopped"].as_u64()), (Some(0), Some(1)), "{nodes}");
    let (s, events) = app.call(M::GET, "/api/v1/admin/events?limit=5", &root, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(events.as_array().unwrap().len() <= 5 && events[0]["hosting_id"].as_i64() == Some(id), "{events}");
    let (s, b) = app.call(M::DELETE, &format!("/api/v1/hostings/{id}"), &eve, None).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, _) = app.call(M::DELETE, &format!("/api/v1/hostings/{id}"), &root, None).await;
    assert_eq!(s, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn an_administrator_adds_drains_and_removes_a_node_over_rest_and_new_sites_go_where_there_is_room() {
    let app = spawn_with(3, &["--first-user-admin", "--node-memory-mib", "512", "--memory-overcommit", "1.0"]).await;
    let root = app.register("chief").await;
    let ann = app.register("annie").await;
    let file = app.data.path().join("node-2.xml");
    std::fs::write(&file, "<node/>").unwrap();
    let node = |uri: &str, address: &str| json!({"name": "node-2", "libvirt_uri": uri, "address": address, "memory_mib": 4096, "disk_gib": 100});
    let uri = format!("test://{}", file.display());

    let (s, b) = app.call(M::POST, "/api/v1/admin/nodes", &ann, Some(node(&uri, "127.0.0.1"))).await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, b) = app.call(M::POST, "/api/v1/admin/nodes", &root, Some(node("qemu+ssh://h/system?command=sh", "127.0.0.1"))).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let (s, b) = app.call(M::POST, "/api/v1/admin/nodes", &root, Some(node(&uri, "not-an-ip"))).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let (s, n2) = app.call(M::POST, "/api/v1/admin/nodes", &root, Some(node(&uri, "127.0.0.1"))).await;
    assert_eq!(s, StatusCode::CREATED, "{n2}");
    assert_eq!((n2["health"]["connected"].as_bool(), n2["drained"].as_bool(), n2["added"].as_bool()), (Some(true), Some(false), Some(true)), "{n2}");
    let id2 = n2["id"].as_i64().unwrap();

    // The new node has more room: the site goes there, and the node lists it.
    let site = app.create_host(&ann).await;
    app.wait_for(&ann, "running").await;
    let (_, nodes) = app.call(M::GET, "/api/v1/admin/nodes", &root, None).await;
    assert_eq!(nodes.as_array().unwrap().len(), 2, "{nodes}");
    let n = nodes.as_array().unwrap().iter().find(|n| n["id"].as_i64() == Some(id2)).unwrap();
    assert_eq!(n["sites"][0]["id"].as_i64(), Some(site), "{n}");

    // The admin page (server-rendered) shows both nodes, with their health and the site on node 2.
    let browser = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = browser
        .post(app.url("/api/fn/login"))
        .header("accept", "application/json")
        .form(&[("login", "chief"), ("password", "correct horse battery")])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "login: {}", r.status());
    let html = browser.get(app.url("/admin")).send().await.unwrap().text().await.unwrap();
    assert_eq!(html.matches(r#"data-testid="node""#).count(), 2, "{html}");
    assert!(html.contains(r#"data-node="node-2""#), "{html}");
    assert!(html.contains(r#"data-slug="annie""#), "the site on its node: {html}");
    assert_eq!(html.matches(r#"data-connected="true""#).count(), 2, "{html}");

    let (s, b) = app.call(M::DELETE, &format!("/api/v1/admin/nodes/{id2}"), &root, None).await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    let (s, d) = app.call(M::POST, &format!("/api/v1/admin/nodes/{id2}/drain"), &root, None).await;
    assert_eq!((s, d["drained"].as_bool()), (StatusCode::OK, Some(true)), "{d}");
    let (s, _) = app.call(M::DELETE, &format!("/api/v1/hostings/{site}"), &ann, None).await;
    assert!(s.is_success(), "{s}");
    for _ in 0..300 {
        if app.call(M::GET, &format!("/api/v1/hostings/{site}"), &ann, None).await.0 == StatusCode::NOT_FOUND {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, _) = app.call(M::DELETE, &format!("/api/v1/admin/nodes/{id2}"), &root, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, nodes) = app.call(M::GET, "/api/v1/admin/nodes", &root, None).await;
    assert_eq!(nodes.as_array().unwrap().len(), 1, "{nodes}");
    let home = nodes[0]["id"].as_i64().unwrap();
    let (s, b) = app.call(M::DELETE, &format!("/api/v1/admin/nodes/{home}"), &root, None).await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
}
