//! The leader's certificate work: every few seconds (at once when an owner presses "Check now"
//! or adds a domain) the dashboard's and the sites' certificates are issued or renewed where due
//! and nginx is given the result when it changed, then the custom domains due are checked
//! (`lifecycle::domain_checks`). Stale HTTP-01 answers are pruned hourly.
use std::time::{Duration, Instant};

use crate::hosting::certs::front::front;
use crate::hosting::cx::Cx;
use crate::hosting::lifecycle::domain_checks::run_due;

/// How often the certificates and the domains due are looked at.
const TICK: Duration = Duration::from_secs(5);

pub(crate) fn spawn_certs(cx: &Cx) -> tokio::task::JoinHandle<()> {
    let cx = cx.clone();
    tokio::spawn(async move {
        let mut pruned = Instant::now();
        loop {
            serve_front(&cx).await;
            run_due(&cx).await;
            if pruned.elapsed() > Duration::from_secs(3600) {
                pruned = Instant::now();
                if let Err(err) = crate::store::acme_challenges::prune(cx.store.db()).await {
                    tracing::warn!(%err, "could not prune old ACME challenges");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = cx.shared.domain_checks.notified() => {}
            }
        }
    })
}

/// Issues or renews the dashboard's and the sites' certificates where due and hands nginx the
/// result when it differs from what it serves. nginx refusing it keeps the old one served.
pub(crate) async fn serve_front(cx: &Cx) {
    let want = front(cx, true).await;
    if want != cx.proxy().tls_front() {
        if let Err(err) = cx.proxy().set_tls(want).await {
            tracing::error!(%err, "nginx refused the new certificates; the previous ones are still served");
        }
    }
}
