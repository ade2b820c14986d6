//! Helpers shared by the test binaries of `service` and `server` (a dev-dependency only).
//!
//! - [`TestDb`]: a migrated database of the test's own (SQLite file, or a PostgreSQL database
//!   when TEST_DATABASE_URL is set, dropped afterwards); [`EmptyDb`] when the application under
//!   test connects and migrates itself.
//! - [`fake_guest_image`]: a base image and kernel files for libvirt's test driver.
//! - [`PortWindow`]: a port range no other test on this machine holds at the same time.
//! - [`free_port`]: a loopback port that was free a moment ago.
//! - [`init_tracing`]: logs from the code under test when TEST_LOG is set.
//! - [`http`]: clients that follow no redirects, and the REST API's JSON error shape.
//!
//! It holds no `service` or `server` types, so both can depend on it without a cycle.
mod db;
pub mod http;
mod image;
mod logs;
mod ports;

pub use db::{EmptyDb, TestDb, with_database};
pub use image::fake_guest_image;
pub use logs::init_tracing;
pub use ports::{PortWindow, free_port};
