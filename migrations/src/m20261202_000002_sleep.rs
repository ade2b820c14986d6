//! Idle sites sleep:
//! - `always_on`: the owner's "never put this site to sleep";
//! - `last_active_at`: when a visit (HTTP through nginx, or an open SSH session) was last seen;
//!   a running site idle for longer than the idle timeout goes to sleep.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        m.alter_table(
            Table::alter()
                .table(Hostings::Table)
                .add_column(ColumnDef::new(Hostings::AlwaysOn).boolean().not_null().default(false))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter().table(Hostings::Table).add_column(ColumnDef::new(Hostings::LastActiveAt).big_integer().null()).to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table(Hostings::Table).drop_column(Hostings::LastActiveAt).to_owned()).await?;
        m.alter_table(Table::alter().table(Hostings::Table).drop_column(Hostings::AlwaysOn).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Hostings {
    Table,
    AlwaysOn,
    LastActiveAt,
}
