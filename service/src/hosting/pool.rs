//! The golden snapshot and the warm pool. Spares are made ahead of time, as clones of the
//! golden (or by a cold boot when there is no golden of their plan's size), made unique
//! (machine-id, SSH host keys) and then paused in RAM or saved to disk. A create claims one
//! (`Store::insert_for_user`), resumes or restores it, personalises it through the guest agent
//! (hostname, the user's SSH keys, the welcome page) and publishes its route. Spares belong to
//! no account until claimed.
use std::time::{Duration, Instant};

use super::ports;
use super::{HostingService, HostingState, units};
use crate::config::Plan;
use crate::vm::{GoldenSpec, SeedSpec};
use vmw_types::SpareTier;
use crate::{Error, Result};

/// Port leases of the golden VM while it is made (no hosting row has id 0).
pub(super) const GOLDEN_LEASE: i32 = 0;
/// How long after a failed golden snapshot the next attempt waits.
const GOLDEN_RETRY: Duration = Duration::from_secs(600);

impl HostingService {
    /// Keeps `pool_size` spares ready, in the background. Users come first: no spare is made
    /// while a user's hosting waits for a provisioning slot.
    pub(super) fn spawn_pool_filler(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                match this.fill_pool_once().await {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(err) => tracing::warn!(%err, "could not make a warm spare"),
                }
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        })
    }

    /// Spares ready to be claimed on this node, both tiers.
    pub async fn spares_ready(&self) -> Result<u64> {
        let store = &self.inner.store;
        Ok(store.count_spares(Some(SpareTier::Paused)).await? + store.count_spares(Some(SpareTier::Saved)).await?)
    }

    /// Ready spares of one tier.
    pub async fn spares_in(&self, tier: SpareTier) -> Result<u64> {
        self.inner.store.count_spares(Some(tier)).await
    }

    /// Makes the golden snapshot when there is none, else one spare when the pool is short.
    /// Returns whether it made something.
    pub async fn fill_pool_once(&self) -> Result<bool> {
        if self.ensure_golden().await? {
            return Ok(true);
        }
        // Spares wait for the golden rather than boot cold beside it: the golden is the only
        // cold boot (unless it failed, then spares boot cold until it is retried).
        if self.golden_pending() {
            return Ok(false);
        }
        let cfg = &self.inner.cfg;
        let (want_paused, want) = (cfg.pool_paused as u64, (cfg.pool_paused + cfg.pool_size) as u64);
        let store = &self.inner.store;
        if want == 0 || store.count_spares(None).await? >= want {
            return Ok(false);
        }
        // A drained or unreachable node gets no new spares (nor the golden's cold boot below).
        if !self.takes_new().await? {
            return Ok(false);
        }
        // The fast tier first (paused in RAM), then saved ones behind it.
        let tier = if store.count_spares(Some(SpareTier::Paused)).await? < want_paused { SpareTier::Paused } else { SpareTier::Saved };
        if !store.on_node_in(&[HostingState::Queued, HostingState::Provisioning]).await?.is_empty() {
            return Ok(false);
        }
        let Ok(_permit) = self.inner.permits.clone().try_acquire_owned() else {
            return Ok(false);
        };
        match self.make_spare(tier).await {
            Ok(()) => Ok(true),
            // The node is full: no spare until hostings go (users' creates are refused the same way).
            Err(Error::NodeFull(why)) => {
                tracing::debug!(%why, "no warm spare: the node is full");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    async fn make_spare(&self, tier: SpareTier) -> Result<()> {
        let plan = self.inner.cfg.plans.first().ok_or_else(|| Error::internal("no plans configured"))?;
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..10];
        let store = &self.inner.store;
        let (row, lease) = store.insert_spare(&format!("spare-{suffix}"), &plan.name, &self.inner.capacity).await?;
        let t = Instant::now();
        let order = match (self.can_clone(plan), tier) {
            (true, SpareTier::Paused) => units::SPARE_CLONE_PAUSED,
            (true, SpareTier::Saved) => units::SPARE_CLONE,
            (false, SpareTier::Paused) => units::SPARE_PAUSED,
            (false, SpareTier::Saved) => units::SPARE,
        };
        match self.run_units(&row, &lease, order, false).await {
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

    /// Whether a VM of `plan` can be a clone of the golden snapshot (there is one, of its size).
    pub(super) fn can_clone(&self, plan: &Plan) -> bool {
        self.inner.cfg.golden
            && self
                .inner
                .vm
                .golden()
                .is_some_and(|g| (g.vcpus, g.memory_mib, g.disk_gib) == (plan.vcpus, plan.memory_mib, plan.disk_gib))
    }

    /// A golden snapshot is wanted and missing, and not in its wait after a failure.
    fn golden_pending(&self) -> bool {
        self.inner.cfg.golden
            && self.inner.vm.golden().is_none()
            && !self.inner.golden_failed_at.lock().unwrap().is_some_and(|t| t.elapsed() < GOLDEN_RETRY)
    }

    /// Makes the golden snapshot of the current guest image (for the first plan) when it is
    /// switched on and missing: one cold boot, in a provisioning slot. Returns whether it did.
    async fn ensure_golden(&self) -> Result<bool> {
        let cfg = &self.inner.cfg;
        if !cfg.golden || self.inner.vm.golden().is_some() || !self.takes_new().await? {
            return Ok(false);
        }
        // A golden that failed (an image without a guest agent, say) is not retried at once:
        // meanwhile VMs boot cold.
        if !self.golden_pending() {
            return Ok(false);
        }
        let Ok(_permit) = self.inner.permits.clone().try_acquire_owned() else {
            return Ok(false);
        };
        let plan = cfg.plans.first().ok_or_else(|| Error::internal("no plans configured"))?;
        let store = &self.inner.store;
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
                    index_html: super::provision::welcome_page("golden", &cfg.guest_user),
                };
                tracing::info!("making the golden snapshot of the guest image (one cold boot)");
                self.inner.vm.make_golden(&spec, &seed, Duration::from_secs(cfg.ready_timeout_secs)).await.map_err(Error::from)
            }
            Err(e) => Err(e),
        };
        ports::release_on_node(db, node, GOLDEN_LEASE).await?;
        if let Err(err) = made {
            *self.inner.golden_failed_at.lock().unwrap() = Some(std::time::Instant::now());
            tracing::warn!(%err, retry_in_s = GOLDEN_RETRY.as_secs(), "could not make the golden snapshot; VMs boot cold meanwhile");
            return Err(err);
        }
        Ok(true)
    }
}
