use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use sea_orm::ConnectionTrait;

use app::state::AppState;

/// `GET /api/v1/health`: database, libvirt and nginx, each "ok", "disabled" or an error.
#[utoipa::path(operation_id = "health", get, path = "/api/v1/health", tag = "health",
    responses((status = 200, description = "Everything answers"), (status = 503, description = "A part is down (named in the body)")))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let db = match state.db.execute_unprepared("SELECT 1").await {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("error: {e}"),
    };
    let (libvirt, nginx) = match &state.hosting {
        None => ("disabled".to_string(), "disabled".to_string()),
        Some(h) => {
            let lv = match h.vm().list_domains().await {
                Ok(_) => "ok".to_string(),
                Err(e) => format!("error: {e}"),
            };
            let ng = if h.proxy().is_running().await { "ok".to_string() } else { "error: not running".to_string() };
            (lv, ng)
        }
    };
    let healthy = [&db, &libvirt, &nginx].iter().all(|s| *s == "ok" || *s == "disabled");
    let body = serde_json::json!({
        "status": if healthy { "ok" } else { "degraded" },
        "database": db,
        "libvirt": libvirt,
        "nginx": nginx,
        "version": env!("CARGO_PKG_VERSION"),
    });
    (if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body))
}
