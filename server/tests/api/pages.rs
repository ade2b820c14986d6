use crate::helpers::{TestUser, assert_redirect_to, spawn_app};

#[tokio::test]
async fn the_original_systems_pages_redirect_to_ours() {
    let app = spawn_app().await;
    assert_redirect_to(&app.get_html("/auth/register").await, "/signup");
    assert_redirect_to(&app.get_html("/auth/login").await, "/login");
}

#[tokio::test]
async fn protected_pages_send_visitors_to_log_in_on_the_server() {
    let app = spawn_app().await;
    for page in ["/dashboard", "/settings"] {
        assert_redirect_to(&app.get_html(page).await, "/login");
    }
    app.signup(&TestUser::generate()).await;
    for page in ["/dashboard", "/settings"] {
        assert_eq!(app.get_html(page).await.status(), 200, "{page}");
    }
}

#[tokio::test]
async fn public_pages_render_with_their_forms() {
    let app = spawn_app().await;
    let home = app.get_html("/").await.text().await.unwrap();
    assert!(home.contains(r#"href="/signup""#) && home.contains(r#"href="/login""#));
    assert!(home.contains("localStorage.getItem('theme')"), "the theme is set before paint");
    let signup = app.get_html("/signup").await.text().await.unwrap();
    for name in ["email", "username", "password"] {
        assert!(signup.contains(&format!(r#"name="{name}""#)), "sign-up form has {name}");
    }
    assert!(signup.contains(r#"action="/api/fn/signup""#), "the form posts without JavaScript");
    let r = app.get_html("/no-such-page").await;
    assert_eq!(r.status(), 404);
}
