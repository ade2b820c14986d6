//! How many distinct sleeping sites one client address may wake per minute.
//!
//! A wake restores a VM from disk (and may put another site to sleep to make room): an
//! anonymous client cycling through many sleeping sites would keep the node in save/restore
//! loops. So each client address may wake at most `wakes_per_client_per_minute` distinct sites
//! in any 60 s; waking one of those again (its visitors' next requests, a reload) is free. Over
//! the limit the visit is refused: the waker answers 429, the SSH waker closes the connection.
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Past this many addresses tracked, the ones with no wake in the window are forgotten.
const PRUNE_OVER: usize = 4096;

pub(crate) struct WakeLimit {
    per_minute: usize,
    woken: Mutex<HashMap<IpAddr, VecDeque<(Instant, i32)>>>,
}

impl WakeLimit {
    /// At most `per_minute` distinct sites per client address; 0: no limit.
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute: per_minute as usize, woken: Mutex::new(HashMap::new()) }
    }

    /// Whether `client` may wake site `id` now (and, if so, counts it).
    pub fn admit(&self, client: IpAddr, id: i32) -> bool {
        self.admit_at(client, id, Instant::now())
    }

    fn admit_at(&self, client: IpAddr, id: i32, now: Instant) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let mut map = self.woken.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > PRUNE_OVER {
            map.retain(|_, q| q.back().is_some_and(|(t, _)| now.duration_since(*t) < WINDOW));
        }
        let q = map.entry(key(client)).or_default();
        while q.front().is_some_and(|(t, _)| now.duration_since(*t) >= WINDOW) {
            q.pop_front();
        }
        if let Some(at) = q.iter().position(|(_, site)| *site == id) {
            // The same site again: free, and its minute starts over.
            q.remove(at);
            q.push_back((now, id));
            return true;
        }
        if q.len() >= self.per_minute {
            return false;
        }
        q.push_back((now, id));
        true
    }
}

/// One client: an IPv4 address, or an IPv6 /64 (what one end site gets: any address in it is
/// theirs to use).
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_sites_per_address_per_minute() {
        let l = WakeLimit::new(3);
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.5".parse().unwrap(), "127.0.0.6".parse().unwrap());
        let t = Instant::now();
        for id in 1..=3 {
            assert!(l.admit_at(a, id, t));
        }
        assert!(!l.admit_at(a, 4, t), "a fourth distinct site");
        assert!(l.admit_at(a, 2, t), "one already woken: free");
        assert!(l.admit_at(b, 4, t), "another address has its own count");
        assert!(!l.admit_at(a, 4, t + Duration::from_secs(59)));
        assert!(l.admit_at(a, 4, t + Duration::from_secs(61)), "a minute later");
        assert!(WakeLimit::new(0).admit_at(a, 9, t), "0: no limit");
        let one = WakeLimit::new(1);
        assert!(one.admit_at("2001:db8::1".parse().unwrap(), 1, t));
        assert!(!one.admit_at("2001:db8::2:3".parse().unwrap(), 2, t), "one /64 is one client");
        assert!(one.admit_at("2001:db8:0:1::1".parse().unwrap(), 2, t));
    }
}
