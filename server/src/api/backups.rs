//! A hosting's backups in the backup repository (issue 31): list them, back up now.
use serde::Deserialize;
use service::hosting::BackupView;
use utoipa::ToSchema;

use super::ApiResult;
use super::caller::{Accepted, HostingCaller, accepted};
use super::error::ErrorBody;
use super::extract::{OptionalJson, Path};
use super::params::WaitQuery;
use super::responses::HostingErrors;

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// Back up a running site's memory too (it pauses a few seconds for a snapshot), so that a
    /// restore brings it back running as it was. Default false: its disk only, copied while its
    /// filesystems are frozen (it keeps running). A sleeping or stopped site's saved memory is
    /// always included, and it is never woken.
    #[serde(default)]
    pub with_memory: bool,
}

#[utoipa::path(operation_id = "backups_list", get, path = "/api/v1/hostings/{id}/backups", tag = "backups", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, description = "The hosting's backups, newest first", body = Vec<BackupView>), HostingErrors))]
pub async fn list(c: HostingCaller, Path(id): Path<i32>) -> ApiResult<axum::Json<Vec<BackupView>>> {
    Ok(axum::Json(c.hostings.list_backups(&c.actor, id).await?))
}

#[utoipa::path(operation_id = "backups_take", post, path = "/api/v1/hostings/{id}/backups", tag = "backups", security(("bearer" = [])), params(("id" = i32, Path), WaitQuery), request_body(content = Option<BackupRequest>, description = "Optional"),
    responses((status = 202, description = "Backing up (`state: running`; the site keeps its state), or, with ?wait, finished (`succeeded`, or `failed` with its `error`: the site is as it was)", body = BackupView), HostingErrors,
        (status = 409, description = "Busy (`busy`: another operation runs on the site), or a state a backup cannot begin from (`conflict`: failed, being made or deleted)", body = ErrorBody)))]
pub async fn take(c: HostingCaller, Path(id): Path<i32>, OptionalJson(req): OptionalJson<BackupRequest>) -> ApiResult<Accepted<BackupView>> {
    let req = req.unwrap_or_default();
    let b = c.hostings.back_up(&c.actor, id, req.with_memory).await?;
    // With ?wait: until the backup's operation ended (else at once).
    c.settled(id).await?;
    Ok(accepted(c.hostings.get_backup(&c.actor, id, b.id).await?))
}
