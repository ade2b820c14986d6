//! The shared front door (nginx) refuses what the app would refuse, itself: a body over the
//! app's limit gets nginx's 413 (never a 502 from a half-sent body), more sign-up and log-in
//! attempts than the burst from one address get 429, and so do more than 20 held requests
//! (event streams, `?wait=` long polls) from one address. All through the real nginx.
use std::time::Duration;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{App, spawn, spawn_with};

/// nginx's address (`--nginx-listen`), as the rendered config names it.
pub(crate) fn front_door(app: &App) -> String {
    let conf = std::fs::read_to_string(app.data.path().join("nginx/nginx.conf")).unwrap();
    let listen = conf
        .lines()
        .find_map(|l| l.trim().strip_prefix("listen ")?.strip_suffix(" default_server;"))
        .expect("the default server's listen address");
    format!("http://{listen}")
}

/// A JSON body of about `len` bytes that the app would parse (a long string field).
fn json_body(len: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({"email": "big@example.com", "username": "big", "password": "x".repeat(len)})).unwrap()
}

/// Whether this 429 is nginx's own (its HTML page), not one the app sent through it.
fn from_nginx(body: &str) -> bool {
    body.contains("<title>429 Too Many Requests</title>")
}

#[tokio::test]
async fn a_body_over_the_apps_limit_gets_413_from_nginx_every_time() {
    let app = spawn(1).await;
    let door = front_door(&app);
    let big = json_body(3 * 1024 * 1024);
    // Measured before: 3 of 5 tries were a 502 (the app answered 400 before nginx had sent the body).
    for attempt in 1..=5 {
        let r = app
            .client
            .post(format!("{door}/api/v1/auth/register"))
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("try {attempt}: no answer: {e}"));
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE, "try {attempt}");
        assert_eq!(r.headers()["content-type"], "application/json", "try {attempt}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "payload_too_large", "try {attempt}: {v}");
    }
    // The server functions take no more than the REST API.
    let r = app
        .client
        .post(format!("{door}/api/fn/create_api_token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("name={}", "x".repeat(3 * 1024 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Under the limit, the body reaches the app (which judges it: a 400 for the password).
    let r = app
        .client
        .post(format!("{door}/api/v1/auth/register"))
        .header("content-type", "application/json")
        .body(json_body(1024 * 1024))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert!(status.is_client_error() && status != StatusCode::PAYLOAD_TOO_LARGE, "{status}: {v}");
    assert!(v["error"]["code"].is_string(), "the app's own error: {v}");
}

#[tokio::test]
async fn more_log_ins_than_the_burst_from_one_address_get_429_from_nginx() {
    let app = spawn(1).await;
    let door = front_door(&app);
    let mut answers = Vec::new();
    for i in 0..45 {
        // A new login name each time: the app's own per-account limit never applies.
        let r = app
            .client
            .post(format!("{door}/api/fn/login"))
            .header("accept", "application/json")
            .form(&[("login", format!("nobody{i}")), ("password", "wrong password".into())])
            .send()
            .await
            .unwrap();
        let status = r.status();
        answers.push((status, from_nginx(&r.text().await.unwrap())));
    }
    // nginx allows 30 at once (burst), then one every 2 s.
    assert!(answers[..30].iter().all(|(_, nginx)| !nginx), "{answers:?}");
    let refused = answers[30..].iter().filter(|(s, nginx)| *s == StatusCode::TOO_MANY_REQUESTS && *nginx).count();
    assert!(refused >= 10, "{refused} of the last 15 were refused by nginx: {answers:?}");
}

#[tokio::test]
async fn more_than_20_held_requests_from_one_address_get_429_from_nginx() {
    // One account here: its own cap (8 by default) would refuse first.
    let app = spawn_with(1, &["--max-streams-per-user", "50"]).await;
    let door = front_door(&app);
    let tok = app.register("holder").await;
    let id = app.create_host(&tok).await;
    let stream = || app.client.get(format!("{door}/api/v1/hostings/{id}/stream")).bearer_auth(&tok).send();
    let mut open = Vec::new();
    for n in 1..=20 {
        let r = stream().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "stream {n}");
        open.push(r);
    }
    // The 21st stream, and a long poll however its query is spelt, are refused by nginx...
    for path in [format!("/api/v1/hostings/{id}/stream"), format!("/api/v1/hostings/{id}?wait=5"), format!("/api/v1/hostings/{id}?%77ait=5")] {
        let r = app.client.get(format!("{door}{path}")).bearer_auth(&tok).send().await.unwrap();
        let status = r.status();
        assert!(status == StatusCode::TOO_MANY_REQUESTS && from_nginx(&r.text().await.unwrap()), "{path}: {status}");
    }
    // ...while short requests still pass.
    let r = app.client.get(format!("{door}/api/v1/hostings/{id}")).bearer_auth(&tok).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    drop(open);
}

#[tokio::test]
async fn nginx_answers_an_unknown_host_421_and_serves_the_dashboards_names() {
    let app = spawn(1).await;
    let door = front_door(&app);
    let get = |host: &'static str| app.client.get(format!("{door}/api/v1/health")).header("host", host).send();
    for host in ["evil.example", "10.1.2.3", "localhost.evil.example"] {
        assert_eq!(get(host).await.unwrap().status(), StatusCode::MISDIRECTED_REQUEST, "{host}");
    }
    // The public host (127.0.0.1 here) and the loopback names reach the app.
    for host in ["127.0.0.1", "localhost", "LOCALHOST:8080"] {
        assert_eq!(get(host).await.unwrap().status(), StatusCode::OK, "{host}");
    }
}

#[tokio::test]
async fn an_event_stream_through_nginx_ends_cleanly_after_a_reload_instead_of_being_cut() {
    let app = spawn(3).await;
    let door = front_door(&app);
    let tok = app.register("follower").await;
    let id = app.create_host(&tok).await;
    app.wait_for(&tok, "running").await;
    let r = app.client.get(format!("{door}/api/v1/hostings/{id}/stream")).bearer_auth(&tok).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Another tenant's new site reloads nginx; its old worker would cut this stream 10 s later.
    let other = app.register("newcomer").await;
    app.create_host(&other).await;
    app.wait_for(&other, "running").await;
    let body = tokio::time::timeout(Duration::from_secs(8), r.text()).await;
    let text = body.expect("the stream ended by itself soon after the reload").expect("a clean end, not a cut");
    assert!(text.contains("event: hosting"), "{text}");
}
