//! One node's periodic work, started by the leader: reconciliation, the warm pool, idle sleep
//! (and, on an added node, its stats sampler).
use std::time::Duration;

use super::{idle, pool, reconcile, sampler};
use crate::hosting::cluster::Cluster;
use crate::hosting::cx::Cx;
use crate::hosting::lifecycle::visit::open_all_ssh_wakers;

/// One node's periodic work: reconciliation, the warm pool, idle sleep.
pub(crate) fn node_tasks(cx: &Cx) -> Vec<tokio::task::JoinHandle<()>> {
    let sleeper = idle::spawn_idle_sleeper(cx);
    let node = cx.clone();
    let every = Duration::from_secs(cx.cfg.reconcile_interval_secs.max(1));
    let reconciler = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            // A node that is down is left alone: its sites show as unreachable, unchanged.
            if !node.up() {
                continue;
            }
            // The periodic pass is the same pass: leases keep it off hostings in the middle of work.
            if let Err(err) = reconcile::reconcile(&node).await {
                tracing::warn!(node = %node.cfg.node_name, %err, "periodic reconciliation failed");
            }
        }
    });
    let pool = pool::spawn_pool_filler(cx);
    vec![reconciler, pool, sleeper]
}

/// An added node's own background work; its first reconciliation failing (the node is
/// down) is logged, not fatal: the next round tries again.
pub(crate) async fn start_added_node(cluster: &Cluster, cx: &Cx) {
    match reconcile::reconcile(cx).await {
        Ok(report) => tracing::info!(node = %cx.cfg.node_name, ?report, "node reconciliation done"),
        Err(err) => tracing::warn!(node = %cx.cfg.node_name, %err, "node reconciliation failed (is the node up?)"),
    }
    open_all_ssh_wakers(cx).await;
    let mut tasks = node_tasks(cx);
    tasks.push(sampler::spawn_sampler(cx));
    cluster.keep_tasks(cx.node_id(), tasks);
}
