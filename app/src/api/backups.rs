//! A hosting's backups in the backup repository: the page's overview, "Back up now". Each calls
//! the service layer, which checks the owner (others' hostings are not found).
use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{BackupView, BackupsOverview};
#[cfg(feature = "ssr")]
use crate::auth;

/// The backups section: the list (newest first), the last success, and whether the
/// repository shares the node's disk.
#[server(prefix = "/api/fn", endpoint = "hosting_backups")]
pub async fn hosting_backups(id: i32) -> Result<BackupsOverview, AppError> {
    let (state, _, actor) = auth::require_user().await?;
    Ok(auth::hosting(&state)?.backups_overview(&actor, id).await?)
}

/// "Back up now"; `with_memory` for a running site's memory too (it pauses a few seconds).
#[server(prefix = "/api/fn", endpoint = "back_up_now")]
pub async fn back_up_now(id: i32, with_memory: bool) -> Result<BackupView, AppError> {
    let (state, _, actor) = auth::require_user().await?;
    Ok(auth::hosting(&state)?.back_up(&actor, id, with_memory).await?)
}
