//! The only code that reads or writes tables: one file per resource.
pub mod activity;
pub mod sessions;
pub mod ssh_keys;
pub mod tokens;
pub mod users;
