//! A server started without libvirt still serves accounts; every hosting call says hosting is
//! unavailable here (503, its own code), not that something broke (500).
use app::error::AppError;

use crate::helpers::{TestUser, app_error, spawn_app};

#[tokio::test]
async fn hosting_calls_answer_503_hosting_unavailable_without_libvirt() {
    let app = spawn_app().await; // --no-libvirt
    let u = TestUser::generate();
    assert_eq!(app.signup(&u).await.status(), 200);
    assert!(app.me().await.is_some(), "accounts work without libvirt");

    for (method, path) in [("GET", "/api/v1/hostings"), ("POST", "/api/v1/hostings"), ("GET", "/api/v1/host"), ("POST", "/api/v1/host")] {
        let req = match method {
            "GET" => app.client.get(app.url(path)),
            _ => app.client.post(app.url(path)).json(&serde_json::json!({"slug": "my-site", "plan": "small"})),
        };
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 503, "{method} {path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "hosting_unavailable", "{method} {path}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("libvirt"), "the reason is given: {body}");
    }

    // The app's own pages call server functions: same status, and a message to show.
    let r = app.server_fn("create_hosting", &[("slug", "my-site"), ("plan", "small")]).await;
    assert_eq!(r.status(), 503);
    match app_error(r).await {
        AppError::Unavailable(m) => assert!(m.contains("without libvirt"), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }

    // Still signed-in only: a stranger gets 401, not a hint about the server's set-up.
    let r = reqwest::Client::new().get(app.url("/api/v1/hostings")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}
