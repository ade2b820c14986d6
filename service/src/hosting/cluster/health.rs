//! The nodes' health (connect, libvirt version, guest image: checked periodically by the
//! leader) and each node's view for administrators.
use super::nodes::Cluster;
use crate::db::now_ms;
use crate::hosting::cx::Cx;
use crate::hosting::metrics;
use vmw_types::{HostingState, NodeHealth, NodeSite, NodeView};
use crate::{Error, Result};

/// Checks every node (connect, libvirt version, guest image) and keeps the answers.
pub(crate) async fn check_nodes(cluster: &Cluster) {
    for cx in cluster.all() {
        let h = check_health(&cx, cluster.is_home(cx.node_id())).await;
        if !h.connected {
            tracing::warn!(node = %cx.cfg.node_name, error = ?h.last_error, "node is unreachable");
        }
        *cx.health.lock().unwrap() = h;
    }
}

async fn check_health(cx: &Cx, home: bool) -> NodeHealth {
    let checked_at = now_ms();
    let res = if cx.faults().node_down(cx.node_id()) {
        Ok(Err(crate::vm::VmError::Invalid(format!("could not connect to libvirt at {}: made unreachable by a test", cx.cfg.libvirt_uri))))
    } else {
        tokio::time::timeout(std::time::Duration::from_secs(20), cx.vm.health()).await
    };
    match res {
        // The node of the settings reads the image from this host's disk (as ever).
        Ok(Ok((version, image))) => NodeHealth {
            connected: true,
            libvirt_version: Some(version),
            image_ok: home || image.is_ok(),
            last_error: if home { None } else { image.err() },
            checked_at,
        },
        Ok(Err(e)) => NodeHealth { connected: false, libvirt_version: None, image_ok: false, last_error: Some(e.to_string()), checked_at },
        Err(_) => NodeHealth {
            connected: false,
            libvirt_version: None,
            image_ok: false,
            last_error: Some("libvirt did not answer within 20 s".into()),
            checked_at,
        },
    }
}

/// This node's view: health, capacity, counts and sites.
pub(crate) async fn node_view(cx: &Cx) -> Result<NodeView> {
    let store = &cx.store;
    let node = store.node(store.node_id()).await?.ok_or(Error::NotFound("node"))?;
    let health = cx.health();
    let hostings_total = store.count_on_node().await?;
    let vms_running = if health.connected {
        match cx.vm.list_domains().await {
            Ok(d) => d.into_iter().filter(|(_, s)| *s == crate::vm::VmState::Running).count() as u64,
            Err(_) => 0,
        }
    } else {
        0
    };
    let (total, avail) = if node.added { (node.memory_mib.max(0) as u64 * 1024, 0) } else { metrics::host_memory_kib() };
    let committed = store.committed_in(store.db(), &cx.capacity).await?;
    let sites = store
        .users_on_node()
        .await?
        .into_iter()
        .map(|h| NodeSite { id: h.id, slug: h.slug, state: h.state })
        .collect();
    Ok(NodeView {
        id: node.id,
        name: node.name,
        libvirt_uri: node.libvirt_uri,
        domain_type: cx.vm.domain_type().to_string(),
        memory_total_kib: total,
        memory_available_kib: avail,
        hostings_total,
        vms_running,
        hostings_running: store.count_on_node_in(HostingState::Running).await?,
        hostings_stopped: store.count_on_node_in(HostingState::Stopped).await?,
        hostings_sleeping: store.count_on_node_in(HostingState::Sleeping).await?,
        memory_committed_mib: committed.memory_mib,
        memory_limit_mib: cx.capacity.memory_limit_mib,
        disk_committed_gib: committed.disk_gib,
        disk_limit_gib: cx.capacity.disk_limit_gib,
        address: cx.cfg.forward_bind.to_string(),
        drained: node.drained,
        added: node.added,
        health,
        sites,
    })
}
