//! Restoring a hosting's backups (issue 31): `POST .../backups/{bid}/restore` (in place, as a
//! new site, on another node) and `GET .../backups/{bid}/download` (the disk as one standalone
//! qcow2).
use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use service::hosting::{BackupDownload, HostingView};
use tokio::io::AsyncReadExt;
use utoipa::ToSchema;
use vmw_types::RestoreTarget;

use super::ApiResult;
use super::caller::{Accepted, HostingCaller, accepted};
use super::error::ErrorBody;
use super::extract::{Json, Path};
use super::params::WaitQuery;
use super::responses::OperationErrors;

/// Where to restore a backup.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// `in_place` (the site itself: its current state is snapshotted first, "before restoring
    /// backup N"), `new_site` (a new site of the same owner) or `node` (the site moves to
    /// another node: an administrator, or the owner when the site's node is drained or
    /// unreachable, else 409 on `target`; no other healthy, undrained node with room, or the
    /// given one cannot take it: 409 on `node_id`). Anything else: 422 `validation_failed`,
    /// `field: target`.
    pub target: String,
    /// `new_site` only: the new site's name (default `{old slug}-restored`, or the next free).
    #[serde(default)]
    pub slug: Option<String>,
    /// `node` only: the node to restore onto (default: the placement rules choose).
    #[serde(default)]
    pub node_id: Option<i32>,
}

impl RestoreRequest {
    fn target(self) -> Result<RestoreTarget, service::Error> {
        let stray = |field: &'static str, t: &str| service::Error::validation(field, format!("'{field}' does not go with target '{t}'"));
        match self.target.as_str() {
            "in_place" if self.slug.is_some() => Err(stray("slug", "in_place")),
            "in_place" if self.node_id.is_some() => Err(stray("node_id", "in_place")),
            "in_place" => Ok(RestoreTarget::InPlace),
            "new_site" if self.node_id.is_some() => Err(stray("node_id", "new_site")),
            "new_site" => Ok(RestoreTarget::NewSite { slug: self.slug }),
            "node" if self.slug.is_some() => Err(stray("slug", "node")),
            "node" => Ok(RestoreTarget::Node { node_id: self.node_id }),
            other => Err(service::Error::validation(
                "target",
                format!("'{}' is not a restore target: use in_place, new_site or node", other.escape_default().to_string().chars().take(40).collect::<String>()),
            )),
        }
    }
}

#[utoipa::path(operation_id = "backups_restore", post, path = "/api/v1/hostings/{id}/backups/{bid}/restore", tag = "backups", security(("bearer" = [])),
    params(("id" = i32, Path), ("bid" = i32, Path, description = "The backup"), WaitQuery), request_body = RestoreRequest,
    responses((status = 202, description = "Restoring: the hosting being restored (with ?wait, once it ended: running or stopped as the restore left it, or as it was with the reason when it failed)", body = HostingView), OperationErrors,
        (status = 409, description = "Busy (`busy`), the backup did not succeed, the owner's snapshots are at their limit (`conflict`, `field: snapshots`: a restore in place snapshots the current state first), or a target this server does not offer (`field: target`)", body = ErrorBody),
        (status = 422, description = "A bad target or a field that does not go with it (`validation_failed`)", body = ErrorBody)))]
pub async fn restore(c: HostingCaller, Path((id, bid)): Path<(i32, i32)>, Json(req): Json<RestoreRequest>) -> ApiResult<Accepted<HostingView>> {
    let target = req.target()?;
    let v = c.hostings.restore_backup(&c.actor, id, bid, target).await?;
    let id = v.id;
    Ok(accepted(c.settled(id).await?.unwrap_or(v)))
}

#[utoipa::path(operation_id = "backups_download", get, path = "/api/v1/hostings/{id}/backups/{bid}/download", tag = "backups", security(("bearer" = [])),
    params(("id" = i32, Path), ("bid" = i32, Path, description = "The backup")),
    responses((status = 200, description = "The backup's disk as one standalone qcow2 (its base folded in: no backing file), as an attachment `{slug}-backup-{bid}.qcow2`", content_type = "application/octet-stream", body = Vec<u8>), OperationErrors,
        (status = 409, description = "The backup did not succeed, or the node prepares as many downloads as it may at once (`busy`)", body = ErrorBody)))]
pub async fn download(c: HostingCaller, Path((id, bid)): Path<(i32, i32)>) -> ApiResult<Response> {
    let d = c.hostings.download_backup(&c.actor, id, bid).await?;
    let file = tokio::fs::File::open(&d.path).await.map_err(|e| service::Error::internal(format!("opening {}: {e}", d.path.display())))?;
    let (len, disposition) = (d.len, format!("attachment; filename=\"{}\"", d.filename));
    let mut resp = Body::from_stream(stream_file(file, d)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// The file in chunks; the stream owns the download, so its folder goes when the body is
/// dropped: sent, or the client gone.
fn stream_file(file: tokio::fs::File, guard: BackupDownload) -> impl futures::Stream<Item = std::io::Result<Vec<u8>>> + Send {
    futures::stream::unfold((file, guard), |(mut file, guard)| async move {
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf), (file, guard)))
            }
            Err(e) => Some((Err(e), (file, guard))),
        }
    })
}
