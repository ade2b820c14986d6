use reqwest::StatusCode;

use crate::helpers::{assert_api_error, assert_field_error, send, spawn_app};

#[tokio::test]
async fn health_reports_the_database_and_carries_a_request_id() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/api/v1/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers().get("x-request-id").expect("a request id").to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a uuid: {id}");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["libvirt"], "disabled", "started with --no-libvirt");
    assert_eq!(body["nginx"], "disabled");

    // A request id the caller (or nginx) sent is kept.
    let r = app.client.get(app.url("/api/v1/health")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
}

#[tokio::test]
async fn health_is_503_and_says_the_database_is_down_without_its_error() {
    let app = spawn_app().await;
    app.db.clone().close().await.unwrap();
    let r = app.client.get(app.url("/api/v1/health")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["database"], "down", "a state word, not the driver's error: {body}");
    for part in ["database", "libvirt", "nginx", "status"] {
        let v = body[part].as_str().unwrap();
        assert!(["ok", "degraded", "down", "disabled"].contains(&v), "{part}: {v}");
    }
}

#[tokio::test]
async fn api_errors_have_one_json_shape() {
    let app = spawn_app().await;
    let register = || app.client.post(app.url("/api/v1/auth/register"));
    // Bad JSON body.
    let (s, body) = send(register().header("content-type", "application/json").body("{not json")).await;
    assert_api_error(s, &body, StatusCode::BAD_REQUEST, "invalid_json");
    // A field error from the service layer.
    let (s, body) =
        send(register().json(&serde_json::json!({"email": "not-an-email", "username": "valid-name", "password": "long enough pw"}))).await;
    assert_field_error(s, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "email");
    // Unknown endpoint and missing auth.
    for (path, status, code) in
        [("/api/v1/nope", StatusCode::NOT_FOUND, "not_found"), ("/api/v1/users/me", StatusCode::UNAUTHORIZED, "unauthorized")]
    {
        let (s, body) = send(app.client.get(app.url(path))).await;
        assert_api_error(s, &body, status, code);
    }
}
