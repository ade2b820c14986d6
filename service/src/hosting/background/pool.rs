//! The golden snapshot and the warm pool. Spares are made ahead of time, as clones of the
//! golden (or by a cold boot when there is no golden of their plan's size), made unique
//! (machine-id, SSH host keys) and then paused in RAM or saved to disk. A create claims one
//! (`Store::insert_for_user`), resumes or restores it, personalises it through the guest agent
//! (hostname, the user's SSH keys, the welcome page) and publishes its route. Spares belong to
//! no account until claimed.
use std::time::{Duration, Instant};

use crate::hosting::cluster::placement::takes_new;
use crate::hosting::cx::Cx;
use crate::hosting::lifecycle::provision::can_clone;
use crate::hosting::saga::orders;
use crate::hosting::saga::runner::run_units;
use crate::hosting::saga::site::welcome_page;
use crate::store::ports;
use vmw_types::HostingState;
use crate::vm::{GoldenSpec, SeedSpec};
use vmw_types::SpareTier;
use crate::{Error, Result};

/// Port leases of the golden VM while it is made (no hosting row has id 0).
pub(crate) const GOLDEN_LEASE: i32 = 0;
/// How long after a failed golden snapshot the next attempt waits.
const GOLDEN_RETRY: Duration = Duration::from_secs(600);

/// Keeps `pool_size` spares ready, in the background. Users come first: no spare is made
/// while a user's hosting waits for a provisioning slot.
pub(crate) fn spawn_pool_filler(cx: &Cx) -> tokio::task::JoinHandle<()> {
    let cx = cx.clone();
    tokio::spawn(async move {
        loop {
            match fill_pool_once(&cx).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(err) => tracing::warn!(%err, "could not make a warm spare"),
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    })
}

/// Makes the golden snapshot when there is none, else one spare when the pool is short.
/// Returns whether it made something.
pub(crate) async fn fill_pool_once(cx: &Cx) -> Result<bool> {
    if ensure_golden(cx).await? {
        return Ok(true);
    }
    // Spares wait for the golden rather than boot cold beside it: the golden is the only
    // cold boot (unless it failed, then spares boot cold until it is retried).
    if golden_pending(cx) {
        return Ok(false);
    }
    let cfg = &cx.cfg;
    let (want_paused, want) = (cfg.pool_paused as u64, (cfg.pool_paused + cfg.pool_size) as u64);
    let store = &cx.store;
    if want == 0 || store.count_spares(None).await? >= want {
        return Ok(false);
    }
    // A drained or unreachable node gets no new spares (nor the golden's cold boot below).
    if !takes_new(cx).await? {
        return Ok(false);
    }
    // The fast tier first (paused in RAM), then saved ones behind it.
    let tier = if store.count_spares(Some(SpareTier::Paused)).await? < want_paused { SpareTier::Paused } else { SpareTier::Saved };
    if !store.on_node_in(&[HostingState::Queued, HostingState::Provisioning]).await?.is_empty() {
        return Ok(false);
    }
    let Ok(_permit) = cx.permits.clone().try_acquire_owned() else {
        return Ok(false);
    };
    match make_spare(cx, tier).await {
        Ok(()) => Ok(true),
        // The node is full: no spare until hostings go (users' creates are refused the same way).
        Err(Error::NodeFull(why)) => {
            tracing::debug!(%why, "no warm spare: the node is full");
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

async fn make_spare(cx: &Cx, tier: SpareTier) -> Result<()> {
    let plan = cx.cfg.plans.first().ok_or_else(|| Error::internal("no plans configured"))?;
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let store = &cx.store;
    let (row, lease) = store.insert_spare(&format!("spare-{suffix}"), &plan.name, &cx.capacity).await?;
    let t = Instant::now();
    let order = match (can_clone(cx, plan), tier) {
        (true, SpareTier::Paused) => orders::SPARE_CLONE_PAUSED,
        (true, SpareTier::Saved) => orders::SPARE_CLONE,
        (false, SpareTier::Paused) => orders::SPARE_PAUSED,
        (false, SpareTier::Saved) => orders::SPARE,
    };
    match run_units(cx, &row, &lease, order, false).await {
        Ok(()) => {
            store.finish_spare(&lease, tier).await?;
            tracing::info!(hosting_id = row.id, %tier, ms = t.elapsed().as_millis() as u64, "warm spare ready");
            Ok(())
        }
        Err(failure) => {
            if failure.undo_errors.is_empty() {
                store.delete(&lease).await?;
            } else {
                // The lease is given back as it drops: reconciliation finishes the removal.
                tracing::warn!(hosting_id = row.id, errors = ?failure.undo_errors, "a failed spare was not fully removed");
            }
            Err(failure.error)
        }
    }
}

/// A golden snapshot is wanted and missing, and not in its wait after a failure.
fn golden_pending(cx: &Cx) -> bool {
    cx.cfg.golden
        && cx.vm.golden().is_none()
        && !cx.golden_failed_at.lock().unwrap().is_some_and(|t| t.elapsed() < GOLDEN_RETRY)
}

/// Makes the golden snapshot of the current guest image (for the first plan) when it is
/// switched on and missing: one cold boot, in a provisioning slot. Returns whether it did.
async fn ensure_golden(cx: &Cx) -> Result<bool> {
    let cfg = &cx.cfg;
    if !cfg.golden || cx.vm.golden().is_some() || !takes_new(cx).await? {
        return Ok(false);
    }
    // A golden that failed (an image without a guest agent, say) is not retried at once:
    // meanwhile VMs boot cold.
    if !golden_pending(cx) {
        return Ok(false);
    }
    let Ok(_permit) = cx.permits.clone().try_acquire_owned() else {
        return Ok(false);
    };
    let plan = cfg.plans.first().ok_or_else(|| Error::internal("no plans configured"))?;
    let store = &cx.store;
    let (db, node) = (store.db(), store.node_id());
    // An attempt that died left its ports: take them back first.
    ports::release_on_node(db, node, GOLDEN_LEASE).await?;
    let made = match ports::lease_pair(db, node, GOLDEN_LEASE, cfg).await {
        Ok((http_port, ssh_port)) => {
            let spec = GoldenSpec { vcpus: plan.vcpus, memory_mib: plan.memory_mib, disk_gib: plan.disk_gib, http_port, ssh_port };
            let seed = SeedSpec {
                hostname: "golden".into(),
                user: cfg.guest_user.clone(),
                authorized_keys: vec![],
                index_html: welcome_page("golden", &cfg.guest_user),
            };
            tracing::info!("making the golden snapshot of the guest image (one cold boot)");
            cx.vm.make_golden(&spec, &seed, Duration::from_secs(cfg.ready_timeout_secs)).await.map_err(Error::from)
        }
        Err(e) => Err(e),
    };
    ports::release_on_node(db, node, GOLDEN_LEASE).await?;
    if let Err(err) = made {
        *cx.golden_failed_at.lock().unwrap() = Some(std::time::Instant::now());
        tracing::warn!(%err, retry_in_s = GOLDEN_RETRY.as_secs(), "could not make the golden snapshot; VMs boot cold meanwhile");
        return Err(err);
    }
    Ok(true)
}
