#![recursion_limit = "512"]
//! Start-up wiring: database and migrations, sessions, the service layer (libvirt, nginx,
//! provisioning), the Leptos app, the REST API, and graceful shutdown. `main.rs` only parses
//! the command line; tests build exactly the same application.
mod acme_challenge;
pub mod api;
pub mod config;
pub mod csrf;
mod last_seen;
mod local_ca;
pub mod metrics;
pub mod restore_node;
mod secure_cookies;
pub mod telemetry;
mod waker;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::MatchedPath;
use axum::http::{HeaderName, Request};
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::cookie::time::Duration as CookieDuration;
use tower_sessions::session_store::ExpiredDeletion;
use tower_sessions::{Expiry, SessionManagerLayer};

use app::state::AppState;
use app::{App, shell};
pub use config::Settings;
use service::accounts::Accounts;
use service::accounts::session_store::DbSessionStore;
use service::hosting::HostingService;
use service::proxy::Proxy;
use service::vm::VmManager;

pub struct Application {
    listener: tokio::net::TcpListener,
    banner: String,
    router: Router,
    background: Vec<tokio::task::JoinHandle<()>>,
    state: AppState,
}

/// `restore-node`'s second half: the node's hosting service (libvirt, nginx; no web server,
/// no background work) rebuilding every site of the node from its newest backup.
pub async fn recover_sites(settings: &Settings, db: sea_orm::DatabaseConnection) -> anyhow::Result<service::hosting::RecoveryReport> {
    let mut c = settings.service.clone();
    c.app_upstream = settings.listen;
    if settings.nginx_enabled {
        c.waker_upstream = Some(settings.wake_listen);
    }
    let cfg = Arc::new(c);
    let accounts = Accounts::with_options(db.clone(), settings.accounts);
    let vm = VmManager::connect(&cfg).await?;
    let proxy = Proxy::new(&cfg);
    let svc = HostingService::new(db, cfg.clone(), vm, proxy.clone(), accounts).await?;
    if settings.nginx_enabled {
        proxy.preset_tls(svc.tls_front_at_start().await);
        proxy.ensure_running().await?;
    }
    Ok(svc.recover_from_backups().await?)
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // Installed before anything records (provisioning at start-up, nginx, libvirt).
        metrics::handle();
        std::fs::create_dir_all(&settings.service.data_dir)?;
        let db = service::db::connect_and_migrate(&settings.database_url).await?;
        let accounts = Accounts::with_options(db.clone(), settings.accounts);
        let needs_admin = !settings.accounts.first_user_admin && !accounts.any_admin().await?;
        if needs_admin {
            tracing::warn!("no administrator yet: sign up, then run `vm-webhoster grant-admin YOUR_USERNAME`");
        }
        let listener = tokio::net::TcpListener::bind(settings.listen).await?;
        let addr = listener.local_addr()?;
        // The app's real address (tests bind port 0): nginx's upstream, and one of the
        // dashboard's origins (`csrf::Origins::for_config`).
        let cfg = Arc::new(service::ServiceConfig { app_upstream: addr, ..settings.service.clone() });

        let mut background = Vec::new();
        let hosting = if settings.hosting_enabled {
            // The app's real port (tests bind port 0) is nginx's upstream.
            let mut c = (*cfg).clone();
            c.app_upstream = addr;
            // The waker's real port too: every site's backup upstream.
            let waker = tokio::net::TcpListener::bind(settings.wake_listen).await?;
            if settings.nginx_enabled {
                c.waker_upstream = Some(waker.local_addr()?);
            }
            let cfg = Arc::new(c);
            let vm = VmManager::connect(&cfg).await?;
            let proxy = Proxy::new(&cfg);
            let svc = HostingService::new(db.clone(), cfg.clone(), vm, proxy.clone(), accounts.clone()).await?;
            if settings.nginx_enabled {
                // HTTPS from the first answer: the certificates on disk, the local CA's made now.
                proxy.preset_tls(svc.tls_front_at_start().await);
                proxy.ensure_running().await?;
            }
            if let Some(step) = &settings.fail_step {
                let step = service::hosting::Step::parse(step)
                    .ok_or_else(|| anyhow::anyhow!("--fail-step: unknown step '{step}'"))?;
                tracing::warn!(step = step.as_str(), "fault injection: the next provisioning fails at this step");
                svc.faults().fail_at(Some(step));
            }
            if settings.step_delay_ms > 0 {
                tracing::warn!(ms = settings.step_delay_ms, "fault injection: every provisioning step waits first");
                svc.faults().set_step_delay(std::time::Duration::from_millis(settings.step_delay_ms));
            }
            if cfg.libvirt_uri.starts_with("test:") {
                // libvirt's test driver: its domains run nothing, so readiness is "it runs".
                tracing::warn!("libvirt's test driver: VMs run nothing; no readiness probes, no guest agent");
                svc.faults().set_skip_ready_probe(true);
            }
            background.extend(svc.start_background().await?);
            background.push(waker::spawn(waker, svc.clone()));
            Some(svc)
        } else {
            None
        };

        let store = DbSessionStore::new(db.clone());
        background.push(tokio::spawn({
            let store = store.clone();
            async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
                loop {
                    tick.tick().await;
                    if let Err(err) = store.delete_expired().await {
                        tracing::warn!(%err, "could not delete expired sessions");
                    }
                }
            }
        }));
        let sessions = SessionManagerLayer::new(store)
            .with_name("vmw_session")
            .with_http_only(true)
            .with_same_site(SameSite::Lax)
            .with_secure(settings.secure_cookies)
            .with_expiry(Expiry::OnInactivity(CookieDuration::days(7)));

        let leptos_options = LeptosOptions::builder()
            .output_name("vm-webhoster")
            .site_root(settings.site_root.display().to_string())
            .site_pkg_dir("pkg")
            .site_addr(addr)
            .build();
        let state = AppState {
            leptos_options: leptos_options.clone(),
            db,
            accounts,
            hosting,
            config: cfg,
            session_max_age_ms: 30 * 24 * 3600 * 1000,
            held: app::state::HeldRequests::new(settings.max_streams_per_user),
        };

        let routes = generate_route_list(App);
        let request_id = HeaderName::from_static("x-request-id");
        let router = Router::new()
            .nest("/api/v1", api::router())
            .route("/metrics", axum::routing::get(metrics::render))
            .route("/.well-known/acme-challenge/{token}", axum::routing::get(acme_challenge::answer))
            .route("/tls/local-ca.pem", axum::routing::get(local_ca::root))
            .route("/auth/register", axum::routing::get(|| async { axum::response::Redirect::permanent("/signup") }))
            .route("/auth/login", axum::routing::get(|| async { axum::response::Redirect::permanent("/login") }))
            .leptos_routes_with_context(
                &state,
                routes,
                {
                    let state = state.clone();
                    move || provide_context(state.clone())
                },
                {
                    let opts = leptos_options.clone();
                    move || shell(opts.clone())
                },
            )
            .nest_service("/pkg", ServeDir::new(settings.site_root.join("pkg")))
            .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
            .with_state(state.clone())
            .layer(axum::middleware::from_fn_with_state(state.clone(), last_seen::note))
            .layer(axum::middleware::from_fn_with_state(csrf::Origins::for_config(&state.config), csrf::guard))
            .layer(sessions)
            .layer(axum::middleware::from_fn(secure_cookies::mark))
            .layer(
                TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                    // The route pattern (/api/v1/hostings/{id}), not the raw path, when one matched.
                    let path = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or(req.uri().path());
                    tracing::info_span!("http", method = %req.method(), path, request_id = %id)
                }),
            )
            .layer(PropagateRequestIdLayer::new(request_id.clone()))
            .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
            // Outermost: requests the layers above refuse (CSRF) are counted too.
            .layer(axum::middleware::from_fn(metrics::track));

        tracing::info!(%addr, hosting = settings.hosting_enabled, instance_id = %settings.service.instance_id, "vm-webhoster listening");
        let banner = banner(&settings, addr, needs_admin);
        Ok(Self { listener, banner, router, background, state })
    }

    /// What the operator is told once the server listens: where to open it, and how to
    /// become its administrator while there is none (`main` prints it).
    pub fn banner(&self) -> &str {
        &self.banner
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let background = self.background;
        let res = axum::serve(self.listener, self.router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown_signal())
            .await;
        for t in background {
            t.abort();
        }
        res
    }
}

