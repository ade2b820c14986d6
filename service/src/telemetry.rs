//! Operator counters of the service layer (sleeps and wakes).
/// A site went to sleep (or failed to).
pub fn record_sleep(ok: bool) {
    tracing::debug!(ok, "sleep");
}

/// A sleeping site woke (or failed to), in `seconds`.
pub fn record_wake(ok: bool, seconds: f64) {
    tracing::debug!(ok, seconds, "wake");
}
