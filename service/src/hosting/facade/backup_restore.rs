//! Restoring a site's backups (issue 31): in place, as a new site, on another node, and the
//! download of a backup's disk.
use crate::accounts::Actor;
use crate::hosting::lifecycle::backups::{self, BackupDownload};
use crate::hosting::{HostingService, HostingView};
use crate::Result;
use vmw_types::RestoreTarget;

impl HostingService {
    /// Starts restoring backup `bid` of hosting `id` (owner or admin; others 404) to `target`;
    /// returns at once with the hosting being restored. 409 while another operation runs on
    /// the site, when the backup did not succeed, or (in place) when the owner's snapshots are
    /// at their limit (code `conflict`, field `snapshots`: the current state is snapshotted
    /// first).
    pub async fn restore_backup(&self, actor: &Actor, id: i32, bid: i32, target: RestoreTarget) -> Result<HostingView> {
        let node = self.site_node(actor, id).await?;
        let row = backups::restore(&node, actor, id, bid, target).await?;
        self.with(node).view(&row).await
    }

    /// Backup `bid`'s disk as one standalone qcow2, ready to send (see [`BackupDownload`]).
    pub async fn download_backup(&self, actor: &Actor, id: i32, bid: i32) -> Result<BackupDownload> {
        let node = self.site_node(actor, id).await?;
        backups::download::prepare(&node, actor, id, bid).await
    }
}
