//! Structured logs (tracing): text or JSON, filtered by --log-level or RUST_LOG.
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
