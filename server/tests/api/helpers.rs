//! `spawn_app()`: the real application (same `Application::build` as production) on
//! 127.0.0.1:0 with a fresh data dir, accounts only (`--no-libvirt --no-nginx`). The database is
//! the test's own (`vmw_test_support::EmptyDb`): a temporary SQLite file, or a fresh database on
//! the PostgreSQL server named by TEST_DATABASE_URL (dropped afterwards).
#![allow(dead_code)]

use std::sync::Arc;

use app::error::AppError;
use clap::Parser;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{ACCEPT, HeaderValue, LOCATION, REFERER};
use reqwest::{Response, StatusCode, Url};
use server::config::Cli;
pub use vmw_test_support::http::{assert_api_error, assert_field_error, client_with, send};
use vmw_test_support::{EmptyDb, init_tracing};

pub const SESSION_COOKIE: &str = "vmw_session";

pub struct TestApp {
    pub address: String,
    pub jar: Arc<Jar>,
    /// Keeps cookies, follows no redirects (so tests see them).
    pub client: reqwest::Client,
    /// The application's own database handle (e.g. to close it and watch health go red).
    pub db: sea_orm::DatabaseConnection,
    _data_dir: tempfile::TempDir,
    _db: EmptyDb,
}

pub struct TestUser {
    pub email: String,
    pub username: String,
    pub password: String,
}

impl TestUser {
    pub fn generate() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let username = format!("u{}", &id[..12]);
        Self { email: format!("{username}@example.com"), username, password: "correct horse battery".into() }
    }
}

pub async fn spawn_app() -> TestApp {
    // Logs only when TEST_LOG is set (`TEST_LOG=1 cargo nextest run -p server`).
    init_tracing();
    let data_dir = tempfile::tempdir().unwrap();
    let dir = data_dir.path().to_str().unwrap();
    let mut args = vec!["vm-webhoster", "serve", "--data-dir", dir, "--site-root", dir, "--listen", "127.0.0.1:0"];
    args.extend(["--no-libvirt", "--no-nginx", "--tls", "off"]);
    let mut settings = Cli::parse_from(args).settings();
    let db = EmptyDb::new().await;
    settings.database_url = db.url().to_owned();
    let app = server::Application::build(settings).await.expect("the application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let conn = app.state().db.clone();
    tokio::spawn(app.run_until_stopped());
    let jar = Arc::new(Jar::default());
    TestApp { address, client: client_with(jar.clone()), jar, db: conn, _data_dir: data_dir, _db: db }
}

/// `spawn_app()` with a new user signed up (and so logged in) through the sign-up server fn.
pub async fn spawn_signed_up() -> (TestApp, TestUser) {
    let app = spawn_app().await;
    let u = TestUser::generate();
    assert_eq!(app.signup(&u).await.status(), StatusCode::OK, "sign-up of {}", u.username);
    (app, u)
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The URL of the application's database (for the `vm-webhoster` commands).
    pub fn database_url(&self) -> &str {
        self._db.url()
    }

    /// The session cookie's value, if the client holds one.
    pub fn session_cookie(&self) -> Option<String> {
        let header = self.jar.cookies(&Url::parse(&self.address).unwrap())?;
        header
            .to_str()
            .unwrap()
            .split("; ")
            .find_map(|c| c.strip_prefix(&format!("{SESSION_COOKIE}=")).map(str::to_owned))
    }

    /// A second client that carries only this session cookie (e.g. a stolen or stale one).
    pub fn client_with_cookie(&self, value: &str) -> reqwest::Client {
        let jar = Arc::new(Jar::default());
        jar.add_cookie_str(&format!("{SESSION_COOKIE}={value}; Path=/"), &Url::parse(&self.address).unwrap());
        client_with(jar)
    }

    /// Calls a server function the way the hydrated app does (fetch, form-encoded body).
    pub async fn server_fn(&self, name: &str, form: &[(&str, &str)]) -> Response {
        self.client
            .post(self.url(&format!("/api/fn/{name}")))
            .header(ACCEPT, "application/json")
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Posts a form the way a browser without JavaScript does (from `page`).
    pub async fn form_post(&self, page: &str, name: &str, form: &[(&str, &str)]) -> Response {
        self.client
            .post(self.url(&format!("/api/fn/{name}")))
            .header(ACCEPT, "text/html,application/xhtml+xml")
            .header(REFERER, self.url(page))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_html(&self, path: &str) -> Response {
        self.client.get(self.url(path)).header(ACCEPT, "text/html").send().await.unwrap()
    }

    pub async fn signup(&self, u: &TestUser) -> Response {
        self.server_fn("signup", &[("email", &u.email), ("username", &u.username), ("password", &u.password)]).await
    }

    pub async fn login(&self, login: &str, password: &str) -> Response {
        self.server_fn("login", &[("login", login), ("password", password)]).await
    }

    pub async fn logout(&self) -> Response {
        self.server_fn("logout", &[]).await
    }

    /// `GET /api/v1/users/me` with this client's session: the user's JSON, or None on 401.
    pub async fn me(&self) -> Option<serde_json::Value> {
        me_with(&self.client, &self.address).await
    }
}

pub async fn me_with(client: &reqwest::Client, address: &str) -> Option<serde_json::Value> {
    let r = client.get(format!("{address}/api/v1/users/me")).send().await.unwrap();
    match r.status() {
        StatusCode::OK => Some(r.json().await.unwrap()),
        StatusCode::UNAUTHORIZED => None,
        s => panic!("unexpected status {s} from /users/me"),
    }
}

/// A server function's error, decoded as the app decodes it.
pub async fn app_error(r: Response) -> AppError {
    let body = r.text().await.unwrap();
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not an AppError ({e}): {body}"))
}

pub fn location(r: &Response) -> &str {
    r.headers().get(LOCATION).and_then(|v: &HeaderValue| v.to_str().ok()).unwrap_or_else(|| panic!("no Location in {r:?}"))
}

pub fn assert_redirect_to(r: &Response, to: &str) {
    assert!(r.status().is_redirection(), "expected a redirect to {to}, got {}", r.status());
    assert_eq!(location(r), to);
}
