//! `login_sessions`: one row per logged-in browser session (issue #32, item 3), what the
//! settings page and `GET /api/v1/auth/sessions` list: its opaque public id, the user, when it
//! started and was last seen, the client's address and user agent. The tower-sessions record
//! it belongs to names it in the new `sessions.login_id` column, so ending one deletes the
//! other (its cookie then fails at once).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(LoginSessions::Table)
                .if_not_exists()
                .col(ColumnDef::new(LoginSessions::Id).string().not_null().primary_key())
                .col(ColumnDef::new(LoginSessions::UserId).integer().not_null())
                .col(ColumnDef::new(LoginSessions::CreatedAt).big_integer().not_null())
                .col(ColumnDef::new(LoginSessions::LastSeenAt).big_integer().not_null())
                .col(ColumnDef::new(LoginSessions::ClientIp).string().null())
                .col(ColumnDef::new(LoginSessions::UserAgent).string().not_null())
                .foreign_key(
                    ForeignKey::create()
                        .from(LoginSessions::Table, LoginSessions::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("idx_login_sessions_user_id").table(LoginSessions::Table).col(LoginSessions::UserId).to_owned(),
        )
        .await?;
        m.alter_table(Table::alter().table(Sessions::Table).add_column(ColumnDef::new(Sessions::LoginId).string().null()).to_owned())
            .await?;
        m.create_index(Index::create().name("idx_sessions_login_id").table(Sessions::Table).col(Sessions::LoginId).to_owned())
            .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name("idx_sessions_login_id").table(Sessions::Table).to_owned()).await?;
        m.alter_table(Table::alter().table(Sessions::Table).drop_column(Sessions::LoginId).to_owned()).await?;
        m.drop_table(Table::drop().table(LoginSessions::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum LoginSessions {
    Table,
    Id,
    UserId,
    CreatedAt,
    LastSeenAt,
    ClientIp,
    UserAgent,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    LoginId,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}
