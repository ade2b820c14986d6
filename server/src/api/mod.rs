//! REST API v1: the original system's paths (`/auth/*`, `/host`, `/users/me`, `/health`), a
//! collection API for several hostings, API tokens, SSH keys, event streams and the OpenAPI
//! document. One module per resource.
pub mod accounts;
pub mod admin;
pub mod caller;
pub mod console;
pub mod error;
pub mod extract;
pub mod health;
pub mod host;
pub mod hostings;
pub mod openapi;
pub mod params;
pub mod responses;
pub mod sessions;
pub mod snapshots;
pub mod backup_restore;
pub mod backups;
pub mod domains;
pub mod stream;
pub mod backup_schedules;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};

use app::state::AppState;
pub use error::{ApiError, ApiResult};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health::health))
        .route("/auth/register", post(accounts::register))
        .route("/auth/login", post(accounts::login))
        .route("/users/me", get(accounts::me))
        .route("/account/activity", get(accounts::activity))
        .route("/auth/sessions", get(sessions::list).delete(sessions::end_all))
        .route("/auth/sessions/{sid}", delete(sessions::end))
        .route("/tokens", get(accounts::list_tokens).post(accounts::create_token))
        .route("/tokens/{id}", delete(accounts::revoke_token))
        .route("/ssh-keys", get(accounts::list_keys).post(accounts::add_key))
        .route("/ssh-keys/{id}", delete(accounts::delete_key))
        .route("/host", post(host::create).get(host::get).delete(host::delete))
        .route("/host/{action}", post(host::action))
        .route("/hostings", get(hostings::list).post(hostings::create))
        .route("/hostings/{id}", get(hostings::get).patch(hostings::patch).delete(hostings::delete))
        .route("/hostings/{id}/events", get(hostings::events))
        .route("/hostings/{id}/stats", get(hostings::stats))
        .route("/hostings/{id}/console", get(hostings::console))
        .route("/hostings/{id}/console/ws", get(console::console_ws))
        .route("/hostings/{id}/console/password", post(console::set_password))
        .route("/hostings/{id}/stream", get(stream::stream))
        .route("/hostings/{id}/snapshots", get(snapshots::list).post(snapshots::take))
        .route("/hostings/{id}/snapshots/{sid}", delete(snapshots::delete))
        .route("/hostings/{id}/snapshots/{sid}/restore", post(snapshots::restore))
        .route("/hostings/{id}/backups", get(backups::list).post(backups::take))
        .route("/hostings/{id}/backups/{bid}/restore", post(backup_restore::restore))
        .route("/hostings/{id}/backups/{bid}/download", get(backup_restore::download))
        .route("/hostings/{id}/backup-schedule", get(backup_schedules::get).put(backup_schedules::set))
        .route("/hostings/{id}/domains", get(domains::list).post(domains::add))
        .route("/hostings/{id}/domains/{did}", delete(domains::delete))
        .route("/hostings/{id}/domains/{did}/check", post(domains::check))
        .route("/hostings/{id}/hsts", put(domains::set_hsts))
        .route("/hostings/{id}/{action}", post(hostings::action))
        .route("/admin/users", get(admin::list_users))
        .route("/admin/users/{id}/disable", post(admin::disable_user))
        .route("/admin/users/{id}/enable", post(admin::enable_user))
        .route("/admin/nodes", get(admin::list_nodes).post(admin::add_node))
        .route("/admin/nodes/{id}", delete(admin::remove_node))
        .route("/admin/nodes/{id}/drain", post(admin::drain_node))
        .route("/admin/nodes/{id}/undrain", post(admin::undrain_node))
        .route("/admin/hostings", get(admin::list_hostings))
        .route("/admin/events", get(admin::recent_events))
        .route("/admin/certificates", get(admin::certificates))
        .route("/admin/backups/stale", get(backup_schedules::stale))
        .route("/openapi.json", get(openapi::document))
        .route("/docs", get(openapi::docs_page))
        .route("/docs/init.js", get(openapi::docs_init))
        .route_layer(axum::middleware::from_fn(method_not_allowed))
        .fallback(|| async { ApiError::from(service::Error::NotFound("endpoint")) })
}

/// A method a route does not have: 405 with `Allow` (the methods the document lists for it) and
/// the JSON error body. axum sets `Allow` only on routes of the top-level router, and this one
/// is nested under `/api/v1`.
async fn method_not_allowed(path: MatchedPath, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let resp = next.run(req).await;
    if resp.status() != StatusCode::METHOD_NOT_ALLOWED {
        return resp;
    }
    let allow = openapi::allowed_methods(path.as_str());
    let message = match allow {
        Some(a) => format!("{method} is not a method of {}; it has {}", path.as_str(), a.replace(',', ", ")),
        None => format!("{method} is not a method of {}", path.as_str()),
    };
    let mut out = (StatusCode::METHOD_NOT_ALLOWED, error::ErrorBody::json("method_not_allowed", message, None)).into_response();
    if let Some(v) = allow.and_then(|a| HeaderValue::from_str(a).ok()) {
        out.headers_mut().insert(header::ALLOW, v);
    }
    out
}

/// The hosting service, or 503 when the server runs without libvirt.
pub(crate) fn hosting(state: &AppState) -> ApiResult<service::hosting::HostingService> {
    state
        .hosting
        .clone()
        .ok_or_else(|| ApiError::from(service::Error::hosting_disabled()))
}
