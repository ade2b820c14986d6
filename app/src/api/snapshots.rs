//! A hosting's snapshots (disk and memory): list, take, restore, delete. Each calls the
//! service layer, which checks the owner (others' hostings are not found) and the quota.
use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{HostingView, SnapshotView};
#[cfg(feature = "ssr")]
use crate::auth;

#[server(prefix = "/api/fn", endpoint = "list_snapshots")]
pub async fn list_snapshots(id: i32) -> Result<Vec<SnapshotView>, AppError> {
    let (state, _, actor) = auth::require_user().await?;
    Ok(auth::hosting(&state)?.list_snapshots(&actor, id).await?)
}

/// Takes a snapshot of the running site; a bad name is a field error on `name`.
#[server(prefix = "/api/fn", endpoint = "take_snapshot")]
pub async fn take_snapshot(id: i32, name: String) -> Result<SnapshotView, AppError> {
    let (state, _, actor) = auth::require_user().await?;
    Ok(auth::hosting(&state)?.take_snapshot(&actor, id, &name).await?)
}

#[server(prefix = "/api/fn", endpoint = "restore_snapshot")]
pub async fn restore_snapshot(id: i32, sid: i32) -> Result<HostingView, AppError> {
    let (state, _, actor) = auth::require_user().await?;
    Ok(auth::hosting(&state)?.restore_snapshot(&actor, id, sid).await?)
}

#[server(prefix = "/api/fn", endpoint = "delete_snapshot")]
pub async fn delete_snapshot(id: i32, sid: i32) -> Result<(), AppError> {
    let (state, _, actor) = auth::require_user().await?;
    Ok(auth::hosting(&state)?.delete_snapshot(&actor, id, sid).await?)
}
