//! The background work (started once by the app) and its passes, which the tests and the
//! metrics endpoint also call directly.
use crate::hosting::background::{housekeeping, idle, leader, pool, reconcile};
use crate::hosting::{HostingService, ReconcileReport, SpareTier};
use crate::Result;

impl HostingService {
    /// Starts the background work (see `background::leader`): every replica samples its
    /// node's VMs and listens to the others; the leader reconciles (once now, before it serves,
    /// then periodically), refills the warm pool, puts idle sites to sleep, listens on sleeping
    /// sites' SSH ports, keeps house, and checks the nodes, on every node. The tasks stop when
    /// the returned handles are aborted (or the runtime ends).
    pub async fn start_background(&self) -> Result<Vec<tokio::task::JoinHandle<()>>> {
        leader::start_background(&self.cluster, &self.accounts).await
    }

    /// Disaster recovery (`restore-node`): every site of this node rebuilt from its newest
    /// backup, with the service's state already restored (see `lifecycle::backups::recover`).
    pub async fn recover_from_backups(&self) -> Result<crate::hosting::RecoveryReport> {
        crate::hosting::lifecycle::backups::recover::recover_node(&self.cx).await
    }

    /// Backs up the service's own state (database and secrets) now (the leader does it after
    /// site backups and daily; see `background::state_backup`).
    pub async fn back_up_state(&self) -> std::result::Result<(), crate::state_backup::StateError> {
        crate::hosting::background::state_backup::run(&self.cx).await
    }

    /// Reconciles every hosting of this node that nobody holds a lease on: at start-up, the
    /// leases of this instance's previous boot count as free (it is dead).
    pub async fn reconcile(&self) -> Result<ReconcileReport> {
        reconcile::reconcile(&self.cx).await
    }

    /// Makes the golden snapshot when there is none, else one spare when the pool is short.
    /// Returns whether it made something.
    pub async fn fill_pool_once(&self) -> Result<bool> {
        pool::fill_pool_once(&self.cx).await
    }

    /// Puts running sites with no visit for the idle time to sleep (and notes visits seen);
    /// the background task calls it every `idle_check_secs`. Returns how many went to sleep.
    pub async fn sleep_idle_sites(&self) -> Result<usize> {
        idle::sleep_idle_sites(&self.cx).await
    }

    /// Deletes events older than `event_retention_days` (0: none), keeping each hosting's
    /// newest, and account activity older than that. Runs hourly in the background.
    pub async fn prune_events(&self) -> Result<u64> {
        housekeeping::prune_events(&self.cx, &self.accounts).await
    }

    /// Spares ready to be claimed on this node, both tiers.
    pub async fn spares_ready(&self) -> Result<u64> {
        let store = &self.cx.store;
        Ok(store.count_spares(Some(SpareTier::Paused)).await? + store.count_spares(Some(SpareTier::Saved)).await?)
    }

    /// Ready spares of one tier.
    pub async fn spares_in(&self, tier: SpareTier) -> Result<u64> {
        self.cx.store.count_spares(Some(tier)).await
    }

    /// Sets the gauges read from the database: hostings by state and ready spares per tier
    /// (the metrics endpoint calls it at each scrape, so they are never stale).
    pub async fn publish_gauges(&self) -> Result<()> {
        crate::telemetry::set_hostings(&self.cx.store.count_by_state().await?);
        for tier in SpareTier::ALL {
            crate::telemetry::set_pool_spares(*tier, self.spares_in(*tier).await?);
        }
        crate::hosting::lifecycle::backups::scheduler::publish_gauges(&self.cx, crate::db::now_ms()).await?;
        Ok(())
    }
}
