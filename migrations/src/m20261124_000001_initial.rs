use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Nodes::Table)
                .if_not_exists()
                .col(pk_auto(Nodes::Id))
                .col(string_uniq(Nodes::Name))
                .col(string(Nodes::LibvirtUri))
                .col(big_integer(Nodes::MemoryMib))
                .col(big_integer(Nodes::CreatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Users::Table)
                .if_not_exists()
                .col(pk_auto(Users::Id))
                .col(string_uniq(Users::Email))
                .col(string_uniq(Users::Username))
                .col(string(Users::PasswordHash))
                .col(boolean(Users::IsAdmin).default(false))
                .col(integer(Users::AuthVersion).default(1))
                .col(big_integer(Users::CreatedAt))
                .col(big_integer(Users::UpdatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Sessions::Table)
                .if_not_exists()
                .col(string(Sessions::Id).primary_key())
                .col(text(Sessions::Data))
                .col(big_integer(Sessions::ExpiresAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_sessions_expires_at")
                .table(Sessions::Table)
                .col(Sessions::ExpiresAt)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(SshKeys::Table)
                .if_not_exists()
                .col(pk_auto(SshKeys::Id))
                .col(integer(SshKeys::UserId))
                .col(string(SshKeys::Name))
                .col(text(SshKeys::PublicKey))
                .col(string(SshKeys::Fingerprint))
                .col(big_integer(SshKeys::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(SshKeys::Table, SshKeys::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("uq_ssh_keys_user_fingerprint")
                .table(SshKeys::Table)
                .col(SshKeys::UserId)
                .col(SshKeys::Fingerprint)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ApiTokens::Table)
                .if_not_exists()
                .col(pk_auto(ApiTokens::Id))
                .col(integer(ApiTokens::UserId))
                .col(string(ApiTokens::Name))
                .col(string(ApiTokens::Kind))
                .col(string_uniq(ApiTokens::TokenHash))
                .col(big_integer_null(ApiTokens::ExpiresAt))
                .col(big_integer_null(ApiTokens::LastUsedAt))
                .col(big_integer(ApiTokens::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(ApiTokens::Table, ApiTokens::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Hostings::Table)
                .if_not_exists()
                .col(pk_auto(Hostings::Id))
                .col(integer(Hostings::UserId))
                .col(integer(Hostings::NodeId))
                .col(string_uniq(Hostings::Slug))
                .col(string(Hostings::Plan))
                .col(string(Hostings::State))
                .col(text_null(Hostings::StateReason))
                .col(string_null(Hostings::Operation))
                .col(integer_null(Hostings::HttpPort))
                .col(integer_null(Hostings::SshPort))
                .col(text(Hostings::SshKeys))
                .col(big_integer(Hostings::CreatedAt))
                .col(big_integer(Hostings::UpdatedAt))
                .col(big_integer_null(Hostings::RunningSince))
                .foreign_key(
                    ForeignKey::create()
                        .from(Hostings::Table, Hostings::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Restrict),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Hostings::Table, Hostings::NodeId)
                        .to(Nodes::Table, Nodes::Id)
                        .on_delete(ForeignKeyAction::Restrict),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_hostings_user")
                .table(Hostings::Table)
                .col(Hostings::UserId)
                .to_owned(),
        )
        .await?;

        // A port belongs to at most one hosting per node: the primary key is the constraint.
        m.create_table(
            Table::create()
                .table(PortLeases::Table)
                .if_not_exists()
                .col(integer(PortLeases::NodeId))
                .col(integer(PortLeases::Port))
                .col(integer(PortLeases::HostingId))
                .col(string(PortLeases::Purpose))
                .col(big_integer(PortLeases::CreatedAt))
                .primary_key(Index::create().col(PortLeases::NodeId).col(PortLeases::Port))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_port_leases_hosting")
                .table(PortLeases::Table)
                .col(PortLeases::HostingId)
                .to_owned(),
        )
        .await?;

        // Events outlive their hosting (audit trail), so no foreign key.
        m.create_table(
            Table::create()
                .table(HostingEvents::Table)
                .if_not_exists()
                .col(pk_auto(HostingEvents::Id))
                .col(integer(HostingEvents::HostingId))
                .col(integer(HostingEvents::UserId))
                .col(string(HostingEvents::Kind))
                .col(string_null(HostingEvents::Step))
                .col(string(HostingEvents::Status))
                .col(text(HostingEvents::Message))
                .col(big_integer_null(HostingEvents::DurationMs))
                .col(big_integer(HostingEvents::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_hosting_events_hosting")
                .table(HostingEvents::Table)
                .col(HostingEvents::HostingId)
                .col(HostingEvents::Id)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            HostingEvents::Table.into_iden(),
            PortLeases::Table.into_iden(),
            Hostings::Table.into_iden(),
            ApiTokens::Table.into_iden(),
            SshKeys::Table.into_iden(),
            Sessions::Table.into_iden(),
            Users::Table.into_iden(),
            Nodes::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Nodes { Table, Id, Name, LibvirtUri, MemoryMib, CreatedAt }

#[derive(DeriveIden)]
enum Users { Table, Id, Email, Username, PasswordHash, IsAdmin, AuthVersion, CreatedAt, UpdatedAt }

#[derive(DeriveIden)]
enum Sessions { Table, Id, Data, ExpiresAt }

#[derive(DeriveIden)]
enum SshKeys { Table, Id, UserId, Name, PublicKey, Fingerprint, CreatedAt }

#[derive(DeriveIden)]
enum ApiTokens { Table, Id, UserId, Name, Kind, TokenHash, ExpiresAt, LastUsedAt, CreatedAt }

#[derive(DeriveIden)]
enum Hostings {
    Table, Id, UserId, NodeId, Slug, Plan, State, StateReason, Operation, HttpPort, SshPort, SshKeys,
    CreatedAt, UpdatedAt, RunningSince,
}

#[derive(DeriveIden)]
enum PortLeases { Table, NodeId, Port, HostingId, Purpose, CreatedAt }

#[derive(DeriveIden)]
enum HostingEvents { Table, Id, HostingId, UserId, Kind, Step, Status, Message, DurationMs, CreatedAt }
