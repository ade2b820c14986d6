//! Snapshots over the REST API: take (with ?wait), list, restore, delete; a bad name and the
//! quota with their JSON errors; someone else's hosting answers 404; busy answers 409.
use reqwest::StatusCode;
use serde_json::json;

use super::{M, assert_error, assert_field_error, spawn_with};

#[tokio::test]
async fn snapshots_are_taken_listed_restored_and_deleted_through_the_api() {
    let app = spawn_with(1, &["--snapshots-per-user", "1"]).await;
    let ann = app.register("annie").await;
    let eve = app.register("evelyn").await;
    let id = app.create_host(&ann).await;
    app.wait_for(&ann, "running").await;
    let base = format!("/api/v1/hostings/{id}/snapshots");

    let (s, b) = app.call(M::POST, &base, &ann, Some(json!({"name": "../etc/passwd"}))).await;
    assert_field_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "name");
    let (s, b) = app.call(M::POST, &base, &ann, Some(json!({"title": "x"}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = app.call(M::POST, &base, &eve, Some(json!({"name": "mine"}))).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");

    let (s, snap) = app.call(M::POST, &format!("{base}?wait=60"), &ann, Some(json!({"name": "before upgrade"}))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{snap}");
    assert_eq!((snap["name"].as_str(), snap["state"].as_str()), (Some("before upgrade"), Some("ready")), "{snap}");
    assert!(snap["size_bytes"].as_i64().unwrap() > 0);
    let sid = snap["id"].as_i64().unwrap();

    let (s, list) = app.call(M::GET, &base, &ann, None).await;
    assert_eq!((s, list.as_array().map(|a| a.len())), (StatusCode::OK, Some(1)), "{list}");
    let (s, b) = app.call(M::GET, &base, &eve, None).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");

    let (s, b) = app.call(M::POST, &base, &ann, Some(json!({"name": "second"}))).await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "quota_exceeded");

    for (m, path) in [(M::POST, format!("{base}/{sid}/restore")), (M::DELETE, format!("{base}/{sid}"))] {
        let (s, b) = app.call(m, &path, &eve, None).await;
        assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    }
    let (s, v) = app.call(M::POST, &format!("{base}/{sid}/restore?wait=60"), &ann, None).await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::ACCEPTED, Some("running")), "{v}");
    let (s, b) = app.call(M::POST, &format!("{base}/{}/restore", sid + 1000), &ann, None).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");

    // Busy: a stop in flight.
    app.svc.faults().set_op_delay(std::time::Duration::from_millis(500));
    let (s, _) = app.call(M::POST, &format!("/api/v1/hostings/{id}/stop"), &ann, None).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, b) = app.call(M::POST, &format!("{base}/{sid}/restore"), &ann, None).await;
    assert_error(s, &b, StatusCode::CONFLICT, "busy");
    app.wait_for(&ann, "stopped").await;
    app.svc.faults().set_op_delay(std::time::Duration::ZERO);
    // Powered off, a site has no memory to take.
    app.act(&ann, "start", "running").await;
    app.act(&ann, "power_off", "stopped").await;
    let (s, b) = app.call(M::POST, &base, &ann, Some(json!({"name": "stopped"}))).await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    assert!(b["error"]["message"].as_str().unwrap_or("").contains("powered off"), "{b}");

    let (s, _) = app.call(M::DELETE, &format!("{base}/{sid}"), &ann, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, list) = app.call(M::GET, &base, &ann, None).await;
    assert_eq!(list, json!([]));
}
