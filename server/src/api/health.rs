use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use sea_orm::ConnectionTrait;
use serde::Serialize;
use utoipa::ToSchema;

use app::state::AppState;

/// Each part is `ok`, `disabled` or `down`.
#[derive(Serialize, ToSchema)]
pub struct HealthBody {
    /// `ok` or `degraded`.
    #[schema(example = "ok")]
    pub status: &'static str,
    pub database: &'static str,
    pub libvirt: &'static str,
    pub nginx: &'static str,
    pub version: &'static str,
}

/// `GET /api/v1/health`: database, libvirt and nginx, each "ok", "disabled" or "down". It is
/// public, so it says states only: the errors behind a "down" go to the log.
#[utoipa::path(operation_id = "health", get, path = "/api/v1/health", tag = "health",
    responses((status = 200, description = "Everything answers", body = HealthBody), (status = 503, description = "A part is down (its state is \"down\"; the reason is in the server's log)", body = HealthBody)))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthBody>) {
    let db = match state.db.execute_unprepared("SELECT 1").await {
        Ok(_) => "ok",
        Err(e) => {
            tracing::warn!(error = %e, "health: the database does not answer");
            "down"
        }
    };
    let (libvirt, nginx) = match &state.hosting {
        None => ("disabled", "disabled"),
        Some(h) => {
            let lv = match h.vm().list_domains().await {
                Ok(_) => "ok",
                Err(e) => {
                    tracing::warn!(error = %e, "health: libvirt does not answer");
                    "down"
                }
            };
            let ng = if h.proxy().is_running().await {
                "ok"
            } else {
                tracing::warn!("health: nginx is not running");
                "down"
            };
            (lv, ng)
        }
    };
    let healthy = [db, libvirt, nginx].iter().all(|s| *s == "ok" || *s == "disabled");
    let body = HealthBody { status: if healthy { "ok" } else { "degraded" }, database: db, libvirt, nginx, version: env!("CARGO_PKG_VERSION") };
    (if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body))
}
