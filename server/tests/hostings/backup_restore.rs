//! Restoring a backup and downloading it over the REST API: owner only (others 404), a backup
//! of another site 404, a bad target or a field that does not go with it 422, a backup that did
//! not succeed 409, busy 409, and a restore that fails (its snapshot is not in the repository)
//! leaves the site running as it was, with the snapshot of its state taken first
//! (service/tests/backup_restore.rs restores real overlays).
use reqwest::StatusCode;
use serde_json::json;

use super::{M, assert_error, spawn_with};

#[tokio::test]
async fn restores_and_downloads_are_checked_and_a_failed_restore_leaves_the_site_as_it_was() {
    let app = spawn_with(1, &[]).await;
    let ann = app.register("annie").await;
    let eve = app.register("evelyn").await;
    let id = app.create_host(&ann).await;
    app.wait_for(&ann, "running").await;
    let other = app.create_host(&eve).await;
    app.wait_for(&eve, "running").await;

    // A failed backup (the test driver's disks are not overlays).
    let (s, failed) = app.call(M::POST, &format!("/api/v1/hostings/{id}/backups?wait=60"), &ann, None).await;
    assert_eq!((s, failed["state"].as_str()), (StatusCode::ACCEPTED, Some("failed")), "{failed}");
    let fid = failed["id"].as_i64().unwrap();
    let restore = |bid: i64| format!("/api/v1/hostings/{id}/backups/{bid}/restore");
    let in_place = json!({"target": "in_place"});

    let (s, b) = app.call(M::POST, &restore(fid), &eve, Some(in_place.clone())).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    // Eve's own site, ann's backup: not found.
    let (s, b) = app.call(M::POST, &format!("/api/v1/hostings/{other}/backups/{fid}/restore"), &eve, Some(in_place.clone())).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = app.call(M::POST, &restore(fid), &ann, Some(in_place.clone())).await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    for (body, field) in [
        (json!({"target": "elsewhere"}), "target"),
        (json!({"target": "in_place", "slug": "x"}), "slug"),
        (json!({"target": "new_site", "node_id": 1}), "node_id"),
    ] {
        let (s, b) = app.call(M::POST, &restore(fid), &ann, Some(body.clone())).await;
        assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(b["error"]["field"].as_str(), Some(field), "{body}: {b}");
    }
    let dl = |h: i64, bid: i64| format!("/api/v1/hostings/{h}/backups/{bid}/download");
    let (s, b) = app.call(M::GET, &dl(id, fid), &eve, None).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = app.call(M::GET, &dl(other, fid), &eve, None).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = app.call(M::GET, &dl(id, fid), &ann, None).await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");

    // A succeeded row whose snapshot the repository does not have: the restore fails after the
    // snapshot of the current state, and the site runs as it was.
    let row = app.svc.store().require(id as i32).await.unwrap();
    let b = app.svc.store().insert_backup(&row, row.user_id.unwrap(), false, vmw_types::BackupTrigger::Manual).await.unwrap();
    let done = service::hosting::store::BackupDone { snapshot_id: "0123456789abcdef".into(), bytes_added: 1, bytes_total: 1 };
    app.svc.store().backup_succeeded(b.id, &done).await.unwrap();
    let bid = i64::from(b.id);

    // Busy: a stop in flight.
    app.svc.faults().set_op_delay(std::time::Duration::from_millis(500));
    let (s, _) = app.call(M::POST, &format!("/api/v1/hostings/{id}/restart"), &ann, None).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, body) = app.call(M::POST, &restore(bid), &ann, Some(in_place.clone())).await;
    assert_error(s, &body, StatusCode::CONFLICT, "busy");
    app.wait_for(&ann, "running").await;
    app.svc.faults().set_op_delay(std::time::Duration::ZERO);

    let (s, v) = app.call(M::POST, &format!("{}?wait=60", restore(bid)), &ann, Some(in_place.clone())).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!((v["state"].as_str(), v["operation"].as_str()), (Some("running"), None), "{v}");
    let reason = v["state_reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with(&format!("Restoring backup {bid} failed")) && reason.ends_with("the site is as it was"), "{v}");
    let (s, snaps) = app.call(M::GET, &format!("/api/v1/hostings/{id}/snapshots"), &ann, None).await;
    assert_eq!(s, StatusCode::OK);
    let name = format!("before restoring backup {bid}");
    assert!(snaps.as_array().unwrap().iter().any(|s| s["name"].as_str() == Some(&name)), "the snapshot taken first: {snaps}");

    // As a new site: a bad name 422 on `slug`; a taken one 409.
    let (s, b) = app.call(M::POST, &restore(bid), &ann, Some(json!({"target": "new_site", "slug": "No Good"}))).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(b["error"]["field"].as_str(), Some("slug"), "{b}");
    let (s, b) = app.call(M::POST, &restore(bid), &ann, Some(json!({"target": "new_site", "slug": "annie"}))).await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    // On another node: the owner of a site on a healthy node may not move it (an administrator
    // may; the owner too once its node is drained or down: service/tests/backup_restore_node.rs).
    for body in [json!({"target": "node"}), json!({"target": "node", "node_id": 999})] {
        let (s, b) = app.call(M::POST, &restore(bid), &ann, Some(body)).await;
        assert_error(s, &b, StatusCode::CONFLICT, "conflict");
        assert_eq!(b["error"]["field"].as_str(), Some("target"), "{b}");
        assert!(b["error"]["message"].as_str().unwrap_or("").contains("administrator"), "{b}");
    }
}
