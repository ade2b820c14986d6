//! Who holds each hosting's interactive console: one writer at a time, as a generation number
//! (see `lifecycle::console`). Shared by every node's service.
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

/// The current holder of each hosting's console, as a generation number.
#[derive(Default)]
pub(crate) struct ConsoleHub {
    holders: Mutex<HashMap<i32, watch::Sender<u64>>>,
    next: AtomicU64,
}

impl ConsoleHub {
    /// Makes a new holder of hosting `id`'s console: its generation, and a receiver that
    /// changes when someone else takes over.
    pub(crate) fn take(&self, id: i32) -> (u64, watch::Receiver<u64>) {
        let generation = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut holders = self.holders.lock().unwrap_or_else(|e| e.into_inner());
        let tx = holders.entry(id).or_insert_with(|| watch::channel(0).0);
        tx.send_replace(generation);
        (generation, tx.subscribe())
    }

    /// Forgets hosting `id`'s entry if `generation` still holds it (the last session ended).
    pub(crate) fn release(&self, id: i32, generation: u64) {
        let mut holders = self.holders.lock().unwrap_or_else(|e| e.into_inner());
        if holders.get(&id).is_some_and(|tx| *tx.borrow() == generation) {
            holders.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_holder_takes_the_console_over_and_only_the_last_one_releases_it() {
        let hub = ConsoleHub::default();
        let (first, rx1) = hub.take(7);
        let (second, rx2) = hub.take(7);
        assert_ne!(first, second);
        assert_eq!(*rx1.borrow(), second, "the first holder sees it was taken over");
        assert_eq!(*rx2.borrow(), second);
        hub.release(7, first);
        assert!(hub.holders.lock().unwrap().contains_key(&7), "a taken-over session does not release the new holder");
        hub.release(7, second);
        assert!(!hub.holders.lock().unwrap().contains_key(&7));
        let (_, other) = hub.take(8);
        assert_ne!(*other.borrow(), 0);
    }
}
