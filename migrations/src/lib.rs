//! Database schema for vm-webhoster, applied at start-up (`Migrator::up`).
//! One schema serves SQLite and PostgreSQL: timestamps are unix milliseconds (BIGINT),
//! enums are stored as their snake_case names (sea-orm string-backed `ActiveEnum`s from vmw-types).
pub use sea_orm_migration::prelude::*;

mod m20261124_000001_initial;
mod m20261201_000001_typed_core;
mod m20261202_000001_account_admin;
mod m20261202_000002_sleep;
mod m20261202_000010_snapshots;
mod m20261202_000020_nodes;
mod m20261207_000030_node_identity;
mod m20261207_000040_domains;
mod m20261207_000041_acme_challenges;
mod m20261207_000042_backups;
mod m20261207_000043_login_sessions;
mod m20261208_000050_backup_schedules;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_initial::Migration),
            Box::new(m20261201_000001_typed_core::Migration),
            Box::new(m20261202_000001_account_admin::Migration),
            Box::new(m20261202_000002_sleep::Migration),
            Box::new(m20261202_000010_snapshots::Migration),
            Box::new(m20261202_000020_nodes::Migration),
            Box::new(m20261207_000030_node_identity::Migration),
            Box::new(m20261207_000040_domains::Migration),
            Box::new(m20261207_000041_acme_challenges::Migration),
            Box::new(m20261207_000042_backups::Migration),
            Box::new(m20261207_000043_login_sessions::Migration),
            Box::new(m20261208_000050_backup_schedules::Migration),
        ]
    }
}
