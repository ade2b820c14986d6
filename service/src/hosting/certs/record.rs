//! What is known of each certificate, for the admin page and the scraper: its row in
//! `certificates` (names, source, validity, failures in a row, the last error, the next try)
//! and its metrics: `vmw_cert_expiry_seconds{cert}` (seconds left) and
//! `vmw_cert_renewal_failures_total{cert}`.
use time::OffsetDateTime;
use vmw_types::CertSource;

use crate::hosting::cx::Cx;
use crate::store::CertificateRow;
use crate::tls::IssuedCert;

/// A certificate is in trouble once it could not be renewed this close to its expiry.
pub(crate) const WARN_BEFORE: time::Duration = time::Duration::days(14);

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn expiry_metric(label: &str, not_after: OffsetDateTime) {
    let left = (not_after - OffsetDateTime::now_utc()).as_seconds_f64();
    metrics::gauge!("vmw_cert_expiry_seconds", "cert" => label.to_owned()).set(left);
}

/// The certificate `label` is current: its row says so, its failures are reset.
pub(crate) async fn issued(cx: &Cx, label: &str, names: &[String], source: CertSource, cert: &IssuedCert, next_try: OffsetDateTime) {
    expiry_metric(label, cert.not_after);
    let row = CertificateRow {
        label: label.to_owned(),
        names: serde_json::to_string(names).unwrap_or_default(),
        source,
        not_before: Some(ms(cert.not_before)),
        not_after: Some(ms(cert.not_after)),
        failures: 0,
        last_error: None,
        next_try_at: Some(ms(next_try)),
        updated_at: crate::db::now_ms(),
    };
    if let Err(err) = cx.store.upsert_certificate(row).await {
        tracing::warn!(label, %err, "could not record a certificate");
    }
}

/// Issuing or renewing `label` failed (`failures` in a row); the next try is at `next_try`.
/// Returns whether the certificate in use (if any) expires within [`WARN_BEFORE`].
pub(crate) async fn failed(
    cx: &Cx,
    label: &str,
    names: &[String],
    source: CertSource,
    current: Option<&IssuedCert>,
    failures: i32,
    error: &str,
    next_try: OffsetDateTime,
) -> bool {
    metrics::counter!("vmw_cert_renewal_failures_total", "cert" => label.to_owned()).increment(1);
    let row = CertificateRow {
        label: label.to_owned(),
        names: serde_json::to_string(names).unwrap_or_default(),
        source,
        not_before: current.map(|c| ms(c.not_before)),
        not_after: current.map(|c| ms(c.not_after)),
        failures,
        last_error: Some(error.to_owned()),
        next_try_at: Some(ms(next_try)),
        updated_at: crate::db::now_ms(),
    };
    if let Err(err) = cx.store.upsert_certificate(row).await {
        tracing::warn!(label, %err, "could not record a certificate's failure");
    }
    let soon = current.is_some_and(|c| c.not_after - OffsetDateTime::now_utc() < WARN_BEFORE);
    if soon {
        tracing::error!(label, error, "a certificate could not be renewed and expires within 14 days");
    } else {
        tracing::warn!(label, error, failures, "a certificate could not be issued or renewed; trying again later");
    }
    soon
}

/// The failures in a row recorded for `label` and when it may be tried again (ms).
pub(crate) async fn backoff_of(cx: &Cx, label: &str) -> (i32, Option<i64>) {
    match cx.store.certificate(label).await {
        Ok(Some(r)) if r.failures > 0 => (r.failures, r.next_try_at),
        _ => (0, None),
    }
}

/// How long to wait before the next try after `failures` failures in a row, the last being
/// `error`: the CA's own `Retry-After` when rate limited; at least 15 minutes after a failed
/// validation (Let's Encrypt allows 5 failed validations per name an hour); else
/// `validity::backoff` (1 min doubling to 6 h).
pub(crate) fn wait_after(error: Option<&crate::tls::AcmeError>, failures: u32) -> std::time::Duration {
    use crate::tls::AcmeError;
    let base = crate::tls::validity::backoff(failures);
    match error {
        Some(AcmeError::RateLimited { retry_after: Some(d), .. }) => (*d).max(base),
        Some(AcmeError::Validation { .. }) => base.max(std::time::Duration::from_secs(15 * 60)),
        _ => base,
    }
}

pub(crate) fn at_ms(t: OffsetDateTime) -> i64 {
    ms(t)
}

#[cfg(test)]
mod tests {
    use super::wait_after;
    use crate::tls::AcmeError;
    use std::time::Duration;

    #[test]
    fn failed_validations_wait_a_quarter_hour_and_rate_limits_what_the_ca_says() {
        let validation = AcmeError::Validation { name: "a.test".into(), detail: "no".into() };
        for n in 1..4 {
            // At most four failed validations an hour: under Let's Encrypt's five.
            assert!(wait_after(Some(&validation), n) >= Duration::from_secs(900));
        }
        let limited = AcmeError::RateLimited { retry_after: Some(Duration::from_secs(7200)), detail: "slow down".into() };
        assert!(wait_after(Some(&limited), 1) >= Duration::from_secs(7200));
        let down = AcmeError::Unreachable { detail: "down".into(), source: None };
        assert!(wait_after(Some(&down), 1) < Duration::from_secs(120), "an unreachable CA is asked again soon");
        assert!(wait_after(None, 1) < Duration::from_secs(120));
    }
}
