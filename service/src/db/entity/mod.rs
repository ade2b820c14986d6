//! One module per table (see migrations/ for the schema).
pub mod account_event;
pub mod acme_challenge;
pub mod api_token;
pub mod backup;
pub mod backup_schedule;
pub mod certificate;
pub mod domain;
pub mod hosting;
pub mod hosting_event;
pub mod login_session;
pub mod node;
pub mod port_lease;
pub mod session;
pub mod snapshot;
pub mod ssh_key;
pub mod user;
