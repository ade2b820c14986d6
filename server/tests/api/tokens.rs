//! API tokens as their owner and an attacker with a stolen session meet them: minting needs
//! the password, tokens may expire, a password change revokes them all, last use is shown.
use app::error::AppError;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, app_error, assert_field_error, send, spawn_signed_up};

async fn bearer(app: &TestApp, u: &TestUser) -> String {
    let r = app.client.post(app.url("/api/v1/auth/login")).form(&[("username", u.email.as_str()), ("password", u.password.as_str())]);
    let (s, v) = send(r).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["access_token"].as_str().unwrap().to_owned()
}

async fn create(app: &TestApp, auth: &str, body: Value) -> (StatusCode, Value) {
    send(reqwest::Client::new().post(app.url("/api/v1/tokens")).bearer_auth(auth).json(&body)).await
}

async fn me_status(app: &TestApp, token: &str) -> StatusCode {
    reqwest::Client::new().get(app.url("/api/v1/users/me")).bearer_auth(token).send().await.unwrap().status()
}

#[tokio::test]
async fn minting_a_token_over_rest_needs_the_current_password_and_may_set_an_expiry() {
    let (app, u) = spawn_signed_up().await;
    let login = bearer(&app, &u).await;
    let (s, v) = create(&app, &login, json!({"name": "ci", "password": "not my password"})).await;
    assert_field_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "wrong_password", "password");
    let (s, _) = create(&app, &login, json!({"name": "ci"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "the password is required");
    let (s, v) = create(&app, &login, json!({"name": "ci", "password": u.password, "expires_in_days": 0})).await;
    assert_field_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "expires_in_days");

    let (s, t) = create(&app, &login, json!({"name": "ci", "password": u.password, "expires_in_days": 30})).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let expires = t["expires_at"].as_i64().expect("the expiry is shown");
    assert!(expires > service::db::now_ms() + 29 * 86_400_000);
    assert!(t["last_used_at"].is_null());
    let token = t["token"].as_str().unwrap();
    assert_eq!(me_status(&app, token).await, StatusCode::OK);
    let (s, list) = send(reqwest::Client::new().get(app.url("/api/v1/tokens")).bearer_auth(&login)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list[0]["expires_at"].as_i64(), Some(expires));
    assert!(list[0]["last_used_at"].as_i64().is_some(), "its use is recorded: {list}");
}

#[tokio::test]
async fn a_stolen_session_cannot_mint_a_token_without_the_password() {
    let (app, u) = spawn_signed_up().await;
    let r = app.server_fn("create_api_token", &[("name", "backdoor"), ("password", "a guess at it")]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let err = app_error(r).await;
    assert_eq!(err.for_field("password").as_deref(), Some("The password is not correct."), "{err:?}");
    let r = app.server_fn("create_api_token", &[("name", "mine"), ("password", &u.password), ("expires_in_days", "7")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (view, secret): (Value, String) = r.json().await.unwrap();
    assert!(view["expires_at"].as_i64().is_some());
    assert_eq!(me_status(&app, &secret).await, StatusCode::OK);
    let r = app.server_fn("create_api_token", &[("name", "x"), ("password", &u.password), ("expires_in_days", "soon")]).await;
    assert!(matches!(app_error(r).await, AppError::Validation { field, .. } if field == "expires_in_days"));
}

#[tokio::test]
async fn a_password_change_revokes_every_api_token() {
    let (app, u) = spawn_signed_up().await;
    let login = bearer(&app, &u).await;
    let (s, t) = create(&app, &login, json!({"name": "ci", "password": u.password})).await;
    assert_eq!(s, StatusCode::CREATED);
    let token = t["token"].as_str().unwrap().to_owned();
    assert_eq!(me_status(&app, &token).await, StatusCode::OK);

    let r = app.server_fn("change_password", &[("current_password", &u.password), ("new_password", "a brand new password")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(me_status(&app, &token).await, StatusCode::UNAUTHORIZED, "the API token died with the old password");
    assert_eq!(me_status(&app, &login).await, StatusCode::UNAUTHORIZED);
    assert!(app.me().await.is_some(), "the session that changed it goes on");
}

#[tokio::test]
async fn the_settings_page_asks_for_the_password_and_shows_expiry_and_last_use() {
    let (app, u) = spawn_signed_up().await;
    let r = app.server_fn("create_api_token", &[("name", "deploy"), ("password", &u.password), ("expires_in_days", "3")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (_, secret): (Value, String) = r.json().await.unwrap();
    assert_eq!(me_status(&app, &secret).await, StatusCode::OK);
    let html = app.get_html("/settings").await.text().await.unwrap();
    let form = html.split(r#"data-testid="create-token-form""#).nth(1).expect("the token form");
    let form = &form[..form.find("</form>").unwrap()];
    assert!(form.contains(r#"name="password""#) && form.contains(r#"type="password""#), "{form}");
    assert!(form.contains(r#"name="expires_in_days""#));
    assert!(html.contains(r#"data-testid="token-expires""#) && html.contains("expires "), "the expiry is listed");
    assert!(html.contains("last used "), "the last use is listed");
}
