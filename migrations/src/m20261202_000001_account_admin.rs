//! Accounts an administrator can switch off, and what happened to each account:
//! - `users.disabled_at`: set while an administrator has disabled the account (it cannot log in,
//!   and its sessions and tokens stop working);
//! - `account_events`: logins (succeeded or failed, with the client's address), API tokens made
//!   and revoked, password changes, disable and enable; each user sees their own, newest first.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per ALTER: SQLite takes no more.
        m.alter_table(Table::alter().table(Users::Table).add_column(big_integer_null(Users::DisabledAt)).to_owned()).await?;
        m.create_table(
            Table::create()
                .table(AccountEvents::Table)
                .if_not_exists()
                .col(pk_auto(AccountEvents::Id))
                .col(integer(AccountEvents::UserId))
                .col(string(AccountEvents::Kind))
                .col(string_null(AccountEvents::ClientIp))
                .col(text_null(AccountEvents::Detail))
                .col(big_integer(AccountEvents::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(AccountEvents::Table, AccountEvents::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_account_events_user")
                .table(AccountEvents::Table)
                .col(AccountEvents::UserId)
                .col(AccountEvents::Id)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AccountEvents::Table).to_owned()).await?;
        m.alter_table(Table::alter().table(Users::Table).drop_column(Users::DisabledAt).to_owned()).await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    DisabledAt,
}

#[derive(DeriveIden)]
enum AccountEvents {
    Table,
    Id,
    UserId,
    Kind,
    ClientIp,
    Detail,
    CreatedAt,
}
