use crate::helpers::{TestUser, spawn_app, spawn_signed_up};

#[tokio::test]
async fn a_cross_site_post_riding_on_the_session_cookie_is_refused() {
    let (app, u) = spawn_signed_up().await;
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
        .json(&serde_json::json!({"name": "ci", "password": u.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "bearer-authenticated requests carry no ambient credentials");
}

#[tokio::test]
async fn a_foreign_page_cannot_log_a_visitor_into_another_account() {
    let (app, attacker) = spawn_signed_up().await;
    app.logout().await;
    // A hostile page's auto-submitting form: the visitor has no cookie for this site yet.
    let visitor = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for (path, fields) in [
        ("/api/fn/login", vec![("login", attacker.username.as_str()), ("password", attacker.password.as_str())]),
        ("/api/fn/signup", vec![("email", "v@example.com"), ("username", "planted"), ("password", "planted password")]),
    ] {
        let r = visitor.post(app.url(path)).header("origin", "https://evil.example").form(&fields).send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
        assert!(r.headers().get("set-cookie").is_none(), "{path} set no session");
    }
    // Nothing was made by the refused sign-up: the name is still free for its real owner.
    let planted = TestUser { username: "planted".into(), email: "v@example.com".into(), password: "planted password".into() };
    assert_eq!(app.signup(&planted).await.status(), 200);
}

#[tokio::test]
async fn a_dns_rebinding_page_whose_host_and_origin_agree_is_still_refused() {
    let (app, u) = spawn_signed_up().await;
    // evil.example resolved to this server: the browser sends its own name as Host and Origin.
    let r = app
        .client
        .post(app.url("/api/fn/change_password"))
        .header("host", "evil.example")
        .header("origin", "http://evil.example")
        .header("accept", "application/json")
        .form(&[("current_password", u.password.as_str()), ("new_password", "attacker chosen pw")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "csrf");
    app.logout().await;
    assert_eq!(app.login(&u.username, &u.password).await.status(), 200, "the password did not change");
}

/// Issue 28: another port of the dashboard's host (a tenant's VM forward, `127.0.0.1:20005`) is
/// another origin: browsers send the dashboard's cookies there, so its pages must not pass
/// the guard; the dashboard's own port (here the app's) still does.
#[tokio::test]
async fn a_page_on_another_port_of_the_dashboards_host_is_refused() {
    let (app, u) = spawn_signed_up().await;
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let other = if port == 20005 { 20006 } else { 20005 };
    let change = |origin: String, new: &'static str| {
        app.client
            .post(app.url("/api/fn/change_password"))
            .header("accept", "application/json")
            .header("origin", origin)
            .form(&[("current_password", u.password.as_str()), ("new_password", new)])
            .send()
    };
    for origin in [format!("http://127.0.0.1:{other}"), format!("http://localhost:{other}"), format!("https://127.0.0.1:{port}")] {
        let r = change(origin.clone(), "attacker chosen pw").await.unwrap();
        assert_eq!(r.status(), 403, "{origin}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "csrf", "{origin}");
        // The REST API with the cookie: the same.
        let r = app
            .client
            .post(app.url("/api/v1/tokens"))
            .header("origin", origin.as_str())
            .json(&serde_json::json!({"name": "stolen", "password": u.password}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{origin}: a cookie POST to the REST API");
    }
    // From the dashboard's own origin (and a loopback alias on its port) it goes through.
    let r = change(format!("http://localhost:{port}"), "my own new password").await.unwrap();
    assert_eq!(r.status(), 200);
}
