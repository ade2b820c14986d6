use app::error::AppError;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestUser, app_error, assert_api_error, assert_redirect_to, location, send, spawn_app, spawn_signed_up};

#[tokio::test]
async fn sign_up_through_the_server_function_logs_in_and_points_to_the_dashboard() {
    let app = spawn_app().await;
    let u = TestUser::generate();
    let r = app.signup(&u).await;
    assert_eq!(r.status(), 200);
    // The hydrated app navigates itself: leptos marks the redirect with a header.
    assert!(r.headers().contains_key("serverfnredirect"));
    assert_eq!(location(&r), "/dashboard");
    let me = app.me().await.expect("logged in after sign-up");
    assert_eq!(me["username"], u.username);
    assert_eq!(me["email"], u.email);
    assert!(me.get("password_hash").is_none(), "no hash leaves the server");
}

#[tokio::test]
async fn sign_up_works_as_a_plain_form_post_without_javascript() {
    let app = spawn_app().await;
    let u = TestUser::generate();
    let r = app
        .form_post("/signup", "signup", &[("email", &u.email), ("username", &u.username), ("password", &u.password)])
        .await;
    assert_redirect_to(&r, "/dashboard");
    let page = app.get_html("/dashboard").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(&u.username), "the dashboard greets the new user");
    assert!(html.contains("No hostings yet"), "the empty state is rendered on the server");
}

#[tokio::test]
async fn a_bad_field_comes_back_on_the_form_without_javascript() {
    let app = spawn_app().await;
    let u = TestUser::generate();
    let r = app.form_post("/signup", "signup", &[("email", &u.email), ("username", &u.username), ("password", "short")]).await;
    assert!(r.status().is_redirection());
    let back = location(&r).to_owned();
    assert!(back.starts_with(&app.url("/signup?")), "back to the form: {back}");
    assert!(app.me().await.is_none(), "no account, no session");
    let html = app.client.get(&back).header("accept", "text/html").send().await.unwrap().text().await.unwrap();
    let err = html.split(r#"data-field-error="password""#).nth(1).expect("the password field's error slot");
    assert!(err.contains("at least 8"), "the message sits under the password input");
}

#[tokio::test]
async fn a_taken_email_or_username_is_a_field_error_and_the_first_account_is_untouched() {
    let app = spawn_app().await;
    let first = TestUser::generate();
    assert_eq!(app.signup(&first).await.status(), 200);
    app.logout().await;

    let other = TestUser::generate();
    // Same email (in other letter case), new username and password.
    let r = app
        .signup(&TestUser { email: first.email.to_uppercase(), username: other.username.clone(), password: other.password.clone() })
        .await;
    assert_eq!(r.status(), 409);
    assert!(matches!(app_error(r).await, AppError::Conflict { field: Some(f), .. } if f == "email"));
    // Same username, new email and password.
    let r = app
        .signup(&TestUser { email: other.email.clone(), username: first.username.clone(), password: "a different password".into() })
        .await;
    assert_eq!(r.status(), 409);
    assert!(matches!(app_error(r).await, AppError::Conflict { field: Some(f), .. } if f == "username"));
    assert!(app.me().await.is_none(), "a refused sign-up logs nobody in");

    // The first account still logs in with its own password, with its own data.
    assert_eq!(app.login(&first.username, "a different password").await.status(), 401);
    assert_eq!(app.login(&first.email, &first.password).await.status(), 200);
    let me = app.me().await.unwrap();
    assert_eq!((me["email"].as_str(), me["username"].as_str()), (Some(first.email.as_str()), Some(first.username.as_str())));
}

#[tokio::test]
async fn availability_is_checked_while_typing() {
    let (app, u) = spawn_signed_up().await;
    let check = |field: &'static str, value: String| {
        let app = &app;
        async move {
            let r = app.server_fn("check_signup_field", &[("field", field), ("value", &value)]).await;
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    assert!(check("email", u.email.clone()).await.get("Taken").is_some());
    assert!(check("username", u.username.clone()).await.get("Taken").is_some());
    assert_eq!(check("email", "new-person@example.com".into()).await, "Available");
    assert!(check("username", "admin".into()).await.get("Invalid").is_some(), "reserved words are refused");
}

#[tokio::test]
async fn sign_ups_are_limited_per_address_on_every_path() {
    let app = spawn_app().await;
    let rest = |u: &TestUser| {
        let body = json!({"email": u.email, "username": u.username, "password": u.password});
        send(reqwest::Client::new().post(app.url("/api/v1/auth/register")).json(&body))
    };
    // Five an hour from one address (the default), counted over REST and the form alike.
    for _ in 0..3 {
        let (s, v) = rest(&TestUser::generate()).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    for _ in 0..2 {
        assert_eq!(app.signup(&TestUser::generate()).await.status(), 200);
        app.logout().await;
    }
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/auth/register"))
        .json(&{
            let u = TestUser::generate();
            json!({"email": u.email, "username": u.username, "password": u.password})
        })
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("retry-after"));
    let status = r.status();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_api_error(status, &v, StatusCode::TOO_MANY_REQUESTS, "rate_limited");

    let late = TestUser::generate();
    let r = app.signup(&late).await;
    assert_eq!(r.status(), 429);
    assert!(matches!(app_error(r).await, AppError::RateLimited { retry_after_secs } if retry_after_secs > 0));
    // Without JavaScript the form says so.
    let r = app
        .form_post("/signup", "signup", &[("email", &late.email), ("username", &late.username), ("password", &late.password)])
        .await;
    let back = location(&r).to_owned();
    let html = app.client.get(&back).header("accept", "text/html").send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Too many attempts"), "the limit message is on the sign-up page");
    assert!(app.me().await.is_none(), "no account, no session");
}

#[tokio::test]
async fn the_first_account_is_not_an_administrator_until_grant_admin_makes_it_one() {
    let (app, u) = spawn_signed_up().await;
    assert_eq!(app.me().await.unwrap()["is_admin"], false, "signing up first gives no power");
    assert_eq!(app_error(app.server_fn("admin_overview", &[]).await).await, AppError::Forbidden);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vm-webhoster"))
        .args(["grant-admin", &u.username, "--database-url", app.database_url(), "--log-level", "warn"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("is now an administrator"));
    assert_eq!(app.me().await.unwrap()["is_admin"], true);
    assert_eq!(app.server_fn("admin_overview", &[]).await.status(), StatusCode::OK);
}
