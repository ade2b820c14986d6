//! Calls into a guest that its tenant can trigger (the console password, the console's size):
//! bounded, so that a tenant whose guest agent never answers (stopped, or `chpasswd` made to
//! hang inside the VM) holds nothing of anyone else's. Each such call
//! - waits at most `guest_call_timeout_secs` in all, its turn included, then answers
//!   [`VmError::GuestTimeout`] (libvirt gets what is left as the agent command's own timeout);
//! - runs one at a time per site: a per-domain lock, held until libvirt returns, also after the
//!   caller stopped waiting, so piling calls on one site never piles them in libvirt;
//! - takes its owner's one share (a tenant with several stuck sites still holds one slot, never
//!   all of them), then one of `guest_calls_max` slots, and runs on a libvirt connection of the guest calls'
//!   (`VmManager`'s `guest_conns`, one per slot): libvirtd serves five calls of a connection at a time, so
//!   the other connections, which carry every site's starts, stops, saves and wakes, never
//!   queue behind a stuck agent, and libvirtd's workers hold at most that many of them.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use virt::domain::Domain;
use virt::error::ErrorNumber;

use super::{VmError, VmManager, VmState, map_state};

pub(super) struct GuestCalls {
    timeout: Duration,
    /// Each domain's turn; an entry lives while a call holds or waits for it.
    sites: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    /// Each owner's share of the slots (`PER_OWNER`); an entry lives while a call holds it.
    owners: Mutex<HashMap<i32, Weak<Semaphore>>>,
    slots: Arc<Semaphore>,
}

/// Slots one owner's calls may hold at once, over all their sites.
const PER_OWNER: usize = 1;

/// Leave to call into one guest, until it drops (move it into the blocking call).
pub(super) struct GuestPass {
    _turn: OwnedMutexGuard<()>,
    _share: OwnedSemaphorePermit,
    _slot: OwnedSemaphorePermit,
    deadline: Instant,
}

impl GuestPass {
    /// When the caller stops waiting.
    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whole seconds left until the deadline (at least 1): the agent command's timeout.
    pub(super) fn agent_timeout_secs(&self) -> i32 {
        let left = self.deadline.saturating_duration_since(Instant::now());
        (left.as_secs_f64().ceil() as i32).max(1)
    }
}

impl GuestCalls {
    /// Calls of `timeout` each, at most `max` at once (at least 1).
    pub(super) fn new(timeout: Duration, max: usize) -> Self {
        Self { timeout, sites: Mutex::default(), owners: Mutex::default(), slots: Arc::new(Semaphore::new(max.max(1))) }
    }

    fn share_of(&self, owner: i32) -> Arc<Semaphore> {
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(share) = owners.get(&owner).and_then(Weak::upgrade) {
            return share;
        }
        owners.retain(|_, w| w.strong_count() > 0);
        let share = Arc::new(Semaphore::new(PER_OWNER));
        owners.insert(owner, Arc::downgrade(&share));
        share
    }

    fn turn_of(&self, domain: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(turn) = sites.get(domain).and_then(Weak::upgrade) {
            return turn;
        }
        sites.retain(|_, w| w.strong_count() > 0);
        let turn = Arc::new(tokio::sync::Mutex::new(()));
        sites.insert(domain.to_owned(), Arc::downgrade(&turn));
        turn
    }

    /// Waits for `domain`'s turn, then for its `owner`'s share, then for a slot, all within
    /// the timeout.
    pub(super) async fn enter(&self, domain: &str, owner: i32, command: &'static str) -> Result<GuestPass, VmError> {
        let deadline = Instant::now() + self.timeout;
        let timed_out = || self.timed_out(domain, command);
        let turn = tokio::time::timeout_at(deadline, self.turn_of(domain).lock_owned()).await.map_err(|_| timed_out())?;
        let share = tokio::time::timeout_at(deadline, self.share_of(owner).acquire_owned())
            .await
            .map_err(|_| timed_out())?
            .map_err(|_| VmError::Invalid("the guest call shares are closed".into()))?;
        let slot = tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| timed_out())?
            .map_err(|_| VmError::Invalid("the guest call slots are closed".into()))?;
        Ok(GuestPass { _turn: turn, _share: share, _slot: slot, deadline })
    }

    /// `domain`'s turn alone, for the service's own calls into a guest (clock, trim,
    /// hostname: not the tenant's to repeat, so no slot), waited for up to `wait`. None: a
    /// tenant's call still holds it.
    pub(super) async fn turn(&self, domain: &str, wait: Duration) -> Option<OwnedMutexGuard<()>> {
        tokio::time::timeout(wait, self.turn_of(domain).lock_owned()).await.ok()
    }

    pub(super) fn timed_out(&self, domain: &str, command: &'static str) -> VmError {
        VmError::GuestTimeout { domain: domain.to_owned(), command, waited_secs: self.timeout.as_secs() }
    }

    /// Calls holding or waiting for a domain's turn (for tests).
    #[cfg(test)]
    fn sites(&self) -> usize {
        self.sites.lock().unwrap().values().filter(|w| w.strong_count() > 0).count()
    }
}

