//! VMs restored for a visitor whose readiness probe has not answered yet.
//!
//! A guest restored under TCG takes 0.1-0.2 s to answer its first request (its code is
//! translated again), and the probe's answer would come before the held visitor's. So once a
//! restore has returned (the guest runs, its HTTP forward bound since QEMU started), the held
//! requests go to the VM at once, side by side with the probe. A guest that then does not
//! answer fails its wake as before; its visitors get the waker's 502.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::sync::watch;

pub(crate) struct Restored {
    at: Mutex<HashMap<i32, SocketAddr>>,
    /// Bumped at every change: held visits wait on it.
    changed: watch::Sender<u64>,
}

impl Restored {
    pub fn new() -> Self {
        Self { at: Mutex::new(HashMap::new()), changed: watch::channel(0).0 }
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn publish(&self, id: i32, addr: SocketAddr) {
        self.at.lock().unwrap_or_else(|p| p.into_inner()).insert(id, addr);
        self.bump();
    }

    pub fn clear(&self, id: i32) {
        if self.at.lock().unwrap_or_else(|p| p.into_inner()).remove(&id).is_some() {
            self.bump();
        }
    }

    pub fn get(&self, id: i32) -> Option<SocketAddr> {
        self.at.lock().unwrap_or_else(|p| p.into_inner()).get(&id).copied()
    }

    /// Subscribe before [`Self::get`]: a publish in between then wakes the waiter.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_subscribed_first_sees_a_later_publish() {
        let r = Restored::new();
        let mut rx = r.subscribe();
        assert_eq!(r.get(1), None);
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        r.publish(1, addr);
        tokio::time::timeout(std::time::Duration::from_secs(1), rx.changed()).await.unwrap().unwrap();
        assert_eq!(r.get(1), Some(addr));
        assert_eq!(r.get(2), None, "per site");
        r.clear(1);
        assert_eq!(r.get(1), None);
    }
}
