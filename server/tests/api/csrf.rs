use crate::helpers::{TestUser, spawn_app};

#[tokio::test]
async fn a_cross_site_post_riding_on_the_session_cookie_is_refused() {
    let app = spawn_app().await;
    let u = TestUser::generate();
    app.signup(&u).await;
    let post = |origin: Option<&'static str>, fetch_site: Option<&'static str>| {
        let mut req = app
            .client
            .post(app.url("/api/fn/change_password"))
            .header("accept", "application/json")
            .form(&[("current_password", u.password.as_str()), ("new_password", "attacker chosen pw")]);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(s) = fetch_site {
            req = req.header("sec-fetch-site", s);
        }
        req.send()
    };
    let r = post(Some("http://evil.example"), None).await.unwrap();
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "csrf");
    let r = post(None, Some("cross-site")).await.unwrap();
    assert_eq!(r.status(), 403, "no Origin, but the browser says cross-site");

    // Nothing changed: the old password still works.
    app.logout().await;
    assert_eq!(app.login(&u.username, &u.password).await.status(), 200);

    // The same request from the site itself goes through.
    let own = app.address.clone();
    let r = app
        .client
        .post(app.url("/api/fn/change_password"))
        .header("accept", "application/json")
        .header("origin", own)
        .form(&[("current_password", u.password.as_str()), ("new_password", "my own new password")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn bearer_requests_and_cookie_less_posts_are_not_csrf() {
    let app = spawn_app().await;
    let u = TestUser::generate();
    // The original API's register call from a script on another origin: no cookie, no ambient authority.
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/auth/register"))
        .header("origin", "http://elsewhere.example")
        .json(&serde_json::json!({"email": u.email, "username": u.username, "password": u.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/auth/login"))
        .form(&[("username", u.email.as_str()), ("password", u.password.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = r.json::<serde_json::Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/tokens"))
        .header("origin", "http://elsewhere.example")
        .header("cookie", "vmw_session=whatever")
        .bearer_auth(token)
        .json(&serde_json::json!({"name": "ci"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "bearer-authenticated requests carry no ambient credentials");
}
