//! `backups`: one row per backup of a site in the backup repository (issue 31). The site may be
//! deleted later: `hosting_id` is then set to NULL while `slug` and `user_id` keep the row
//! listed for its owner (its restic snapshot stays in the repository).
//! - `state`: `running` while it is made (a crash leaves it so: reconciliation fails it),
//!   `succeeded` or `failed` (with `error`);
//! - `snapshot_id`: restic's snapshot id; `base_id`: the base disk it refers to (stored once);
//! - `captured_from`: `running`, `saved` or `powered_off`; `trigger`: `manual` or `scheduled`;
//! - `bytes_added`: what it added to the repository; `bytes_total`: the files backed up.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Backups::Table)
                .if_not_exists()
                .col(pk_auto(Backups::Id))
                .col(integer_null(Backups::HostingId))
                .col(string(Backups::Slug))
                .col(integer(Backups::UserId))
                .col(integer(Backups::NodeId))
                .col(string_null(Backups::SnapshotId))
                .col(string_null(Backups::BaseId))
                .col(string_null(Backups::CapturedFrom))
                .col(boolean(Backups::WithMemory))
                .col(string(Backups::State))
                .col(string(Backups::Trigger))
                .col(big_integer(Backups::StartedAt))
                .col(big_integer_null(Backups::FinishedAt))
                .col(big_integer_null(Backups::BytesAdded))
                .col(big_integer_null(Backups::BytesTotal))
                .col(text_null(Backups::Error))
                .foreign_key(
                    ForeignKey::create()
                        .from(Backups::Table, Backups::HostingId)
                        .to(Hostings::Table, Hostings::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Backups::Table, Backups::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(Index::create().name("idx_backups_hosting").table(Backups::Table).col(Backups::HostingId).to_owned()).await?;
        m.create_index(Index::create().name("idx_backups_user").table(Backups::Table).col(Backups::UserId).to_owned()).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Backups::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Backups {
    Table,
    Id,
    HostingId,
    Slug,
    UserId,
    NodeId,
    SnapshotId,
    BaseId,
    CapturedFrom,
    WithMemory,
    State,
    Trigger,
    StartedAt,
    FinishedAt,
    BytesAdded,
    BytesTotal,
    Error,
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
