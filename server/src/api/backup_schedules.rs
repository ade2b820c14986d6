//! A hosting's backup schedule and retention (issue 31), and the administrators' list of sites
//! whose backups are stale.
use axum::extract::State;
use vmw_types::{BackupSchedule, BackupScheduleView, StaleBackups};

use super::caller::HostingCaller;
use super::error::ErrorBody;
use super::extract::{ApiUser, Json, Path};
use super::responses::{HostingAdminErrors, HostingErrors};
use super::{ApiResult, hosting};
use app::state::AppState;

#[utoipa::path(operation_id = "backup_schedule_get", get, path = "/api/v1/hostings/{id}/backup-schedule", tag = "backups", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, description = "The site's backup schedule (off with the default retention until set), its next run (the owner's UTC time plus the site's spread offset) and the owner's backup storage against the quota", body = BackupScheduleView), HostingErrors))]
pub async fn get(c: HostingCaller, Path(id): Path<i32>) -> ApiResult<axum::Json<BackupScheduleView>> {
    Ok(axum::Json(c.hostings.backup_schedule(&c.actor, id).await?))
}

#[utoipa::path(operation_id = "backup_schedule_set", put, path = "/api/v1/hostings/{id}/backup-schedule", tag = "backups", security(("bearer" = [])), params(("id" = i32, Path)), request_body = BackupSchedule,
    responses((status = 200, description = "The schedule as set, with its next run. Times are UTC; the service starts each site's backups up to 30 minutes after the time chosen (`spread_secs`), so that sites do not all start at once. Retention (`keep_*`) applies to every backup of the site, manual ones too", body = BackupScheduleView), HostingErrors,
        (status = 422, description = "A field is invalid (`validation_failed`, `field` says which: `hour` 0-23, `minute` 0-59, `weekday` for weekly, `keep_*` bounded and not all 0)", body = ErrorBody)))]
pub async fn set(c: HostingCaller, Path(id): Path<i32>, Json(req): Json<BackupSchedule>) -> ApiResult<axum::Json<BackupScheduleView>> {
    Ok(axum::Json(c.hostings.set_backup_schedule(&c.actor, id, &req).await?))
}

/// Sites whose last successful backup is older than their schedule's period plus a margin (6 h),
/// and whether the repository is the default folder on the node's own disk.
#[utoipa::path(operation_id = "admin_backups_stale", get, path = "/api/v1/admin/backups/stale", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "The stale sites with their owner, last success and schedule", body = StaleBackups), HostingAdminErrors))]
pub async fn stale(State(state): State<AppState>, user: ApiUser) -> ApiResult<axum::Json<StaleBackups>> {
    Ok(axum::Json(hosting(&state)?.stale_backups(&user.actor()).await?))
}
