//! What happens to a hosting, one operation at a time (the store's lease): free functions over
//! the node's [`Cx`] and the hosting's lease or id, which call down only (the saga, the store,
//! the VM, nginx, the events). The façade picks the node and calls one of them.
//!
//! - `create` (a user's request, placed on a node) and `provision` (running its saga);
//! - `act` (start/stop/power off/restart/sleep/wake/delete as they are asked for), over
//!   `start_stop`, `sleep`, `wake` and `delete`;
//! - `visit`: above sleep and wake: a visit (HTTP, SSH) wakes a site, and a wake that must
//!   first put another site to sleep calls both from there;
//! - `snapshots`, `console`, `always_on`, `domains` (custom domains and the HSTS switch).
//!
//! [`Cx`]: super::cx::Cx
use std::time::Duration;

use super::cx::Cx;
use crate::store::{Lease, Refusal};
use vmw_types::Operation;
use crate::{Error, Result};

pub(crate) mod act;
pub(crate) mod always_on;
pub(crate) mod backups;
pub mod console;
pub(crate) mod create;
pub(crate) mod delete;
pub(crate) mod domain_checks;
pub(crate) mod domains;
pub(crate) mod provision;
pub(crate) mod sleep;
pub mod snapshots;
pub(crate) mod start_stop;
pub(crate) mod visit;
pub(crate) mod wake;

/// How long an operation waits for a reconciliation look at the hosting to end.
pub(crate) const LOOK_PATIENCE: Duration = Duration::from_secs(5);

/// Takes the hosting's lease for `op`, waiting out a reconciliation look for a moment;
/// refuses at once when another operation runs or the state does not allow it.
pub(crate) async fn begin(cx: &Cx, id: i32, op: Operation) -> Result<Lease> {
    let deadline = tokio::time::Instant::now() + LOOK_PATIENCE;
    loop {
        match cx.store.begin(id, op).await? {
            Ok((_, lease)) => return Ok(lease),
            Err(r) => refused(op, r, deadline)?,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The error for an operation that could not begin; Ok when only a reconciliation look holds
/// the hosting and `deadline` has not passed (the caller tries again in a moment).
pub(crate) fn refused(op: Operation, r: Refusal, deadline: tokio::time::Instant) -> Result<()> {
    match r {
        Refusal::Gone => Err(Error::NotFound("hosting")),
        Refusal::Busy(now) => {
            let running = now.operation.map(|o| o.as_str()).unwrap_or("an operation");
            Err(Error::Busy(format!("'{}' is busy: {running} is in progress; try again when it finishes", now.slug)))
        }
        Refusal::WrongState(now) => Err(Error::conflict(Some("state"), format!("cannot {op} '{}' while it is {}", now.slug, now.state))),
        Refusal::Looked(now) if tokio::time::Instant::now() >= deadline => {
            Err(Error::Busy(format!("'{}' is being checked; try again in a moment", now.slug)))
        }
        Refusal::Looked(_) => Ok(()),
    }
}
