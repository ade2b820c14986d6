//! The warm pool: spare VMs booted ahead of time and saved to disk (they hold no RAM while
//! they wait). A create claims one (`Store::insert_for_user`), restores it (~0.4 s),
//! personalises it through the guest agent (hostname, the user's SSH keys, the welcome page)
//! and publishes its route, so the site is live in about a second instead of a 20-40 s cold
//! boot. Spares belong to no account until claimed. Each spare booted on its own, so host keys
//! and machine-id are its own (FACTS.md: clones of one save would share them).
use std::time::{Duration, Instant};

use super::{HostingService, HostingState, units};
use crate::{Error, Result};

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

    /// Spares ready to be claimed on this node.
    pub async fn spares_ready(&self) -> Result<u64> {
        self.inner.store.count_spares(true).await
    }

    /// Makes one spare when the pool is short. Returns whether it made one.
    pub async fn fill_pool_once(&self) -> Result<bool> {
        let want = self.inner.cfg.pool_size as u64;
        if want == 0 {
            return Ok(false);
        }
        let store = &self.inner.store;
        if store.count_spares(false).await? >= want {
            return Ok(false);
        }
        if !store.on_node_in(&[HostingState::Queued, HostingState::Provisioning]).await?.is_empty() {
            return Ok(false);
        }
        let Ok(_permit) = self.inner.permits.clone().try_acquire_owned() else {
            return Ok(false);
        };
        self.make_spare().await?;
        Ok(true)
    }

    async fn make_spare(&self) -> Result<()> {
        let plan = self.inner.cfg.plans.first().ok_or_else(|| Error::internal("no plans configured"))?;
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..10];
        let store = &self.inner.store;
        let (row, lease) = store.insert_spare(&format!("spare-{suffix}"), &plan.name).await?;
        let t = Instant::now();
        match self.run_units(&row, &lease, units::SPARE, false).await {
            Ok(()) => {
                store.finish(&lease, HostingState::Spare, None).await?;
                tracing::info!(hosting_id = row.id, ms = t.elapsed().as_millis() as u64, "warm spare ready");
                Ok(())
            }
            Err(failure) => {
                if failure.undo_errors.is_empty() {
                    store.delete(&lease).await?;
                } else {
                    // Left under its lease's expiry: reconciliation removes it.
                    tracing::warn!(hosting_id = row.id, errors = ?failure.undo_errors, "a failed spare was not fully removed");
                }
                Err(failure.error)
            }
        }
    }
}
