//! A hosting's backup schedule and retention (the page's form), and the sites whose backups are
//! stale (the admin page). Each calls the service layer, which checks the caller.
use leptos::prelude::*;
use vmw_types::{BackupSchedule, BackupScheduleView, StaleBackups};

use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::auth;

/// Sets the site's schedule (times UTC) and retention; the field at fault when refused.
#[server(prefix = "/api/fn", endpoint = "set_backup_schedule")]
pub async fn set_backup_schedule(id: i32, schedule: BackupSchedule) -> Result<BackupScheduleView, AppError> {
    let (state, _, actor) = auth::require_user().await?;
    Ok(auth::hosting(&state)?.set_backup_schedule(&actor, id, &schedule).await?)
}

/// The sites whose last successful backup is older than their schedule allows (administrators).
#[server(prefix = "/api/fn", endpoint = "admin_stale_backups")]
pub async fn admin_stale_backups() -> Result<StaleBackups, AppError> {
    let (state, _, actor) = auth::require_admin().await?;
    let h = state.hosting.as_ref().ok_or_else(|| AppError::from(service::Error::hosting_disabled()))?;
    Ok(h.stale_backups(&actor).await?)
}
