//! What server functions and handlers share (server side only).
use std::sync::Arc;

use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use service::accounts::Accounts;
use service::hosting::HostingService;
use service::ServiceConfig;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub db: service::db::DatabaseConnection,
    pub accounts: Accounts,
    /// None when the server runs without libvirt/nginx (`--no-libvirt`): accounts only.
    pub hosting: Option<HostingService>,
    pub config: Arc<ServiceConfig>,
    /// Sessions older than this since login are refused (absolute expiry), in milliseconds.
    pub session_max_age_ms: i64,
}
