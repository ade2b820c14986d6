//! A site's backup schedule over the REST API (owner or admin, others 404; 422 with the field
//! at fault; the overview shows it) and the administrators' stale-backups list (others 403).
use reqwest::StatusCode;
use serde_json::json;

use super::{M, assert_error, spawn_with};

#[tokio::test]
async fn a_backup_schedule_is_set_by_its_owner_checked_field_by_field_and_hidden_from_others() {
    let app = spawn_with(1, &["--first-user-admin"]).await;
    let root = app.register("chief").await;
    let ann = app.register("annie").await;
    let eve = app.register("evelyn").await;
    let id = app.create_host(&ann).await;
    let path = format!("/api/v1/hostings/{id}/backup-schedule");

    let (s, v) = app.call(M::GET, &path, &ann, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!((v["schedule"]["frequency"].as_str(), v["next_run_at"].clone()), (Some("off"), json!(null)), "off by default: {v}");
    assert_eq!(v["quota_bytes"], json!(20480i64 << 20), "{v}");

    let daily = json!({"frequency": "daily", "hour": 3, "minute": 15, "keep_daily": 7, "keep_weekly": 4, "keep_monthly": 6});
    for who in [&eve] {
        let (s, b) = app.call(M::PUT, &path, who, Some(daily.clone())).await;
        assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
        let (s, b) = app.call(M::GET, &path, who, None).await;
        assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    }
    let bad = [
        (json!({"hour": 24}), "hour"),
        (json!({"minute": 60}), "minute"),
        (json!({"frequency": "weekly"}), "weekday"),
        (json!({"keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0}), "keep_daily"),
        (json!({"keep_weekly": 100_000}), "keep_weekly"),
    ];
    for (change, field) in bad {
        let mut body = daily.clone();
        body.as_object_mut().unwrap().extend(change.as_object().unwrap().clone());
        let (s, b) = app.call(M::PUT, &path, &ann, Some(body.clone())).await;
        assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(b["error"]["field"].as_str(), Some(field), "{body} -> {b}");
    }
    let (s, b) = app.call(M::PUT, &path, &ann, Some(json!({"frequency": "hourly", "hour": 1, "minute": 0, "keep_daily": 1, "keep_weekly": 0, "keep_monthly": 0}))).await;
    assert!(s.is_client_error(), "{s} {b}");

    let (s, v) = app.call(M::PUT, &path, &ann, Some(daily.clone())).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["schedule"]["hour"], json!(3));
    let next = v["next_run_at"].as_i64().expect("a next run");
    let spread = v["spread_secs"].as_i64().unwrap();
    assert!((0..1800).contains(&spread), "{v}");
    let minute_of_day = (next / 1000).rem_euclid(86_400) / 60;
    assert_eq!(minute_of_day, 3 * 60 + 15 + spread / 60, "the owner's time (UTC) plus the site's spread: {v}");

    // An administrator may set it too.
    let weekly = json!({"frequency": "weekly", "weekday": "sunday", "hour": 0, "minute": 0, "keep_daily": 0, "keep_weekly": 4, "keep_monthly": 0, "with_memory": true});
    let (s, v) = app.call(M::PUT, &path, &root, Some(weekly)).await;
    assert_eq!((s, v["schedule"]["weekday"].as_str()), (StatusCode::OK, Some("sunday")), "{v}");
    let (_, v) = app.call(M::GET, &path, &ann, None).await;
    assert_eq!(v["schedule"]["with_memory"], json!(true), "{v}");
}

#[tokio::test]
async fn only_administrators_see_the_sites_whose_backups_are_stale() {
    let app = spawn_with(1, &["--first-user-admin"]).await;
    let root = app.register("chief").await;
    let ann = app.register("annie").await;
    let (s, b) = app.call(M::GET, "/api/v1/admin/backups/stale", &ann, None).await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, v) = app.call(M::GET, "/api/v1/admin/backups/stale", &root, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["stale"], json!([]), "a schedule just set is not stale: {v}");
    assert_eq!(v["repository_on_node_disk"], json!(true), "the default repository is on the node: {v}");
    let doc: serde_json::Value = app.client.get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    for p in ["/api/v1/hostings/{id}/backup-schedule", "/api/v1/admin/backups/stale"] {
        assert!(doc["paths"][p].is_object(), "{p} is documented");
    }
    assert!(doc["paths"]["/api/v1/hostings/{id}/backup-schedule"]["put"].is_object());
}
