//! Server functions, grouped by domain. Each one: authenticate, call the service layer,
//! map the result. No SQL, no libvirt, no nginx here.
pub mod accounts;
pub mod admin;
pub mod hostings;
pub mod snapshots;
pub mod backup_restore;
pub mod backups;
pub mod backup_schedule;
pub mod domains;
pub mod tls;
