//! Restoring a site's backups (issue 31): in place, as a new site, on another node, and the
//! download of a backup's disk.
use crate::accounts::Actor;
use crate::hosting::cluster::placement::placement;
use crate::hosting::lifecycle::backups::{self, BackupDownload, restore_new, restore_node};
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
        if let RestoreTarget::NewSite { slug } = &target {
            // A new site of the same owner, wherever the placement rules put it; the source
            // is not touched (its node may even be down: the backup is in the repository).
            let (source, b) = backups::restorable(&self.cx, actor, id, bid).await?;
            let (nodes, refusal) = placement(&self.cluster, &source.plan).await?;
            let row = restore_new::place_restored(nodes, refusal, &self.cx, &source, b, slug.as_deref()).await?;
            return self.view(&row).await;
        }
        if let RestoreTarget::Node { node_id } = target {
            // The site moves (see `restore_node`): from its node, which may be down, to another.
            let (source, b) = backups::restorable(&self.cx, actor, id, bid).await?;
            let from = self.cluster.get(source.node_id)?;
            restore_node::may_move(actor, &from).await?;
            let (placed, _) = placement(&self.cluster, &source.plan).await?;
            let to = restore_node::target(placed, source.node_id, &source.plan, node_id).await?;
            let row = restore_node::restore_on_node(from, to.clone(), source, b).await?;
            return self.with(to).view(&row).await;
        }
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
