//! Attempt limits (logins, sign-ups, token creation): attempts per key in a sliding window.
//! In memory: one app instance today (several instances would move this to the database).
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
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

    /// Takes a slot for an attempt now, atomically with the check: None when one was taken
    /// (the attempt counts until [`Limiter::release`]), else the seconds until one is free.
    /// So N attempts at once count as N, not as however many were in flight at the check.
    pub fn try_reserve(&self, key: &str) -> Option<u64> {
        let mut map = self.hits.lock().unwrap();
        let now = Instant::now();
        Self::bound(&mut map, self.window, now);
        let q = map.entry(key.to_owned()).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            q.pop_front();
        }
        if q.len() >= self.max {
            let oldest = *q.front().unwrap();
            return Some((self.window - now.duration_since(oldest)).as_secs().max(1));
        }
        q.push_back(now);
        None
    }

    /// Gives back the slot of the latest attempt (it succeeded, or did not count).
    pub fn release(&self, key: &str) {
        let mut map = self.hits.lock().unwrap();
        if let Some(q) = map.get_mut(key) {
            q.pop_back();
            if q.is_empty() {
                map.remove(key);
            }
        }
    }

    fn bound(map: &mut HashMap<String, VecDeque<Instant>>, window: Duration, now: Instant) {
        if map.len() > 100_000 {
            // Bounded memory under a flood of distinct keys: drop the stale ones.
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
    }

    pub fn clear(&self, key: &str) {
        self.hits.lock().unwrap().remove(key);
    }
}

/// Client addresses that have logged in to an account before (in memory, like the counters):
/// they keep an allowance of their own, so failures from elsewhere cannot lock the owner out.
#[derive(Default)]
pub struct KnownClients {
    seen: Mutex<HashMap<i32, VecDeque<String>>>,
}

/// Addresses remembered per account (the most recent ones).
const KNOWN_PER_ACCOUNT: usize = 16;

impl KnownClients {
    pub fn new() -> Self {
        Self { seen: Mutex::new(HashMap::new()) }
    }

    pub fn contains(&self, user_id: i32, client: &str) -> bool {
        self.seen.lock().unwrap().get(&user_id).is_some_and(|q| q.iter().any(|c| c == client))
    }

    pub fn remember(&self, user_id: i32, client: &str) {
        let mut map = self.seen.lock().unwrap();
        if map.len() > 100_000 {
            map.clear();
        }
        let q = map.entry(user_id).or_default();
        q.retain(|c| c != client);
        q.push_back(client.to_owned());
        while q.len() > KNOWN_PER_ACCOUNT {
            q.pop_front();
        }
    }
}

/// The key failed logins from one client are counted under. An IPv6 client usually holds a
/// whole /64, so that is what is counted; IPv4-mapped addresses count as the IPv4 address.
pub fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ip:{v4}"),
            None => {
                let s = v6.segments();
                format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures_and_clears_on_success() {
        let l = Limiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(l.try_reserve("a").is_none());
        }
        let wait = l.try_reserve("a").unwrap();
        assert!((1..=60).contains(&wait));
        assert!(l.try_reserve("b").is_none(), "other keys are unaffected");
        l.clear("a");
        assert!(l.try_reserve("a").is_none());
    }

    #[test]
    fn old_failures_leave_the_window() {
        let l = Limiter::new(1, Duration::from_millis(30));
        assert!(l.try_reserve("k").is_none());
        assert!(l.try_reserve("k").is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(l.try_reserve("k").is_none());
    }

    #[test]
    fn reservations_count_at_once_and_can_be_given_back() {
        let l = Limiter::new(2, Duration::from_secs(60));
        assert!(l.try_reserve("a").is_none());
        assert!(l.try_reserve("a").is_none());
        assert!(l.try_reserve("a").is_some(), "two slots taken, the third is refused");
        l.release("a");
        assert!(l.try_reserve("a").is_none());
    }
}
