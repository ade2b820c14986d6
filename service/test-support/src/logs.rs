use std::sync::Once;

/// Logs of the code under test, only when TEST_LOG is set (`TEST_LOG=1 cargo nextest run ...`);
/// RUST_LOG filters them (default `info`). Safe to call from every test: the first call wins.
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            // The test writer goes through the harness's capture, so a passing test stays quiet
            // under `cargo test` and its log is shown next to a failure.
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_test_writer().try_init();
        }
    });
}
