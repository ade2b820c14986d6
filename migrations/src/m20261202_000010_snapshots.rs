//! User snapshots of a site (disk and memory): one row each, its files in
//! `{data_dir}/vms/{hosting_id}/snapshots/{id}/` (named after ids only; `name` is display text).
//! - `state`: `taking` while it is being made (a crash leaves it so: reconciliation removes it),
//!   `ready` once its files are complete;
//! - `size_bytes`: what its files take (counted against the user's snapshot disk quota; while
//!   `taking`, the estimate it was admitted with).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Snapshots::Table)
                .if_not_exists()
                .col(pk_auto(Snapshots::Id))
                .col(integer(Snapshots::HostingId))
                .col(integer(Snapshots::UserId))
                .col(string(Snapshots::Name))
                .col(string(Snapshots::State))
                .col(big_integer(Snapshots::SizeBytes))
                .col(big_integer(Snapshots::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Snapshots::Table, Snapshots::HostingId)
                        .to(Hostings::Table, Hostings::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Snapshots::Table, Snapshots::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(Index::create().name("idx_snapshots_hosting").table(Snapshots::Table).col(Snapshots::HostingId).to_owned())
            .await?;
        m.create_index(Index::create().name("idx_snapshots_user").table(Snapshots::Table).col(Snapshots::UserId).to_owned()).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Snapshots::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Snapshots {
    Table,
    Id,
    HostingId,
    UserId,
    Name,
    State,
    SizeBytes,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Hostings {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}
