//! More than one hypervisor (issue #14, nodes):
//! - `nodes.address`: the IP nginx reaches the node's VM forwards on (QEMU binds them there);
//!   NULL: the app's `--forward-bind` (the node of the app's own settings);
//! - `nodes.disk_gib`: the node's disk capacity (memory is `memory_mib`); NULL: from the settings;
//! - `nodes.drained`: takes no new sites (its sites keep running);
//! - `nodes.added`: added by an administrator (its URI, address and capacities live in the row),
//!   not the node of the app's own settings;
//! - `port_leases.address`: the address a forward binds; unique with the port, so two nodes that
//!   share an address never hand out the same port (NULLs, rows from before, never collide).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        m.alter_table(Table::alter().table(Nodes::Table).add_column(ColumnDef::new(Nodes::Address).string().null()).to_owned())
            .await?;
        m.alter_table(Table::alter().table(Nodes::Table).add_column(ColumnDef::new(Nodes::DiskGib).big_integer().null()).to_owned())
            .await?;
        m.alter_table(
            Table::alter().table(Nodes::Table).add_column(ColumnDef::new(Nodes::Drained).boolean().not_null().default(false)).to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter().table(Nodes::Table).add_column(ColumnDef::new(Nodes::Added).boolean().not_null().default(false)).to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter().table(PortLeases::Table).add_column(ColumnDef::new(PortLeases::Address).string().null()).to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_port_leases_address_port")
                .table(PortLeases::Table)
                .col(PortLeases::Address)
                .col(PortLeases::Port)
                .unique()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name("idx_port_leases_address_port").table(PortLeases::Table).to_owned()).await?;
        m.alter_table(Table::alter().table(PortLeases::Table).drop_column(PortLeases::Address).to_owned()).await?;
        for c in [Nodes::Added, Nodes::Drained, Nodes::DiskGib, Nodes::Address] {
            m.alter_table(Table::alter().table(Nodes::Table).drop_column(c).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Nodes {
    Table,
    Address,
    DiskGib,
    Drained,
    Added,
}

#[derive(DeriveIden)]
enum PortLeases {
    Table,
    Address,
    Port,
}
