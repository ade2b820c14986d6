//! The background work: the leader's (`leader`: reconciliation at start and periodically,
//! the warm pool, idle sleep, SSH wakers, housekeeping, the nodes' health) and every replica's
//! (the stats sampler, the other replicas' notes). One node's periodic work is in `node`.
pub(crate) mod housekeeping;
pub(crate) mod certs;
pub(crate) mod idle;
pub(crate) mod leader;
pub(crate) mod node;
pub(crate) mod pool;
pub(crate) mod reconcile;
pub(crate) mod sampler;
pub(crate) mod state_backup;
