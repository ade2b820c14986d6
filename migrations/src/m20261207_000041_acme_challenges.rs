//! `acme_challenges`: the HTTP-01 answers the app serves at
//! `/.well-known/acme-challenge/{token}` while an ACME order is being validated (issue #30). In
//! the database, not in one process's memory: nginx may hand the CA's request to any replica.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AcmeChallenges::Table)
                .if_not_exists()
                .col(ColumnDef::new(AcmeChallenges::Token).string().not_null().primary_key())
                .col(ColumnDef::new(AcmeChallenges::KeyAuthorization).string().not_null())
                .col(ColumnDef::new(AcmeChallenges::CreatedAt).big_integer().not_null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AcmeChallenges::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum AcmeChallenges {
    Table,
    Token,
    KeyAuthorization,
    CreatedAt,
}
