//! The nodes, for administrators (and the tests): every node's service, adding, draining and
//! removing nodes, their health and views.
use crate::accounts::Actor;
use crate::hosting::background::node::start_added_node;
use crate::hosting::cluster::{add, health};
use crate::hosting::nodes::NewNode;
use crate::hosting::{HostingService, NodeView};
use crate::Result;

impl HostingService {
    /// The service of node `node_id` (this one's when it is this node).
    pub fn on(&self, node_id: i32) -> Result<HostingService> {
        if node_id == self.node_id() {
            return Ok(self.clone());
        }
        Ok(self.with(self.cluster.get(node_id)?))
    }

    /// Every node's service, by node id.
    pub fn node_services(&self) -> Vec<HostingService> {
        self.cluster.all().into_iter().map(|cx| self.with(cx)).collect()
    }

    /// Checks every node (connect, libvirt version, guest image) and keeps the answers.
    pub async fn check_nodes(&self) {
        health::check_nodes(&self.cluster).await
    }

    /// Adds a node (administrators only). It must answer, have the guest image (a volume of
    /// one of its storage pools, at the image's path here) and see this host's
    /// `{data_dir}/nodes` at the same path (shared storage: the app writes the node's VM files
    /// there); see README "More than one node". Else it is refused and nothing is stored.
    pub async fn add_node(&self, actor: &Actor, new: NewNode) -> Result<NodeView> {
        actor.require_admin()?;
        let cx = add::add_node(&self.cluster, new).await?;
        if self.cluster.started() {
            start_added_node(&self.cluster, &cx).await;
        }
        health::node_view(&cx).await
    }

    /// Drains a node (no new sites or spares go there; its sites keep running) or takes it
    /// back (`drained` false).
    pub async fn set_node_drained(&self, actor: &Actor, id: i32, drained: bool) -> Result<NodeView> {
        actor.require_admin()?;
        health::node_view(&self.cluster.set_drained(id, drained).await?).await
    }

    /// Removes an added node that has no sites left (409 otherwise). Its ready spares are
    /// deleted first; the node of the app's settings cannot be removed.
    pub async fn remove_node(&self, actor: &Actor, id: i32) -> Result<()> {
        actor.require_admin()?;
        self.cluster.remove(id).await
    }

    /// Every node with its health, capacity and sites (administrators only).
    pub async fn nodes_info(&self, actor: &Actor) -> Result<Vec<NodeView>> {
        actor.require_admin()?;
        let mut out = Vec::new();
        for cx in self.cluster.all() {
            out.push(health::node_view(&cx).await?);
        }
        Ok(out)
    }

    /// This node's capacity, usage, health and sites (admin page; [`HostingService::nodes_info`]
    /// has every node).
    pub async fn node_info(&self, actor: &Actor) -> Result<NodeView> {
        actor.require_admin()?;
        health::node_view(&self.cx).await
    }
}
