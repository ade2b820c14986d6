//! vm-webhoster's service layer: accounts, VMs (libvirt), the nginx proxy and the hosting
//! lifecycle. A plain library: no web framework in here. Leptos server functions and the REST
//! API both call it.
pub mod accounts;
pub mod backup;
pub mod config;
pub mod db;
pub mod dns;
pub mod domain;
pub mod domain_name;
pub mod error;
pub mod escape;
pub mod file_error;
pub mod identity;
pub mod limits;
pub mod hosting;
pub mod leader;
pub mod probe;
pub mod proxy;
pub mod state_backup;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod vm;

pub use config::{DomainType, ServiceConfig};
pub use error::{Error, Result};
