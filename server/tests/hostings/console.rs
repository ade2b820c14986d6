//! The console's WebSocket: only the owner (or an admin), only from the dashboard's origin, a
//! session cookie or a bearer header (never a URL token), and one writer at a time (a second
//! console takes over and the first is told). The test driver has no console streams, so the
//! bytes themselves are the browser test's (end2end/console.test.mjs) and the real-VM one's.
use std::sync::Arc;

use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::cookie::{CookieStore, Jar};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use vmw_test_support::http::{assert_api_error as assert_error, assert_field_error, client_with, send};

use super::{App, M, spawn};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl App {
    /// A logged-in browser session of `login`: its cookie header.
    async fn session_cookie(&self, login: &str) -> String {
        let jar = Arc::new(Jar::default());
        let ui = client_with(jar.clone());
        let r = ui
            .post(self.url("/api/fn/login"))
            .header("accept", "application/json")
            .form(&[("login", login), ("password", "correct horse battery")])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success() || r.status().is_redirection(), "{}", r.status());
        let cookie = jar.cookies(&self.base.parse().unwrap()).expect("a session cookie");
        cookie.to_str().unwrap().to_owned()
    }

    /// Opens hosting `id`'s console with these headers: the socket, or the HTTP status it got.
    async fn console(&self, id: i64, headers: &[(&str, &str)]) -> Result<Socket, StatusCode> {
        let url = format!("{}/api/v1/hostings/{id}/console/ws", self.base.replace("http://", "ws://"));
        let mut req = url.into_client_request().unwrap();
        for (k, v) in headers {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap();
            req.headers_mut().insert(name, v.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, resp)) => {
                assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
                Ok(ws)
            }
            Err(WsError::Http(resp)) => Err(resp.status()),
            Err(e) => panic!("console handshake: {e}"),
        }
    }
}

/// The next status message, skipping console bytes.
async fn next_status(ws: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            assert_eq!(v["type"], "status", "{v}");
            return v;
        }
    }
}

#[tokio::test]
async fn only_the_owner_opens_the_console_and_only_from_the_dashboard() {
    let app = spawn(3).await;
    let alice = app.register("alice").await;
    let _mallory = app.register("mallory").await;
    let id = app.create_host(&alice).await;
    app.wait_for(&alice, "running").await;
    let own = app.base.clone();
    let alice_cookie = app.session_cookie("alice").await;
    let mallory_cookie = app.session_cookie("mallory").await;

    assert_eq!(app.console(id, &[("origin", &own)]).await.err(), Some(StatusCode::UNAUTHORIZED), "no credential");
    assert_eq!(
        app.console(id, &[("cookie", &mallory_cookie), ("origin", &own)]).await.err(),
        Some(StatusCode::NOT_FOUND),
        "a stranger's session: as if the site did not exist"
    );
    // A token, even the owner's, never opens a shell: the console takes the dashboard session.
    let alice_bearer = format!("Bearer {alice}");
    assert_eq!(app.console(id, &[("authorization", &alice_bearer), ("origin", &own)]).await.err(), Some(StatusCode::UNAUTHORIZED));
    let (s, b) = send(app.client.get(app.url(&format!("/api/v1/hostings/{id}/console/ws"))).bearer_auth(&alice)).await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "session_required");
    assert_eq!(app.console(9999, &[("cookie", &alice_cookie), ("origin", &own)]).await.err(), Some(StatusCode::NOT_FOUND));
    // Another site's page, a tenant's site, a sandboxed page, or a cookie with no Origin at all:
    // refused, although the cookie is the owner's.
    for origin in [Some("http://evil.example"), Some("http://alice.localhost"), Some("null"), None] {
        let mut h = vec![("cookie", alice_cookie.as_str())];
        h.extend(origin.map(|o| ("origin", o)));
        assert_eq!(app.console(id, &h).await.err(), Some(StatusCode::FORBIDDEN), "origin {origin:?}");
    }
    // Issue 28: the site's own raw HTTP forward on the dashboard's host (another port of it) is
    // another origin, however its page got the owner's cookie.
    let (_, v) = app.call(reqwest::Method::GET, &format!("/api/v1/hostings/{id}"), &alice, None).await;
    let raw = format!("http://127.0.0.1:{}", v["http_port"].as_i64().expect("the site's HTTP port"));
    assert_eq!(app.console(id, &[("cookie", &alice_cookie), ("origin", &raw)]).await.err(), Some(StatusCode::FORBIDDEN), "{raw}");
    // Not a handshake: a plain GET says what it wants.
    let plain = app.client.get(app.url(&format!("/api/v1/hostings/{id}/console/ws"))).header("cookie", &alice_cookie).header("origin", &own);
    let (s, b) = send(plain).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "websocket_required");

    // The owner, from the dashboard: a status first (the test driver has no console stream,
    // so it waits for one; a real VM says connected).
    let mut first = app.console(id, &[("cookie", &alice_cookie), ("origin", &own)]).await.expect("the owner's console opens");
    let st = next_status(&mut first).await;
    assert!(matches!(st["state"].as_str(), Some("waiting" | "connected")), "{st}");
    // One writer: a second console takes over, and the first is told and closed (4001: its
    // page does not reconnect by itself).
    let other_tab = app.session_cookie("alice").await;
    let mut second = app.console(id, &[("cookie", &other_tab), ("origin", &own)]).await.expect("a second session's console opens");
    assert_eq!(next_status(&mut first).await["state"], "taken_over");
    match tokio::time::timeout(std::time::Duration::from_secs(5), first.next()).await.unwrap() {
        Some(Ok(Message::Close(Some(f)))) => assert_eq!(f.code, CloseCode::from(4001)),
        other => panic!("expected a close frame, got {other:?}"),
    }
    assert!(matches!(next_status(&mut second).await["state"].as_str(), Some("waiting" | "connected")));
}

#[tokio::test]
async fn the_console_password_is_the_owners_to_set_and_is_checked() {
    let app = spawn(3).await;
    let alice = app.register("alice").await;
    let mallory = app.register("mallory").await;
    let id = app.create_host(&alice).await;
    app.wait_for(&alice, "running").await;
    let path = format!("/api/v1/hostings/{id}/console/password");
    let good = json!({"password": "correct horse staple", "confirm": "correct horse staple"});
    let (s, b) = app.call(M::POST, &path, &mallory, Some(good.clone())).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = app.call(M::POST, &path, &alice, Some(json!({"password": "short", "confirm": "short"}))).await;
    assert_field_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "password");
    let (s, b) = app.call(M::POST, &path, &alice, Some(json!({"password": "correct horse staple", "confirm": "correct horse stable"}))).await;
    assert_field_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "confirm");
    let (s, b) = app.call(M::POST, &path, &alice, Some(json!({"password": "two\nlines here", "confirm": "two\nlines here"}))).await;
    assert_field_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "password");
    // The server function, with mallory's session: 404 too.
    let mallory_cookie = app.session_cookie("mallory").await;
    let r = app
        .client
        .post(app.url("/api/fn/set_console_password"))
        .header("cookie", mallory_cookie)
        .header("accept", "application/json")
        .form(&[("id", id.to_string().as_str()), ("password", "correct horse staple"), ("confirm", "correct horse staple")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // A stopped site has no running guest to take it.
    app.act(&alice, "stop", "stopped").await;
    let (s, b) = app.call(M::POST, &path, &alice, Some(good)).await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
}
