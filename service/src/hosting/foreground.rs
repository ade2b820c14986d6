//! Users first. Work a user waits for (a create, a start, a wake) is counted while it runs, and
//! a warm spare being made waits before each of its steps until none is running. The spares' CPU
//! weight (`--spare-cpu-shares`) only softens a step already under way; on two cores, a spare's
//! restore or guest-agent work beside a user's restore still cost that user seconds (BENCHMARKS.md,
//! Run H: a saved spare's `start_vm` took 3.0 s while the paused tier refilled). A spare waits at
//! most [`MAX_WAIT`] per step, so a steady stream of creates slows the pool but cannot stop it.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// The longest a spare's step waits for users' work to end.
pub(super) const MAX_WAIT: Duration = Duration::from_secs(20);

/// How many user-facing operations are running (cheap to clone: one shared counter).
#[derive(Clone)]
pub(crate) struct Foreground {
    running: Arc<watch::Sender<usize>>,
}

/// Counts one user-facing operation until it is dropped.
pub(crate) struct ForegroundWork {
    running: Arc<watch::Sender<usize>>,
}

impl Foreground {
    pub(super) fn new() -> Self {
        Self { running: Arc::new(watch::Sender::new(0)) }
    }

    /// Marks a user-facing operation as running until the returned guard drops.
    pub(super) fn enter(&self) -> ForegroundWork {
        self.running.send_modify(|n| *n += 1);
        ForegroundWork { running: self.running.clone() }
    }

    /// Waits until no user-facing operation runs, at most `max`. Returns how long it waited
    /// (zero when none was running).
    pub(super) async fn wait_idle(&self, max: Duration) -> Duration {
        let t = tokio::time::Instant::now();
        let mut rx = self.running.subscribe();
        // A timeout only means the spare goes ahead; the sender lives as long as `self`.
        let _ = tokio::time::timeout(max, rx.wait_for(|n| *n == 0)).await;
        t.elapsed()
    }
}

impl Drop for ForegroundWork {
    fn drop(&mut self) {
        self.running.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_spare_step_waits_until_the_users_work_ends() {
        let fg = Foreground::new();
        assert!(fg.wait_idle(MAX_WAIT).await < Duration::from_millis(50), "nothing runs: no wait");
        let work = fg.enter();
        let waiter = tokio::spawn({
            let fg = fg.clone();
            async move { fg.wait_idle(MAX_WAIT).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiter.is_finished(), "the spare waits while a user's create runs");
        drop(work);
        let waited = tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("the spare goes on").unwrap();
        assert!(waited >= Duration::from_millis(300) && waited < MAX_WAIT, "waited {waited:?}");
    }

    #[tokio::test]
    async fn a_spare_step_goes_ahead_after_the_longest_wait() {
        let fg = Foreground::new();
        let _a = fg.enter();
        let b = fg.enter();
        drop(b);
        let max = Duration::from_millis(400);
        let waited = fg.wait_idle(max).await;
        assert!(waited >= max && waited < max * 4, "one operation still runs: the spare waits the maximum ({waited:?}), then goes on");
    }
}
