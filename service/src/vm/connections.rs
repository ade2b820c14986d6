//! The service's connections to libvirt: a few, each call on the least busy one.
//!
//! libvirtd serves at most `max_client_requests` (5 by default) calls of one client connection at
//! a time and queues the rest. A guest-agent command holds its call for as long as the guest takes
//! to answer, and a restore or save for up to seconds, so on one shared connection the spares
//! being made could hold all five while a user's start waited in that queue (libvirtd logged
//! "Client hit max requests limit 5" just before a saved spare's claim took 1.5 s instead of 0.3 s:
//! BENCHMARKS.md, Run K). Several connections (`--libvirt-connections`, 4) give several such
//! budgets; each opens at its first use and again after it died.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use virt::connect::Connect;

use super::VmError;

/// Connections to a libvirt daemon. libvirt's in-process test driver gets one: its calls never
/// queue, and a `test:///path` URI opens a new, empty driver per connection.
pub(super) struct Connections {
    uri: String,
    slots: Vec<Slot>,
}

struct Slot {
    conn: Mutex<Option<Arc<Connect>>>,
    in_flight: AtomicUsize,
}

/// One call's connection; the slot counts it as busy until this drops.
pub(super) struct Checkout<'a> {
    pub(super) conn: Arc<Connect>,
    slot: &'a Slot,
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        self.slot.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connections {
    /// `count` connections to the daemon at `uri` (at least one; one for the test driver).
    pub(super) fn new(uri: &str, count: usize) -> Self {
        let n = if uri.starts_with("test:") { 1 } else { count.max(1) };
        let slots = (0..n).map(|_| Slot { conn: Mutex::new(None), in_flight: AtomicUsize::new(0) }).collect();
        Self { uri: uri.to_owned(), slots }
    }

    /// The least busy connection (opened, or opened again, when it is not alive). Blocking.
    pub(super) fn checkout(&self) -> Result<Checkout<'_>, VmError> {
        let slot = self.least_busy();
        slot.in_flight.fetch_add(1, Ordering::AcqRel);
        let checkout = |conn| Checkout { conn, slot };
        let mut guard = slot.conn.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(conn) = guard.as_ref().filter(|c| c.is_alive().unwrap_or(false)) {
            return Ok(checkout(conn.clone()));
        }
        match Connect::open(Some(&self.uri)) {
            Ok(conn) => {
                let conn = Arc::new(conn);
                *guard = Some(conn.clone());
                Ok(checkout(conn))
            }
            Err(source) => {
                slot.in_flight.fetch_sub(1, Ordering::AcqRel);
                crate::telemetry::libvirt_error("connect");
                Err(VmError::Connect { uri: self.uri.clone(), source })
            }
        }
    }

    fn least_busy(&self) -> &Slot {
        // Ties go to the first: an idle service keeps using one connection.
        self.slots.iter().min_by_key(|s| s.in_flight.load(Ordering::Acquire)).expect("at least one slot")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_at_once_spread_over_the_connections_and_come_back() {
        let c = Connections::new("test:///default", 4);
        assert_eq!(c.slots.len(), 1, "the in-process test driver: one connection");
        assert_eq!(Connections::new("qemu:///system", 0).slots.len(), 1, "never none");
        let daemon = Connections::new("qemu:///system", 4);
        assert_eq!(daemon.slots.len(), 4);
        // Without opening anything: mark slots busy the way checkout does.
        daemon.slots[0].in_flight.store(2, Ordering::Release);
        daemon.slots[1].in_flight.store(1, Ordering::Release);
        assert!(std::ptr::eq(daemon.least_busy(), &daemon.slots[2]), "an idle connection before busy ones");
        for s in &daemon.slots[2..] {
            s.in_flight.store(3, Ordering::Release);
        }
        assert!(std::ptr::eq(daemon.least_busy(), &daemon.slots[1]), "the one with the fewest calls");
    }

    #[test]
    fn a_checkout_is_counted_until_it_is_dropped() {
        let c = Connections::new("test:///default", 4);
        let a = c.checkout().expect("the test driver opens");
        let b = c.checkout().expect("a second call on the same connection");
        assert!(Arc::ptr_eq(&a.conn, &b.conn));
        assert_eq!(c.slots[0].in_flight.load(Ordering::Acquire), 2);
        drop(a);
        drop(b);
        assert_eq!(c.slots[0].in_flight.load(Ordering::Acquire), 0);
        let broken = Connections::new("test:///no/such/file.xml", 4);
        assert!(matches!(broken.checkout(), Err(VmError::Connect { .. })));
        assert_eq!(broken.slots[0].in_flight.load(Ordering::Acquire), 0, "a failed open is not left counted");
    }
}
