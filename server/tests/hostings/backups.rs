//! "Back up now" over the REST API: owner only (others 404), 202 with the backup row, ?wait until
//! it ended, newest first, 409 while another operation runs. The test driver's disks are not
//! qcow2 overlays, so these backups fail at the capture: the reason is in the row and the site
//! is as it was (service/tests/hosting_backups.rs backs up real overlays).
use reqwest::StatusCode;
use serde_json::json;

use super::{M, assert_error, spawn_with};

#[tokio::test]
async fn a_backup_is_asked_for_listed_and_refused_to_others_through_the_api() {
    let app = spawn_with(1, &[]).await;
    let ann = app.register("annie").await;
    let eve = app.register("evelyn").await;
    let id = app.create_host(&ann).await;
    app.wait_for(&ann, "running").await;
    let base = format!("/api/v1/hostings/{id}/backups");

    let (s, b) = app.call(M::POST, &base, &eve, None).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = app.call(M::GET, &base, &eve, None).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = app.call(M::POST, &base, &ann, Some(json!({"with_memroy": true}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");

    let (s, first) = app.call(M::POST, &format!("{base}?wait=60"), &ann, None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{first}");
    assert_eq!(first["state"].as_str(), Some("failed"), "{first}");
    assert!(first["error"].as_str().is_some_and(|e| !e.is_empty()), "{first}");
    app.wait_for(&ann, "running").await;

    // Busy: a stop in flight.
    app.svc.faults().set_op_delay(std::time::Duration::from_millis(500));
    let (s, _) = app.call(M::POST, &format!("/api/v1/hostings/{id}/stop"), &ann, None).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, b) = app.call(M::POST, &base, &ann, Some(json!({"with_memory": false}))).await;
    assert_error(s, &b, StatusCode::CONFLICT, "busy");
    app.wait_for(&ann, "stopped").await;
    app.svc.faults().set_op_delay(std::time::Duration::ZERO);

    let (s, second) = app.call(M::POST, &base, &ann, Some(json!({"with_memory": true}))).await;
    assert_eq!((s, second["state"].as_str()), (StatusCode::ACCEPTED, Some("running")), "{second}");
    app.wait_for(&ann, "stopped").await;
    let (s, list) = app.call(M::GET, &base, &ann, None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let ids: Vec<i64> = list.as_array().unwrap().iter().map(|b| b["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [second["id"].as_i64().unwrap(), first["id"].as_i64().unwrap()], "newest first: {list}");
    assert_eq!(list[0]["with_memory"], json!(false), "a stopped site's memory is its saved one, not a snapshot's: {list}");
}
