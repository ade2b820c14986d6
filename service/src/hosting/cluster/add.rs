//! Adding a node: it must answer, have the guest image, see this host's node folder, and not
//! be the libvirt daemon of a node already known; then its row and its `Cx`.
use super::nodes::{Cluster, node_config};
use super::uri::{NewNode, check_uri_policy};
use crate::db::now_ms;
use crate::hosting::cx::Cx;
use crate::store::NodeRow;
use vmw_types::NodeHealth;
use crate::vm::VmManager;
use crate::{Error, Result};

/// Adds a node (the caller checked it is an administrator). It must answer, have the guest image (a volume of
/// one of its storage pools, at the image's path here) and see this host's
/// `{data_dir}/nodes` at the same path (shared storage: the app writes the node's VM files
/// there); see README "More than one node". Else it is refused and nothing is stored.
pub(crate) async fn add_node(cluster: &Cluster, new: NewNode) -> Result<Cx> {
    let home = cluster.home();
    let ip = new.validate()?;
    check_uri_policy(&new.libvirt_uri, &home.cfg)?;
    let same = home.store.node_named_or_at(&new.name, &new.libvirt_uri).await?;
    if let Some(n) = same {
        let field = if n.name == new.name { "name" } else { "libvirt_uri" };
        return Err(Error::conflict(Some(field), format!("node '{}' already has this name or URI", n.name)));
    }
    // Check it before storing anything: a throwaway manager with the node's settings.
    let probe = NodeRow {
        id: 0,
        name: new.name.clone(),
        libvirt_uri: new.libvirt_uri.clone(),
        memory_mib: new.memory_mib as i64,
        created_at: 0,
        address: Some(ip.to_string()),
        disk_gib: Some(new.disk_gib as i64),
        drained: false,
        added: true,
        identity: None,
        domain_prefix: None,
    };
    let vm = VmManager::lazy(&node_config(&home.cfg, &probe)?)?;
    let (version, image) = match tokio::time::timeout(std::time::Duration::from_secs(30), vm.health()).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return Err(Error::validation("libvirt_uri", format!("could not reach the node: {e}"))),
        Err(_) => return Err(Error::validation("libvirt_uri", "the node did not answer within 30 s")),
    };
    if let Err(why) = image {
        return Err(Error::validation("libvirt_uri", why));
    }
    // Its VM files are written here, under `{data_dir}/nodes/`: the node must see them.
    let folder = home.cfg.data_dir.join("nodes");
    match tokio::time::timeout(std::time::Duration::from_secs(30), vm.check_shared_folder(folder)).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(why))) => return Err(Error::validation("libvirt_uri", why)),
        Ok(Err(e)) => return Err(Error::validation("libvirt_uri", format!("could not check the node's folder: {e}"))),
        Err(_) => return Err(Error::validation("libvirt_uri", "the node did not answer within 30 s")),
    }
    // One daemon is one node: a second URI of a known one would see (and, reconciling,
    // judge) the other node's domains. What the daemon says it is, kept in the row:
    let identity = match tokio::time::timeout(std::time::Duration::from_secs(30), vm.identity()).await {
        Ok(Ok(id)) => id,
        Ok(Err(e)) => return Err(Error::validation("libvirt_uri", format!("could not read what the node is: {e}"))),
        Err(_) => return Err(Error::validation("libvirt_uri", "the node did not answer within 30 s")),
    };
    let shared = if home.cfg.allow_shared_libvirt_daemon { None } else { node_of_daemon(cluster, &vm).await? };
    if let Some(name) = shared {
        tracing::warn!(uri = %new.libvirt_uri, existing = %name, %identity, "refused a second node for one libvirt daemon");
        return Err(Error::conflict(
            Some("libvirt_uri"),
            format!("this URI reaches the libvirt daemon of node '{name}' (the same host and daemon); a daemon can be added once"),
        ));
    }
    // The row and its domain prefix (`{prefix}n{id}-`, its own) in one transaction.
    let row = home.store.insert_node(NodeRow { identity: Some(identity), ..probe }, &home.cfg.domain_prefix).await?;
    let cx = cluster.make_node(&row)?;
    *cx.health.lock().unwrap() = NodeHealth { connected: true, libvirt_version: Some(version), image_ok: true, last_error: None, checked_at: now_ms() };
    tracing::info!(node = %row.name, uri = %row.libvirt_uri, address = %ip, "node added");
    Ok(cx)
}

/// The name of the known node whose libvirt daemon `vm` reaches: the one that sees the
/// mark `vm` leaves on its daemon (`VmManager::mark_daemon`). Runs in a task of its own, so
/// an admin's dropped request never leaves the mark behind. A known node that cannot be
/// asked refuses the add: it might be that daemon.
async fn node_of_daemon(cluster: &Cluster, vm: &VmManager) -> Result<Option<String>> {
    let (nodes, data_dir, vm) = (cluster.all(), cluster.home().cfg.data_dir.clone(), vm.clone());
    tokio::spawn(async move { node_of_daemon_now(&nodes, &data_dir, &vm).await })
        .await
        .map_err(|e| Error::internal(format!("the node check ended: {e}")))?
}

async fn node_of_daemon_now(nodes: &[Cx], data_dir: &std::path::Path, vm: &VmManager) -> Result<Option<String>> {
    let wait = std::time::Duration::from_secs(20);
    // A folder of this check's own: libvirt refuses a second pool on a path one already
    // uses, so a mark left by a check that was cut short cannot block the next.
    let folder = data_dir.join("nodes").join(format!(".mark-{}", uuid::Uuid::new_v4().simple()));
    tokio::fs::create_dir_all(&folder).await.map_err(|e| Error::internal(format!("making {}: {e}", folder.display())))?;
    let found = ask_nodes_for_mark(nodes, vm, folder.clone(), wait).await;
    let _ = tokio::fs::remove_dir(&folder).await;
    found
}

async fn ask_nodes_for_mark(nodes: &[Cx], vm: &VmManager, folder: std::path::PathBuf, wait: std::time::Duration) -> Result<Option<String>> {
    let mark = match tokio::time::timeout(wait, vm.mark_daemon(folder)).await {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => return Err(Error::validation("libvirt_uri", format!("could not tell which libvirt daemon the node is: {e}"))),
        Err(_) => return Err(Error::validation("libvirt_uri", "the node did not answer within 20 s")),
    };
    let mut found = Ok(None);
    for cx in nodes {
        let node = cx.cfg.node_name.clone();
        let unknown = |why: String| {
            tracing::warn!(%node, %why, "could not ask a node whether a new node is its daemon");
            Err(Error::conflict(
                Some("libvirt_uri"),
                format!("node '{node}' could not be asked whether this URI reaches its libvirt daemon ({why}); add the node once '{node}' answers, or remove '{node}' first"),
            ))
        };
        match tokio::time::timeout(wait, cx.vm.sees_mark(&mark)).await {
            Ok(Ok(true)) => {
                found = Ok(Some(node));
                break;
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                found = unknown(e.to_string());
                break;
            }
            Err(_) => {
                found = unknown("no answer within 20 s".into());
                break;
            }
        }
    }
    if let Err(e) = vm.unmark_daemon(&mark).await {
        tracing::warn!(%mark, err = %e, "could not remove the transient storage pool of a node check");
    }
    found
}
