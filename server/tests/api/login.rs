use app::error::AppError;

use crate::helpers::{TestUser, app_error, assert_redirect_to, location, spawn_signed_up};

async fn registered() -> (crate::helpers::TestApp, TestUser) {
    let (app, u) = spawn_signed_up().await;
    assert_eq!(app.logout().await.status(), 200);
    assert!(app.me().await.is_none());
    (app, u)
}

#[tokio::test]
async fn log_in_with_email_or_username() {
    let (app, u) = registered().await;
    let r = app.login(&u.email, &u.password).await;
    assert_eq!(r.status(), 200);
    assert_eq!(location(&r), "/dashboard");
    assert_eq!(app.me().await.unwrap()["username"], u.username);
    app.logout().await;
    assert_eq!(app.login(&u.username.to_uppercase(), &u.password).await.status(), 200);
    assert_eq!(app.me().await.unwrap()["username"], u.username);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_account_get_the_same_answer() {
    let (app, u) = registered().await;
    let wrong = app_error(app.login(&u.username, "not the password").await).await;
    let unknown = app_error(app.login("nobody-here", "not the password").await).await;
    assert_eq!(wrong, unknown);
    assert!(matches!(&wrong, AppError::Validation { field, message } if field == "login" && message.contains("Wrong")));
    assert!(app.me().await.is_none());
}

#[tokio::test]
async fn log_in_works_as_a_plain_form_post_and_shows_errors_on_the_page() {
    let (app, u) = registered().await;
    let r = app.form_post("/login", "login", &[("login", &u.username), ("password", "nope nope nope")]).await;
    let back = location(&r).to_owned();
    assert!(back.starts_with(&app.url("/login?")), "{back}");
    let html = app.client.get(&back).header("accept", "text/html").send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Wrong email/username or password."));

    let r = app.form_post("/login", "login", &[("login", &u.email), ("password", &u.password)]).await;
    assert_redirect_to(&r, "/dashboard");
    assert!(app.me().await.is_some());
}

#[tokio::test]
async fn repeated_failures_are_rate_limited_with_a_clear_message() {
    let (app, u) = registered().await;
    for _ in 0..5 {
        assert_eq!(app.login(&u.username, "wrong password").await.status(), 401);
    }
    // Now even the right password waits.
    let r = app.login(&u.username, &u.password).await;
    assert_eq!(r.status(), 429);
    let err = app_error(r).await;
    assert!(matches!(err, AppError::RateLimited { retry_after_secs } if retry_after_secs > 0));
    assert!(err.to_string().starts_with("Too many attempts. Try again in"), "{err}");
    assert!(app.me().await.is_none());

    // Without JavaScript the same message is on the page.
    let r = app.form_post("/login", "login", &[("login", &u.username), ("password", &u.password)]).await;
    let html = app.client.get(location(&r)).header("accept", "text/html").send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Too many attempts"), "the limit message is shown");
}
