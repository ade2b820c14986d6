//! Login attempt limits: failures per account and per client address in a sliding window.
//! In memory: one app instance today (several instances would move this to the database).
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Limiter {
    window: Duration,
    max: usize,
    hits: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Limiter {
    pub fn new(max: usize, window: Duration) -> Self {
        Self { window, max, hits: Mutex::new(HashMap::new()) }
    }

    /// Seconds until another attempt is allowed, or None when it is allowed now.
    pub fn blocked_for(&self, key: &str) -> Option<u64> {
        let mut map = self.hits.lock().unwrap();
        let now = Instant::now();
        let q = map.get_mut(key)?;
        while q.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            q.pop_front();
        }
        if q.len() >= self.max {
            let oldest = *q.front().unwrap();
            Some((self.window - now.duration_since(oldest)).as_secs().max(1))
        } else {
            None
        }
    }

    pub fn record_failure(&self, key: &str) {
        let mut map = self.hits.lock().unwrap();
        if map.len() > 100_000 {
            // Bounded memory under a flood of distinct keys: drop the stale ones.
            let now = Instant::now();
            let w = self.window;
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < w));
        }
        map.entry(key.to_owned()).or_default().push_back(Instant::now());
    }

    pub fn clear(&self, key: &str) {
        self.hits.lock().unwrap().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures_and_clears_on_success() {
        let l = Limiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(l.blocked_for("a").is_none());
            l.record_failure("a");
        }
        let wait = l.blocked_for("a").unwrap();
        assert!((1..=60).contains(&wait));
        assert!(l.blocked_for("b").is_none(), "other keys are unaffected");
        l.clear("a");
        assert!(l.blocked_for("a").is_none());
    }

    #[test]
    fn old_failures_leave_the_window() {
        let l = Limiter::new(1, Duration::from_millis(30));
        l.record_failure("k");
        assert!(l.blocked_for("k").is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(l.blocked_for("k").is_none());
    }
}
