//! Custom domains and certificates (issue #30):
//! - `domains`: a user's own name for one of their sites, proven theirs by DNS (a CNAME to the
//!   site's `{slug}.{base_domain}` or a TXT record at `_vmw-verify.{name}`), then served over
//!   HTTPS with an ACME certificate. `name` is the ASCII (IDNA) form, unique over every user:
//!   one name routes to one site. `state` is a `DomainState`; `next_check_at` is when the
//!   background checker looks at it again (NULL: not scheduled); `attempts` counts checks or
//!   issuances that failed in a row (for the back-off). Its rows go with their hosting.
//! - `certificates`: one row per certificate the app keeps (`label`: `dashboard`, `sites`,
//!   `domain-{id}`), what it covers (`names`, a JSON array) and where it came from
//!   (`local_ca`, `acme`, `operator`), for renewals and the admin's view. Its files are in
//!   `{data_dir}/tls/certs/{label}/`.
//! - `hostings.hsts`: the owner's HSTS switch for the site's own HTTPS names.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Domains::Table)
                .if_not_exists()
                .col(pk_auto(Domains::Id))
                .col(integer(Domains::HostingId))
                .col(integer(Domains::UserId))
                .col(string_uniq(Domains::Name))
                .col(string(Domains::State))
                .col(string_null(Domains::Method))
                .col(text_null(Domains::LastError))
                .col(integer(Domains::Attempts).default(0))
                .col(big_integer_null(Domains::NextCheckAt))
                .col(big_integer_null(Domains::VerifiedAt))
                .col(big_integer_null(Domains::CertNotAfter))
                .col(big_integer(Domains::CreatedAt))
                .col(big_integer(Domains::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Domains::Table, Domains::HostingId)
                        .to(Hostings::Table, Hostings::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Domains::Table, Domains::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(Index::create().name("idx_domains_hosting").table(Domains::Table).col(Domains::HostingId).to_owned()).await?;
        m.create_index(Index::create().name("idx_domains_user").table(Domains::Table).col(Domains::UserId).to_owned()).await?;
        m.create_index(Index::create().name("idx_domains_next_check").table(Domains::Table).col(Domains::NextCheckAt).to_owned())
            .await?;
        m.create_table(
            Table::create()
                .table(Certificates::Table)
                .if_not_exists()
                .col(string(Certificates::Label).primary_key())
                .col(text(Certificates::Names))
                .col(string(Certificates::Source))
                .col(big_integer_null(Certificates::NotBefore))
                .col(big_integer_null(Certificates::NotAfter))
                .col(integer(Certificates::Failures).default(0))
                .col(text_null(Certificates::LastError))
                .col(big_integer_null(Certificates::NextTryAt))
                .col(big_integer(Certificates::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter().table(Hostings::Table).add_column(ColumnDef::new(Hostings::Hsts).boolean().not_null().default(false)).to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table(Hostings::Table).drop_column(Hostings::Hsts).to_owned()).await?;
        m.drop_table(Table::drop().table(Certificates::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(Domains::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Domains {
    Table,
    Id,
    HostingId,
    UserId,
    Name,
    State,
    Method,
    LastError,
    Attempts,
    NextCheckAt,
    VerifiedAt,
    CertNotAfter,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Certificates {
    Table,
    Label,
    Names,
    Source,
    NotBefore,
    NotAfter,
    Failures,
    LastError,
    NextTryAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Hostings {
    Table,
    Id,
    Hsts,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}
