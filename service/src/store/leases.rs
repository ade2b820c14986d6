//! Hosting leases: the token and expiry in a hosting row that make one operation at a time
//! hold across processes, renewed while the work runs and given back when it ends.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::{HostingRow, Store};
use crate::db::entity::hosting;
use crate::db::now_ms;
use crate::{Error, Result};
use vmw_types::{HostingState, Operation};

/// How long a lease lasts without renewal, and how often a holder renews it.
pub const LEASE_TTL: Duration = Duration::from_secs(30);
const RENEW_EVERY: Duration = Duration::from_secs(10);

impl Store {
    /// A lease that nobody holds: none, expired, or left by an earlier boot of this instance.
    pub(super) fn lease_free(&self, now: i64) -> Condition {
        let i = &self.inner;
        Condition::any()
            .add(hosting::Column::LeaseOwner.is_null())
            .add(hosting::Column::LeaseUntil.lt(now))
            .add(
                Condition::all()
                    .add(hosting::Column::LeaseOwner.like(format!("{}:%", i.instance)))
                    .add(hosting::Column::LeaseOwner.not_like(format!("{}:{}:%", i.instance, i.boot))),
            )
    }

    pub(super) fn lease(&self, id: i32, token: String) -> Lease {
        Lease::new(self.clone(), id, token)
    }

    /// Leases a hosting for a look (reconciliation) when nobody holds it, whatever its state.
    /// Returns the row as it is under the lease.
    pub async fn look(&self, id: i32) -> Result<Option<(HostingRow, Lease)>> {
        let now = now_ms();
        let token = self.token();
        let res = hosting::Entity::update_many()
            .col_expr(hosting::Column::LeaseOwner, Expr::value(token.as_str()))
            .col_expr(hosting::Column::LeaseUntil, Expr::value(now + LEASE_TTL.as_millis() as i64))
            .filter(hosting::Column::Id.eq(id))
            .filter(self.lease_free(now))
            .exec(self.db())
            .await?;
        if res.rows_affected != 1 {
            return Ok(None);
        }
        Ok(self.get(id).await?.map(|row| (row, self.lease(id, token))))
    }

    /// Crash tests: leaves the hosting as a process that died in the middle of `operation`
    /// would have (that state and operation, its lease gone).
    #[doc(hidden)]
    pub async fn pretend_abandoned(&self, id: i32, state: HostingState, operation: Option<Operation>) -> Result<()> {
        hosting::Entity::update_many()
            .col_expr(hosting::Column::State, Expr::value(state))
            .col_expr(hosting::Column::Operation, Expr::value(operation))
            .col_expr(hosting::Column::LeaseOwner, Expr::value(Option::<String>::None))
            .col_expr(hosting::Column::LeaseUntil, Expr::value(Option::<i64>::None))
            .filter(hosting::Column::Id.eq(id))
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// Lets go of a look without changing the hosting.
    pub async fn release(&self, lease: &Lease) -> Result<()> {
        let res = clear_lease(lease.id, &lease.token).exec(self.db()).await;
        self.given_back(lease, res.map(|r| r.rows_affected))
    }

    /// The lease is given back by a write that touched `rows` (one, or it was lost).
    pub(super) fn given_back(&self, lease: &Lease, rows: std::result::Result<u64, sea_orm::DbErr>) -> Result<()> {
        lease.released.store(true, Ordering::Relaxed);
        match rows? {
            1 => Ok(()),
            _ => Err(Error::LeaseLost { hosting_id: lease.id }),
        }
    }

    async fn renew(&self, id: i32, token: &str) -> Result<bool> {
        let now = now_ms();
        let res = hosting::Entity::update_many()
            .col_expr(hosting::Column::LeaseUntil, Expr::value(now + LEASE_TTL.as_millis() as i64))
            .filter(hosting::Column::Id.eq(id))
            .filter(hosting::Column::LeaseOwner.eq(token))
            .exec(self.db())
            .await?;
        Ok(res.rows_affected == 1)
    }
}

/// The right to change one hosting, held while its work runs: renewed in the background, and
/// given back by [`Store::finish`], [`Store::release`] or [`Store::delete`]. Dropped without
/// that (an error path, a panic), it is let go, so reconciliation can settle the hosting.
pub struct Lease {
    store: Store,
    pub(super) id: i32,
    pub(super) token: String,
    pub(super) released: AtomicBool,
    /// Set by the renewer when the lease is gone (taken over, or not renewed within its TTL):
    /// the work under it must stop, and must not undo anything (the new holder owns that).
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl Lease {
    fn new(store: Store, id: i32, token: String) -> Self {
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = {
            let (store, token, lost) = (store.clone(), token.clone(), lost.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(RENEW_EVERY);
                tick.tick().await;
                let mut renewed = tokio::time::Instant::now();
                loop {
                    tick.tick().await;
                    match store.renew(id, &token).await {
                        Ok(true) => renewed = tokio::time::Instant::now(),
                        Ok(false) => {
                            // Given back (the work is done) or taken over.
                            lost.store(true, Ordering::SeqCst);
                            break;
                        }
                        Err(err) => {
                            tracing::warn!(hosting_id = id, %err, "could not renew a hosting lease");
                            if renewed.elapsed() >= LEASE_TTL {
                                lost.store(true, Ordering::SeqCst);
                                break;
                            }
                        }
                    }
                }
            })
        };
        Self { store, id, token, released: AtomicBool::new(false), lost, renewer }
    }

    pub fn hosting_id(&self) -> i32 {
        self.id
    }

    /// The lease may have passed to someone else: stop, and leave the cleaning to them.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("hosting_id", &self.id).field("token", &self.token).finish()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
        if self.released.load(Ordering::Relaxed) {
            return;
        }
        let (store, id, token) = (self.store.clone(), self.id, std::mem::take(&mut self.token));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = clear_lease(id, &token).exec(store.db()).await;
            });
        }
    }
}

/// `UPDATE` that gives hosting `id`'s lease back if `token` still holds it.
fn clear_lease(id: i32, token: &str) -> sea_orm::UpdateMany<hosting::Entity> {
    hosting::Entity::update_many()
        .col_expr(hosting::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(hosting::Column::LeaseUntil, Expr::value(Option::<i64>::None))
        .filter(hosting::Column::Id.eq(id))
        .filter(hosting::Column::LeaseOwner.eq(token))
}
