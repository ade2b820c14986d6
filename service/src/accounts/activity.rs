//! An account's activity: logins (succeeded or failed, with the client's address), API tokens
//! made and revoked, password changes, disable and enable. Written by [`super::Accounts`] where
//! those happen; each user reads only their own, newest first. At most [`ACTIVITY_KEPT`] rows
//! per user are kept (older ones go at the next write), so failed guesses cannot grow it.
use std::net::IpAddr;

use super::{Accounts, Actor};
use crate::Result;

pub use crate::store::activity::{ACTIVITY_KEPT, newest, prune_before, record};
pub use vmw_types::{AccountEventKind, AccountEventView};

impl Accounts {
    /// Records an entry of the user's activity. A failure to record is logged, not returned:
    /// it must not turn a login or a revocation into an error.
    pub(super) async fn note(&self, user_id: i32, kind: AccountEventKind, client: Option<IpAddr>, detail: Option<String>) {
        if let Err(err) = record(&self.db, user_id, kind, client, detail).await {
            tracing::warn!(%err, user_id, %kind, "could not record account activity");
        }
    }

    /// The caller's own activity, newest first (at most `limit`, at most
    /// [`ACTIVITY_KEPT`] are kept).
    pub async fn activity(&self, actor: &Actor, limit: u64) -> Result<Vec<AccountEventView>> {
        newest(&self.db, actor.user_id, limit.clamp(1, ACTIVITY_KEPT)).await
    }

    /// Deletes activity older than `before` (the hosting events' retention job calls it).
    pub async fn prune_activity_before(&self, before: i64) -> Result<u64> {
        prune_before(&self.db, before).await
    }
}
