//! The rest of [`HostingService`]'s public methods, by what they are about (the struct, its
//! construction and its accessors are in `hosting/mod.rs`). Each authorises, picks the node
//! and calls one function of `lifecycle`, `background` or `cluster`.
//!
//! [`HostingService`]: super::HostingService
mod background;
mod backup_restore;
mod backup_schedules;
mod certs;
mod domains;
mod hostings;
mod nodes;
mod sites;
