//! `/api/v1/auth/sessions` and the settings page's server functions (issue #32, item 3): two
//! browsers of one user are listed with the right one marked current, ending the other logs it
//! out at its next request, another user can neither see nor end them (404), a bearer token
//! has no current session, and last seen is written at most once a minute.
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::Value;

use crate::helpers::{TestApp, TestUser, assert_api_error, client_with, me_with, spawn_signed_up};
use vmw_test_support::http::status_and_json;

const FIREFOX_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";

/// A second browser of `u`: its own cookie jar, a Firefox user agent.
async fn second_browser(app: &TestApp, u: &TestUser) -> reqwest::Client {
    let client = client_with(std::sync::Arc::new(reqwest::cookie::Jar::default()));
    let r = client
        .post(app.url("/api/fn/login"))
        .header("accept", "application/json")
        .header("user-agent", FIREFOX_LINUX)
        .form(&[("login", u.username.as_str()), ("password", u.password.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    client
}

async fn api_error(r: reqwest::Response, want: StatusCode, code: &str) {
    let (status, body) = status_and_json(r).await;
    assert_api_error(status, &body, want, code);
}

async fn list(client: &reqwest::Client, app: &TestApp) -> Vec<Value> {
    let r = client.get(app.url("/api/v1/auth/sessions")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn current_of(list: &[Value]) -> Vec<&str> {
    list.iter().filter(|s| s["current"] == true).map(|s| s["id"].as_str().unwrap()).collect()
}

async fn bearer(app: &TestApp, u: &TestUser) -> String {
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/auth/login"))
        .form(&[("username", u.username.as_str()), ("password", u.password.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn two_browsers_are_listed_and_ending_the_other_logs_it_out() {
    let (app, u) = spawn_signed_up().await;
    let other = second_browser(&app, &u).await;

    let mine = list(&app.client, &app).await;
    assert_eq!(mine.len(), 2, "{mine:?}");
    let theirs = list(&other, &app).await;
    assert_eq!(current_of(&mine).len(), 1);
    assert_eq!(current_of(&theirs).len(), 1);
    assert_ne!(current_of(&mine), current_of(&theirs), "each browser is told which one it is");
    let other_id = current_of(&theirs)[0].to_owned();
    let firefox = mine.iter().find(|s| s["id"] == other_id.as_str()).unwrap();
    assert_eq!(firefox["browser"], "Firefox on Linux");
    assert_eq!(firefox["client_ip"], "127.0.0.1");
    assert!(firefox["created_at"].as_i64().unwrap() > 0 && firefox["last_seen_at"].as_i64() >= firefox["created_at"].as_i64());
    let cookie = app.session_cookie().unwrap();
    assert!(mine.iter().all(|s| s["id"] != cookie.as_str()), "the cookie is never shown");

    let r = app.client.delete(app.url(&format!("/api/v1/auth/sessions/{other_id}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(me_with(&other, &app.address).await.is_none(), "the ended browser is logged out");
    let r = other.get(app.url("/settings")).header("accept", "text/html").send().await.unwrap();
    assert!(r.status().is_redirection(), "its pages send it to log in: {}", r.status());
    assert!(app.me().await.is_some(), "this one goes on");
    assert_eq!(list(&app.client, &app).await.len(), 1);

    let r = app.client.delete(app.url(&format!("/api/v1/auth/sessions/{other_id}"))).send().await.unwrap();
    api_error(r, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn another_user_can_neither_see_nor_end_them() {
    let (app, u) = spawn_signed_up().await;
    let mine = list(&app.client, &app).await;
    let my_id = mine[0]["id"].as_str().unwrap().to_owned();

    let stranger = TestUser::generate();
    let other = client_with(std::sync::Arc::new(reqwest::cookie::Jar::default()));
    let r = other
        .post(app.url("/api/fn/signup"))
        .header("accept", "application/json")
        .form(&[("email", stranger.email.as_str()), ("username", &stranger.username), ("password", &stranger.password)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let theirs = list(&other, &app).await;
    assert_eq!(theirs.len(), 1);
    assert!(theirs.iter().all(|s| s["id"] != my_id.as_str()));

    let r = other.delete(app.url(&format!("/api/v1/auth/sessions/{my_id}"))).send().await.unwrap();
    api_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let token = bearer(&app, &stranger).await;
    let r = reqwest::Client::new().delete(app.url(&format!("/api/v1/auth/sessions/{my_id}"))).bearer_auth(&token).send().await.unwrap();
    api_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app.server_fn("end_session", &[("id", "no-such-session")]).await;
    assert_eq!(r.status(), 404);
    assert!(app.me().await.is_some(), "still logged in");
    let _ = u;

    // Without a login at all: 401.
    let r = reqwest::Client::new().get(app.url("/api/v1/auth/sessions")).send().await.unwrap();
    api_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn all_others_keeps_this_one_and_a_bearer_token_ends_them_all() {
    let (app, u) = spawn_signed_up().await;
    let b = second_browser(&app, &u).await;
    let c = second_browser(&app, &u).await;

    // The settings page's "End all other sessions".
    let r = app.server_fn("end_other_sessions", &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<u64>().await.unwrap(), 2);
    assert!(me_with(&b, &app.address).await.is_none() && me_with(&c, &app.address).await.is_none());
    assert!(app.me().await.is_some());

    let d = second_browser(&app, &u).await;
    let r = d.delete(app.url("/api/v1/auth/sessions?others=true")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["ended"], 1);
    assert!(app.me().await.is_none(), "the first browser was one of the others");
    assert!(me_with(&d, &app.address).await.is_some());

    // A bearer token has no session of its own: it lists every one with none current, and
    // "all others" is all.
    let token = bearer(&app, &u).await;
    let api = reqwest::Client::new();
    let listed: Vec<Value> = api.get(app.url("/api/v1/auth/sessions")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(current_of(&listed).is_empty());
    let r = api.delete(app.url("/api/v1/auth/sessions?others=true")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["ended"], 1);
    assert!(me_with(&d, &app.address).await.is_none());
    let r = api.get(app.url("/api/v1/users/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200, "the token itself keeps working");
}

#[tokio::test]
async fn a_cross_site_delete_is_refused() {
    let (app, u) = spawn_signed_up().await;
    let b = second_browser(&app, &u).await;
    let r = app
        .client
        .delete(app.url("/api/v1/auth/sessions?others=true"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(me_with(&b, &app.address).await.is_some());
}

async fn last_seen(app: &TestApp, id: &str) -> i64 {
    let rows = app
        .db
        .query_one_raw(Statement::from_sql_and_values(
            app.db.get_database_backend(),
            match app.db.get_database_backend() {
                sea_orm::DatabaseBackend::Postgres => "SELECT last_seen_at FROM login_sessions WHERE id = $1",
                _ => "SELECT last_seen_at FROM login_sessions WHERE id = ?",
            },
            [id.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    rows.try_get_by_index::<i64>(0).unwrap()
}

#[tokio::test]
async fn last_seen_is_written_at_most_once_a_minute() {
    let (app, _u) = spawn_signed_up().await;
    let id = list(&app.client, &app).await[0]["id"].as_str().unwrap().to_owned();
    let first = last_seen(&app, &id).await;
    for _ in 0..5 {
        assert!(app.me().await.is_some());
    }
    assert_eq!(last_seen(&app, &id).await, first, "five requests within a minute: no write");

    // A minute on: the session's note of when it was last written, and the row, put back.
    let back = 120_000;
    let backend = app.db.get_database_backend();
    app.db.execute_unprepared(&format!("UPDATE login_sessions SET last_seen_at = last_seen_at - {back}")).await.unwrap();
    let row = app
        .db
        .query_one_raw(Statement::from_string(backend, "SELECT id, data FROM sessions WHERE login_id IS NOT NULL"))
        .await
        .unwrap()
        .unwrap();
    let (sid, data): (String, String) = (row.try_get_by_index(0).unwrap(), row.try_get_by_index(1).unwrap());
    let mut data: Value = serde_json::from_str(&data).unwrap();
    data["seen_at"] = (data["seen_at"].as_i64().unwrap() - back).into();
    let sql = match backend {
        sea_orm::DatabaseBackend::Postgres => "UPDATE sessions SET data = $1 WHERE id = $2",
        _ => "UPDATE sessions SET data = ? WHERE id = ?",
    };
    app.db.execute_raw(Statement::from_sql_and_values(backend, sql, [data.to_string().into(), sid.into()])).await.unwrap();

    assert!(app.me().await.is_some());
    let now = last_seen(&app, &id).await;
    assert!(now >= first, "written again after a minute: {now} vs {first}");
    assert!(app.me().await.is_some());
    assert_eq!(last_seen(&app, &id).await, now, "and not again at once");
}
