use crate::helpers::{TestUser, me_with, spawn_app, spawn_signed_up};

#[tokio::test]
async fn logging_in_issues_a_new_session_id_and_voids_the_old_one() {
    let (app, u) = spawn_signed_up().await;
    let before = app.session_cookie().expect("a session cookie after sign-up");
    assert_eq!(app.login(&u.email, &u.password).await.status(), 200);
    let after = app.session_cookie().unwrap();
    assert_ne!(before, after, "no session fixation: the id changes at login");
    assert!(me_with(&app.client_with_cookie(&before), &app.address).await.is_none(), "the old id is void");
    assert!(me_with(&app.client_with_cookie(&after), &app.address).await.is_some());
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_same_site() {
    let app = spawn_app().await;
    let r = app.signup(&TestUser::generate()).await;
    let cookie = r.headers().get("set-cookie").expect("a session cookie").to_str().unwrap().to_ascii_lowercase();
    assert!(cookie.starts_with("vmw_session="), "{cookie}");
    assert!(cookie.contains("httponly") && cookie.contains("samesite=lax") && cookie.contains("max-age="), "{cookie}");
    assert!(!cookie.contains("secure"), "plain http on localhost by default: {cookie}");
}

#[tokio::test]
async fn logging_out_ends_the_session_on_the_server() {
    let (app, _) = spawn_signed_up().await;
    let old = app.session_cookie().unwrap();
    let r = app.logout().await;
    assert_eq!(r.status(), 200);
    assert!(app.me().await.is_none());
    // Someone who kept a copy of the cookie gets nothing.
    assert!(me_with(&app.client_with_cookie(&old), &app.address).await.is_none());
}

#[tokio::test]
async fn changing_the_password_signs_out_other_sessions() {
    let (app, u) = spawn_signed_up().await;
    // A second browser logged in as the same person.
    let other = spawn_second_session(&app, &u).await;
    let r = app
        .server_fn("change_password", &[("current_password", &u.password), ("new_password", "a brand new password")])
        .await;
    assert_eq!(r.status(), 200);
    assert!(app.me().await.is_some(), "this session goes on");
    assert!(me_with(&other, &app.address).await.is_none(), "the other one is over");
}

async fn spawn_second_session(app: &crate::helpers::TestApp, u: &TestUser) -> reqwest::Client {
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let client = crate::helpers::client_with(jar);
    let r = client
        .post(app.url("/api/fn/login"))
        .header("accept", "application/json")
        .form(&[("login", u.username.as_str()), ("password", u.password.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(me_with(&client, &app.address).await.is_some());
    client
}