fn banner(settings: &Settings, addr: SocketAddr, needs_admin: bool) -> String {
    let proxied = settings.hosting_enabled && settings.nginx_enabled;
    let open = if proxied { format!("http://{}/", settings.service.public_host_with_port()) } else { format!("http://{addr}/") };
    let mut out = format!(
        "==> vm-webhoster is ready: open {open}  (API docs {open}api/v1/docs; metrics for a local scraper on http://{addr}/metrics)"
    );
    if let (true, Some(tls)) = (proxied, settings.service.nginx_listen_tls) {
        let port = if tls.port() == 443 { String::new() } else { format!(":{}", tls.port()) };
        out.push_str(&format!("\n==> HTTPS: https://{}{port}/", settings.service.public_host));
        let root = service::hosting::local_ca_root(&settings.service);
        if root.exists() {
            out.push_str(&format!(
                " (certified by this instance's local CA: trust its root certificate {} , also at {open}tls/local-ca.pem)",
                root.display()
            ));
        }
    }
    if needs_admin {
        out.push_str(&format!(
            "\n==> no administrator yet: sign up at {open}signup, then run `vm-webhoster grant-admin YOUR_USERNAME` \
             with the same --data-dir/--database-url (or start the server with --first-user-admin)"
        ));
    }
    out
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
