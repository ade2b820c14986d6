//! Administrators switching accounts off and on, as the person on each side meets it: the
//! disabled user's open session, login token and API token stop at once, logging in again is
//! refused with its own code (the form says why), enabling restores it, nobody else may do it,
//! and an administrator cannot lock themselves out. And each account's own activity list.
use app::error::AppError;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, app_error, assert_api_error, client_with, me_with, send, spawn_signed_up};

async fn bearer(app: &TestApp, login: &str, password: &str) -> (StatusCode, Value) {
    send(reqwest::Client::new().post(app.url("/api/v1/auth/login")).form(&[("username", login), ("password", password)])).await
}

async fn token_of(app: &TestApp, u: &TestUser) -> String {
    let (s, v) = bearer(app, &u.username, &u.password).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["access_token"].as_str().unwrap().to_owned()
}

async fn me_status(app: &TestApp, token: &str) -> StatusCode {
    reqwest::Client::new().get(app.url("/api/v1/users/me")).bearer_auth(token).send().await.unwrap().status()
}

/// A second browser with its own cookies, signed up as a new user.
async fn second_browser(app: &TestApp) -> (reqwest::Client, TestUser, i32) {
    let client = client_with(std::sync::Arc::new(reqwest::cookie::Jar::default()));
    let u = TestUser::generate();
    let r = client
        .post(app.url("/api/fn/signup"))
        .header("accept", "application/json")
        .form(&[("email", u.email.as_str()), ("username", u.username.as_str()), ("password", u.password.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let id = me_with(&client, &app.address).await.unwrap()["id"].as_i64().unwrap() as i32;
    (client, u, id)
}

async fn admin_post(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    send(reqwest::Client::new().post(app.url(path)).bearer_auth(token)).await
}

#[tokio::test]
async fn a_disabled_user_is_signed_out_everywhere_at_once_and_cannot_log_in_until_enabled() {
    let (app, root) = spawn_signed_up().await;
    let root_view = service::accounts::Accounts::new(app.db.clone()).set_admin(&root.username, true).await.unwrap();
    let admin = token_of(&app, &root).await;
    let (bob_browser, bob, bob_id) = second_browser(&app).await;
    let bob_login = token_of(&app, &bob).await;
    let (s, t) = send(reqwest::Client::new().post(app.url("/api/v1/tokens")).bearer_auth(&bob_login).json(&json!({"name": "ci", "password": bob.password}))).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let bob_api = t["token"].as_str().unwrap().to_owned();

    // Bob is no administrator: REST and the page's server function both refuse him.
    let (s, v) = admin_post(&app, &bob_login, &format!("/api/v1/admin/users/{}/disable", root_view.id)).await;
    assert_api_error(s, &v, StatusCode::FORBIDDEN, "forbidden");
    let (s, v) = send(reqwest::Client::new().get(app.url("/api/v1/admin/users")).bearer_auth(&bob_api)).await;
    assert_api_error(s, &v, StatusCode::FORBIDDEN, "forbidden");
    let r = bob_browser
        .post(app.url("/api/fn/admin_set_disabled"))
        .header("accept", "application/json")
        .form(&[("user_id", root_view.id.to_string()), ("disabled", "true".into())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(app_error(r).await, AppError::Forbidden);

    // The administrator cannot disable themselves.
    let (s, v) = admin_post(&app, &admin, &format!("/api/v1/admin/users/{}/disable", root_view.id)).await;
    assert_api_error(s, &v, StatusCode::CONFLICT, "conflict");
    let (s, v) = admin_post(&app, &admin, "/api/v1/admin/users/99999/disable").await;
    assert_api_error(s, &v, StatusCode::NOT_FOUND, "not_found");

    let (s, v) = admin_post(&app, &admin, &format!("/api/v1/admin/users/{bob_id}/disable")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["disabled_at"].as_i64().is_some(), "{v}");
    let (_, users) = send(reqwest::Client::new().get(app.url("/api/v1/admin/users")).bearer_auth(&admin)).await;
    let listed = users.as_array().unwrap().iter().find(|u| u["id"] == bob_id).unwrap().clone();
    assert!(listed["disabled_at"].as_i64().is_some(), "{users}");

    // Everything Bob was signed in with stops on the next request.
    assert!(me_with(&bob_browser, &app.address).await.is_none(), "the session cookie is refused");
    assert_eq!(me_status(&app, &bob_login).await, StatusCode::UNAUTHORIZED, "the login token");
    assert_eq!(me_status(&app, &bob_api).await, StatusCode::UNAUTHORIZED, "the API token");
    // Logging in again: the right password gets its own answer; a wrong one learns nothing.
    let (s, v) = bearer(&app, &bob.username, &bob.password).await;
    assert_api_error(s, &v, StatusCode::FORBIDDEN, "account_disabled");
    let (s, v) = bearer(&app, &bob.username, "not his password").await;
    assert_api_error(s, &v, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let r = bob_browser
        .post(app.url("/api/fn/login"))
        .header("accept", "application/json")
        .form(&[("login", bob.username.as_str()), ("password", bob.password.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let err = app_error(r).await;
    assert!(err.for_field("login").is_some_and(|m| m.contains("disabled by an administrator")), "the form says why: {err:?}");
    assert!(me_with(&bob_browser, &app.address).await.is_none());

    // Enabled again: he logs in (old credentials stay void).
    let (s, v) = admin_post(&app, &admin, &format!("/api/v1/admin/users/{bob_id}/enable")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["disabled_at"].is_null(), "{v}");
    assert_eq!(me_status(&app, &bob_api).await, StatusCode::UNAUTHORIZED, "the old API token stays revoked");
    let fresh = token_of(&app, &bob).await;
    assert_eq!(me_status(&app, &fresh).await, StatusCode::OK);
    // The admin page's server function works for the administrator.
    let r = app.server_fn("admin_set_disabled", &[("user_id", &bob_id.to_string()), ("disabled", "true")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(me_status(&app, &fresh).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn account_activity_shows_failed_and_successful_logins_with_their_address_to_its_owner_only() {
    let (app, ann) = spawn_signed_up().await;
    let (bob_browser, _bob, _) = second_browser(&app).await;
    // Behind nginx (a loopback peer) the client's address is X-Real-IP.
    let login_from = |ip: &'static str, password: &str| {
        app.client
            .post(app.url("/api/fn/login"))
            .header("accept", "application/json")
            .header("x-real-ip", ip)
            .form(&[("login", ann.username.clone()), ("password", password.to_owned())])
            .send()
    };
    assert_eq!(login_from("198.51.100.7", "a wrong guess").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(login_from("203.0.113.9", &ann.password).await.unwrap().status(), StatusCode::OK);

    let (s, list) = send(app.client.get(app.url("/api/v1/account/activity"))).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let entries: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["client_ip"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(entries[..2], [("login_succeeded", "203.0.113.9"), ("login_failed", "198.51.100.7")], "newest first: {list}");
    let html = app.get_html("/settings").await.text().await.unwrap();
    assert!(html.contains(r#"data-testid="activity""#) && html.contains("Failed login") && html.contains("from 198.51.100.7"), "the settings page lists it");

    // Bob sees his own sign-up session only: none of Ann's entries.
    let (s, theirs) = send(bob_browser.get(app.url("/api/v1/account/activity"))).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!theirs.to_string().contains("198.51.100.7") && !theirs.to_string().contains("203.0.113.9"), "{theirs}");
    let r = reqwest::Client::new().get(app.url("/api/v1/account/activity")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