impl VmManager {
    /// Runs `f` as a call into hosting `hosting_id`'s running guest that its tenant can trigger
    /// (`guest_calls`): after the site's previous one, in one of the few guest-call slots, on
    /// the guest calls' connection; `f` gets the domain, its name and the seconds left (the
    /// agent command's timeout). Answers [`VmError::GuestTimeout`] once the time is up, also
    /// while libvirt still waits for the guest (the call keeps its turn and slot until then).
    pub(super) async fn guest_call<T: Send + 'static>(
        &self,
        hosting_id: i32,
        owner: i32,
        command: &'static str,
        f: impl FnOnce(&Domain, &str, i32) -> Result<T, VmError> + Send + 'static,
    ) -> Result<T, VmError> {
        /// libvirt returns at the agent's timeout; a little later the caller stops waiting.
        const GRACE: Duration = Duration::from_millis(500);
        let name = self.domain_name(hosting_id);
        let pass = self.inner.guest.enter(&name, owner, command).await?;
        let deadline = pass.deadline();
        let inner = self.inner.clone();
        let domain = name.clone();
        let call = tokio::task::spawn_blocking(move || {
            let pass = pass; // the site's turn and the slot, until libvirt returns
            let checkout = inner.guest_conns.as_ref().unwrap_or(&inner.conns).checkout()?;
            let d = Self::existing(&checkout.conn, &domain)?;
            match map_state(&d, &domain)? {
                VmState::Running => {}
                other => return Err(VmError::NotRunning(other)),
            }
            let r = f(&d, &domain, pass.agent_timeout_secs());
            drop(pass);
            r
        });
        let r = match tokio::time::timeout_at(deadline + GRACE, call).await {
            Ok(joined) => joined?,
            Err(_) => return Err(self.inner.guest.timed_out(&name, command)),
        };
        r.map_err(|e| if is_agent_timeout(&e) { self.inner.guest.timed_out(&name, command) } else { e })
    }

}

/// Whether libvirt gave up waiting for the guest agent (it did not answer within the call's
/// timeout, or another call on the domain held the agent that long).
fn is_agent_timeout(e: &VmError) -> bool {
    let code = match e {
        VmError::Agent { source, .. } | VmError::Libvirt { source, .. } => source.code(),
        VmError::GuestFile { source, .. } | VmError::AgentUnresponsive { source, .. } => return is_agent_timeout(source),
        VmError::GuestCommandTimeout { .. } => return true,
        _ => return false,
    };
    code == ErrorNumber::AgentUnresponsive.into() || code == ErrorNumber::AgentCommandTimeout.into() || code == ErrorNumber::OperationTimeout.into()
}


#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_millis(400);

    fn about(took: Duration, want: Duration) -> bool {
        took >= want && took < want + Duration::from_millis(300)
    }

    #[tokio::test]
    async fn one_call_per_site_at_a_time_and_a_waiting_one_gives_up_at_the_deadline() {
        let calls = Arc::new(GuestCalls::new(T, 3));
        let a = calls.enter("vmw-1", 1, "x").await.expect("a free site");
        // A second call on the same site waits for the first, and gives up at its deadline.
        let t = Instant::now();
        let second = calls.enter("vmw-1", 1, "x").await;
        assert!(matches!(second, Err(VmError::GuestTimeout { .. })), "{:?}", second.err());
        assert!(about(t.elapsed(), T), "{:?}", t.elapsed());
        // Another site goes at once meanwhile.
        let t = Instant::now();
        let b = calls.enter("vmw-2", 2, "x").await.expect("another site is not held up");
        assert!(t.elapsed() < Duration::from_millis(50));
        assert!(a.agent_timeout_secs() >= 1, "never 0 (libvirt's 'do not wait')");
        // The site's turn passes on when the call returns.
        let c = calls.clone();
        let waiter = tokio::spawn(async move { c.enter("vmw-1", 1, "x").await.is_ok() });
        tokio::time::sleep(T / 4).await;
        drop(a);
        assert!(waiter.await.unwrap(), "the next call on the site runs once the previous one returned");
        drop(b);
        assert_eq!(calls.sites(), 0, "no entry is kept for sites without calls");
    }

    #[tokio::test]
    async fn stuck_sites_take_at_most_the_slots() {
        let calls = GuestCalls::new(T, 2);
        let a = calls.enter("vmw-1", 1, "x").await.unwrap();
        let _b = calls.enter("vmw-2", 2, "x").await.unwrap();
        let t = Instant::now();
        assert!(matches!(calls.enter("vmw-3", 3, "x").await, Err(VmError::GuestTimeout { .. })), "no third call in flight");
        assert!(about(t.elapsed(), T), "{:?}", t.elapsed());
        drop(a);
        assert!(calls.enter("vmw-3", 3, "x").await.is_ok(), "a slot comes back when its call returns");
    }

    /// A tenant whose agents hang on all their sites holds one slot; others still get theirs.
    #[tokio::test]
    async fn one_owners_stuck_sites_hold_one_slot_only() {
        let calls = GuestCalls::new(T, 3);
        let _a1 = calls.enter("vmw-1", 7, "x").await.unwrap();
        let t = Instant::now();
        assert!(matches!(calls.enter("vmw-2", 7, "x").await, Err(VmError::GuestTimeout { .. })), "the owner's second site waits for their share");
        assert!(about(t.elapsed(), T), "{:?}", t.elapsed());
        let t = Instant::now();
        let _b = calls.enter("vmw-4", 8, "x").await.expect("another owner is not held up");
        let _c = calls.enter("vmw-5", 9, "x").await.expect("nor a third");
        assert!(t.elapsed() < Duration::from_millis(50));
    }
}
