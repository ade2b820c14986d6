//! `backup_schedules`: one row per site that has a backup schedule or backups (issue 31). A site
//! without a row is off, with the default retention. The row also holds the scheduler's state:
//! - `frequency` `off` | `daily` | `weekly` (`weekday`), at `hour`:`minute` UTC; `keep_*`: the
//!   retention (restic's `forget --keep-daily/weekly/monthly`); `with_memory`;
//! - `anchor_at`: the last slot handled (or when the schedule was set): a slot after it is due,
//!   so a missed run runs once, not once per missed slot;
//! - `pending_backup_id`: the scheduled backup started and not yet looked at; `attempts` and
//!   `retry_at`: the retries of a failed or busy one;
//! - `usage_bytes` (`usage_at`): what the site's backups take in the repository (restic's
//!   raw-data stats), for the per-user quota; `forgot_at`: when retention last ran.
//!
//! `backups.orphaned_at`: when the scheduler first saw the row's site gone; its backups are
//! forgotten `--backup-keep-deleted-days` later.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(BackupSchedules::Table)
                .if_not_exists()
                .col(integer(BackupSchedules::HostingId).primary_key())
                .col(string(BackupSchedules::Frequency))
                .col(string_null(BackupSchedules::Weekday))
                .col(integer(BackupSchedules::Hour))
                .col(integer(BackupSchedules::Minute))
                .col(integer(BackupSchedules::KeepDaily))
                .col(integer(BackupSchedules::KeepWeekly))
                .col(integer(BackupSchedules::KeepMonthly))
                .col(boolean(BackupSchedules::WithMemory))
                .col(big_integer(BackupSchedules::UpdatedAt))
                .col(big_integer(BackupSchedules::AnchorAt))
                .col(integer_null(BackupSchedules::PendingBackupId))
                .col(integer(BackupSchedules::Attempts))
                .col(big_integer_null(BackupSchedules::RetryAt))
                .col(big_integer_null(BackupSchedules::UsageBytes))
                .col(big_integer_null(BackupSchedules::UsageAt))
                .col(big_integer_null(BackupSchedules::ForgotAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(BackupSchedules::Table, BackupSchedules::HostingId)
                        .to(Hostings::Table, Hostings::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(Table::alter().table(Backups::Table).add_column(big_integer_null(Backups::OrphanedAt)).to_owned()).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table(Backups::Table).drop_column(Backups::OrphanedAt).to_owned()).await?;
        m.drop_table(Table::drop().table(BackupSchedules::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum BackupSchedules {
    Table,
    HostingId,
    Frequency,
    Weekday,
    Hour,
    Minute,
    KeepDaily,
    KeepWeekly,
    KeepMonthly,
    WithMemory,
    UpdatedAt,
    AnchorAt,
    PendingBackupId,
    Attempts,
    RetryAt,
    UsageBytes,
    UsageAt,
    ForgotAt,
}

#[derive(DeriveIden)]
enum Backups {
    Table,
    OrphanedAt,
}

#[derive(DeriveIden)]
enum Hostings {
    Table,
    Id,
}
