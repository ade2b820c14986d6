//! Where a new site (or spare) goes: the healthy, not drained node with the most free capacity.
use std::collections::HashMap;

use super::nodes::Cluster;
use crate::hosting::cx::Cx;
use crate::store::NodeRow;
use crate::Result;

/// The nodes a new site (or spare) may go to, the one with the most free capacity first:
/// healthy (connected, with the image), not drained, with room for a VM of `plan` (then
/// the full ones: a ready spare there is already counted). Free capacity is the memory
/// limit minus what is committed (then disk, then the lower id). Also the refusal of the
/// full node with the most room (its numbers), if any.
pub(crate) async fn placement(cluster: &Cluster, plan: &str) -> Result<(Vec<Cx>, Option<String>)> {
    let db = cluster.home().store.db();
    let rows: HashMap<i32, NodeRow> = cluster.home().store.all_nodes().await?.into_iter().map(|n| (n.id, n)).collect();
    let mut cands = Vec::new();
    let mut full = Vec::new();
    for cx in cluster.all() {
        let id = cx.node_id();
        let h = cx.health();
        if !h.connected || !h.image_ok || rows.get(&id).is_none_or(|n| n.drained) {
            continue;
        }
        let cap = &cx.capacity;
        let used = cx.store.committed_in(db, cap).await?;
        let free = (cap.memory_limit_mib.saturating_sub(used.memory_mib), cap.disk_limit_gib.saturating_sub(used.disk_gib));
        match cap.refusal(used, plan) {
            Some(why) => full.push((free, id, why)),
            None => cands.push((free, id, cx)),
        }
    }
    cands.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    full.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    // Full nodes last: a create there may still claim a ready spare (already counted).
    let why = full.first().map(|f| f.2.clone());
    let mut out: Vec<Cx> = cands.into_iter().map(|c| c.2).collect();
    for (_, id, _) in full {
        out.push(cluster.get(id)?);
    }
    Ok((out, why))
}

/// Whether this node takes new spares now (healthy and not drained).
pub(crate) async fn takes_new(cx: &Cx) -> Result<bool> {
    let h = cx.health();
    if !h.connected || !h.image_ok {
        return Ok(false);
    }
    let n = cx.store.node(cx.node_id()).await?;
    Ok(n.is_some_and(|n| !n.drained))
}
