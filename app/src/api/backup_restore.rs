//! Restoring a backup from the hosting page (the download is a plain link to the REST route,
//! which the dashboard session authorises).
use leptos::prelude::*;

use crate::error::AppError;
use crate::model::HostingView;
#[cfg(feature = "ssr")]
use crate::auth;

/// Restores backup `bid` of hosting `id`: `target` is `in_place`, `new_site` (with `slug`, or
/// the default name) or `node`. Returns the hosting being restored.
#[server(prefix = "/api/fn", endpoint = "restore_backup")]
pub async fn restore_backup(id: i32, bid: i32, target: String, slug: Option<String>) -> Result<HostingView, AppError> {
    let (state, _, actor) = auth::require_user().await?;
    let target = match target.as_str() {
        "in_place" => vmw_types::RestoreTarget::InPlace,
        "new_site" => vmw_types::RestoreTarget::NewSite { slug: slug.filter(|s| !s.trim().is_empty()) },
        "node" => vmw_types::RestoreTarget::Node { node_id: None },
        _ => return Err(service::Error::validation("target", "use in_place, new_site or node").into()),
    };
    Ok(auth::hosting(&state)?.restore_backup(&actor, id, bid, target).await?)
}
