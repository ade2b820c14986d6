//! The idle sleeper: a running site with no visit for `idle_sleep_secs` (no request through
//! nginx, no SSH session open) goes to sleep; the next visit wakes it (`lifecycle::visit`).
use std::time::Duration;

use crate::db::now_ms;
use crate::hosting::cx::Cx;
use crate::hosting::lifecycle::visit::sleep_site;
use crate::hosting::activity;
use vmw_types::{HostingState, Operation};
use crate::Result;

/// Puts running sites with no visit for the idle time to sleep (and notes visits seen);
/// the background task calls it every `idle_check_secs`. Returns how many went to sleep.
pub(crate) async fn sleep_idle_sites(cx: &Cx) -> Result<usize> {
    let idle_ms = (cx.cfg.idle_sleep_secs as i64).saturating_mul(1000);
    if idle_ms == 0 {
        return Ok(0);
    }
    let now = now_ms();
    let ssh_open = activity::ssh_session_ports(cx.cfg.forward_bind).await;
    let mut slept = 0;
    for row in cx.store.on_node_in(&[HostingState::Running]).await? {
        if row.user_id.is_none() || row.operation.is_some() || row.always_on {
            continue;
        }
        // /{slug}/ logs to one file; the site's names ({slug}.{base_domain}, custom domains), over
        // HTTP and HTTPS alike, to another (the shared servers', opened by nginx's workers).
        let plain = activity::modified_ms(&cx.proxy().visits_file(row.id)).await;
        let https = activity::modified_ms(&cx.proxy().tls_visits_file(row.id)).await;
        let http = plain.max(https);
        let ssh = row.ssh_port.filter(|p| ssh_open.contains(&(*p as u16))).map(|_| now);
        let seen = http.max(ssh);
        if seen > row.last_active_at {
            let _ = cx.store.mark_active(row.id, seen.unwrap_or(now)).await;
        }
        let last = seen.max(row.last_active_at).max(row.running_since).unwrap_or(now);
        if now - last < idle_ms {
            continue;
        }
        let Ok(Ok((_, lease))) = cx.store.begin(row.id, Operation::Sleep).await else { continue };
        let mins = cx.cfg.idle_sleep_secs.div_ceil(60);
        let why = format!("Asleep after {mins} min without visits: the next visit wakes it");
        if let Err(err) = sleep_site(cx, lease, why).await {
            tracing::warn!(hosting_id = row.id, %err, "putting an idle site to sleep failed");
        } else {
            slept += 1;
        }
    }
    Ok(slept)
}

/// The periodic idle check (a background task).
pub(crate) fn spawn_idle_sleeper(cx: &Cx) -> tokio::task::JoinHandle<()> {
    let cx = cx.clone();
    let every = Duration::from_secs(cx.cfg.idle_check_secs.max(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            match sleep_idle_sites(&cx).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(sites = n, "idle sites went to sleep"),
                Err(err) => tracing::warn!(%err, "the idle check failed"),
            }
        }
    })
}
