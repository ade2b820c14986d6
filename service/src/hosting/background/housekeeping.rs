//! The leader's housekeeping: nginx's logs rotated every 10 minutes, old events and account
//! activity pruned every hour, and (at the start of a leadership) every routed site's nginx
//! files brought up to date.
use std::time::Duration;

use crate::accounts::Accounts;
use crate::db::now_ms;
use crate::hosting::cx::Cx;
use crate::hosting::saga::site::site_route;
use crate::Result;

/// Housekeeping: nginx's logs every 10 minutes, old events every hour.
pub(crate) fn spawn_housekeeping(cx: &Cx, accounts: &Accounts) -> tokio::task::JoinHandle<()> {
    let (cx, accounts) = (cx.clone(), accounts.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        for round in 0u64.. {
            tick.tick().await;
            match cx.proxy().rotate_logs(cx.cfg.nginx_log_max_mib.saturating_mul(1 << 20)).await {
                Ok(r) if r.is_empty() => {}
                Ok(r) => tracing::info!(logs = ?r, "rotated nginx's logs"),
                Err(err) => tracing::warn!(%err, "rotating nginx's logs failed"),
            }
            if round % 6 != 0 {
                continue;
            }
            match prune_events(&cx, &accounts).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "pruned old hosting events"),
                Err(err) => tracing::warn!(%err, "pruning old hosting events failed"),
            }
        }
    })
}

/// Deletes events older than `event_retention_days` (0: none), keeping each hosting's
/// newest, and account activity older than that. Runs hourly in the background.
pub(crate) async fn prune_events(cx: &Cx, accounts: &Accounts) -> Result<u64> {
    let days = cx.cfg.event_retention_days;
    if days == 0 {
        return Ok(0);
    }
    let before = now_ms() - i64::from(days) * 86_400_000;
    let activity = accounts.prune_activity_before(before).await?;
    Ok(cx.events().prune_before(before).await? + activity)
}

/// Brings every routed site's nginx files up to date with this build and these settings.
pub(crate) async fn refresh_routes(cx: &Cx) {
    let Ok(routed) = cx.proxy().list_routes().await else { return };
    let mut routes = Vec::new();
    for id in routed {
        if let Ok(Some(row)) = cx.store.get(id).await {
            if let Ok(r) = site_route(cx, &row).await {
                routes.push(r);
            }
        }
    }
    match cx.proxy().refresh_routes(&routes).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(sites = n, "rewrote the nginx files of sites made by an older build"),
        Err(err) => tracing::warn!(%err, "could not bring the sites' nginx files up to date"),
    }
}
