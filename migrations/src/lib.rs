//! Database schema for vm-webhoster, applied at start-up (`Migrator::up`).
//! One schema serves SQLite and PostgreSQL: timestamps are unix milliseconds (BIGINT),
//! enums are strings checked by the service layer.
pub use sea_orm_migration::prelude::*;

mod m20261124_000001_initial;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261124_000001_initial::Migration)]
    }
}
