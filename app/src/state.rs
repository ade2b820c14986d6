//! What server functions and handlers share (server side only).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use service::accounts::Accounts;
use service::hosting::HostingService;
use service::ServiceConfig;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub db: service::db::DatabaseConnection,
    pub accounts: Accounts,
    /// None when the server runs without libvirt/nginx (`--no-libvirt`): accounts only.
    pub hosting: Option<HostingService>,
    pub config: Arc<ServiceConfig>,
    /// Sessions older than this since login are refused (absolute expiry), in milliseconds.
    pub session_max_age_ms: i64,
    /// Event streams and `?wait=` long polls each account holds open.
    pub held: HeldRequests,
}

/// Requests an account holds open (event streams, long polls), at most `max` at once: one
/// account cannot tie up the server's connections from many addresses.
#[derive(Clone)]
pub struct HeldRequests {
    max: usize,
    held: Arc<Mutex<HashMap<i32, usize>>>,
}

/// One held request; dropping it (the request or stream ended) frees the place.
pub struct HeldSlot {
    held: Arc<Mutex<HashMap<i32, usize>>>,
    user_id: i32,
}

impl HeldRequests {
    pub fn new(max: usize) -> Self {
        Self { max, held: Arc::default() }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// A place for one more held request of `user_id`, or None when it holds `max` already.
    pub fn try_hold(&self, user_id: i32) -> Option<HeldSlot> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(user_id).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(HeldSlot { held: self.held.clone(), user_id })
    }
}

impl Drop for HeldSlot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.user_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.user_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::HeldRequests;

    #[test]
    fn an_account_holds_at_most_max_and_a_dropped_slot_frees_its_place() {
        let h = HeldRequests::new(2);
        let a = h.try_hold(1).unwrap();
        let _b = h.try_hold(1).unwrap();
        assert!(h.try_hold(1).is_none());
        assert!(h.try_hold(2).is_some(), "another account has its own places");
        drop(a);
        assert!(h.try_hold(1).is_some());
    }
}
