//! The stats sampler: every `stats_interval_secs`, each running VM's counters, turned into a
//! sample for the live charts (`metrics`) and broadcast.
use std::time::Duration;

use crate::hosting::cx::Cx;
use vmw_types::HostingState;

/// Samples the node's VMs for the charts, while the node is up.
pub(crate) fn spawn_sampler(cx: &Cx) -> tokio::task::JoinHandle<()> {
    let cx = cx.clone();
    let every = Duration::from_secs(cx.cfg.stats_interval_secs.max(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if cx.up() {
                sample_stats(&cx).await;
            }
        }
    })
}

async fn sample_stats(cx: &Cx) {
    let rows = match cx.store.on_node_in(&[HostingState::Running]).await {
        Ok(r) => r,
        Err(err) => {
            tracing::warn!(%err, "stats sampler could not list hostings");
            return;
        }
    };
    for row in rows {
        match cx.vm.stats(row.id).await {
            Ok(raw) => {
                let Some(owner) = row.user_id else { continue };
                if let Some(sample) = cx.shared.metrics.push(row.id, owner, raw) {
                    cx.events().publish_stats(sample);
                }
            }
            Err(err) => tracing::debug!(hosting_id = row.id, %err, "no stats"),
        }
    }
}
