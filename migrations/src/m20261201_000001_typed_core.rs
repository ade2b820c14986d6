//! The typed hosting core:
//! - hostings get a lease (`lease_owner`, `lease_until`): one operation at a time holds across
//!   processes, and a crashed process's leases expire;
//! - a hosting says how its VM was made (`created_as`: cold boot, clone, warm spare);
//! - a warm spare says how it waits (`spare_tier`: paused in RAM, or saved to disk);
//! - warm spares belong to no account (`user_id` NULL) instead of a `_warm_pool` user, which was
//!   user 1 on a fresh install and so kept the first person to sign up from being an admin.
//! Existing rows are kept: their state/operation strings are already the enums' values.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const POOL_USERNAME: &str = "_warm_pool";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        let backend = db.get_database_backend();
        match backend {
            DbBackend::Sqlite => rebuild_hostings_sqlite(m).await?,
            _ => {
                m.alter_table(
                    Table::alter()
                        .table(Hostings::Table)
                        .modify_column(ColumnDef::new(Hostings::UserId).integer().null())
                        .add_column(ColumnDef::new(Hostings::LeaseOwner).string().null())
                        .add_column(ColumnDef::new(Hostings::LeaseUntil).big_integer().null())
                        .add_column(ColumnDef::new(Hostings::SpareTier).string().null())
                        .add_column(ColumnDef::new(Hostings::CreatedAs).string().null())
                        .to_owned(),
                )
                .await?;
            }
        }
        m.create_index(
            Index::create()
                .name("idx_hostings_node_state")
                .table(Hostings::Table)
                .col(Hostings::NodeId)
                .col(Hostings::State)
                .to_owned(),
        )
        .await?;

        // Spares leave the pool account, and the account goes.
        let pool = format!("SELECT id FROM users WHERE username = '{POOL_USERNAME}'");
        for sql in [
            format!("UPDATE hostings SET user_id = NULL WHERE user_id IN ({pool})"),
            "UPDATE hostings SET spare_tier = 'saved' WHERE state = 'spare'".to_owned(),
            format!("DELETE FROM api_tokens WHERE user_id IN ({pool})"),
            format!("DELETE FROM ssh_keys WHERE user_id IN ({pool})"),
            format!("DELETE FROM users WHERE username = '{POOL_USERNAME}'"),
            // "The first account is an admin": where the pool account took that place, the
            // first real account gets it back.
            "UPDATE users SET is_admin = TRUE WHERE id = (SELECT MIN(id) FROM users) \
             AND NOT EXISTS (SELECT 1 FROM users WHERE is_admin = TRUE)"
                .to_owned(),
        ] {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, _m: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration("the typed-core migration cannot be reverted (spares no longer have an owner)".into()))
    }
}

/// SQLite cannot change a column's nullability: make the new table, copy, swap. Nothing
/// references `hostings` by foreign key, and the id sequence is carried over (hosting ids name
/// domains, disks and event trails: they must never be handed out twice).
async fn rebuild_hostings_sqlite(m: &SchemaManager<'_>) -> Result<(), DbErr> {
    let create = Table::create()
        .table(HostingsNew::Table)
        .col(ColumnDef::new(Hostings::Id).integer().not_null().auto_increment().primary_key())
        .col(ColumnDef::new(Hostings::UserId).integer().null())
        .col(ColumnDef::new(Hostings::NodeId).integer().not_null())
        .col(ColumnDef::new(Hostings::Slug).string().not_null().unique_key())
        .col(ColumnDef::new(Hostings::Plan).string().not_null())
        .col(ColumnDef::new(Hostings::State).string().not_null())
        .col(ColumnDef::new(Hostings::StateReason).text().null())
        .col(ColumnDef::new(Hostings::Operation).string().null())
        .col(ColumnDef::new(Hostings::HttpPort).integer().null())
        .col(ColumnDef::new(Hostings::SshPort).integer().null())
        .col(ColumnDef::new(Hostings::SshKeys).text().not_null())
        .col(ColumnDef::new(Hostings::CreatedAt).big_integer().not_null())
        .col(ColumnDef::new(Hostings::UpdatedAt).big_integer().not_null())
        .col(ColumnDef::new(Hostings::RunningSince).big_integer().null())
        .col(ColumnDef::new(Hostings::LeaseOwner).string().null())
        .col(ColumnDef::new(Hostings::LeaseUntil).big_integer().null())
        .col(ColumnDef::new(Hostings::SpareTier).string().null())
        .col(ColumnDef::new(Hostings::CreatedAs).string().null())
        .foreign_key(
            ForeignKey::create()
                .from(HostingsNew::Table, Hostings::UserId)
                .to(Users::Table, Users::Id)
                .on_delete(ForeignKeyAction::Restrict),
        )
        .foreign_key(
            ForeignKey::create()
                .from(HostingsNew::Table, Hostings::NodeId)
                .to(Nodes::Table, Nodes::Id)
                .on_delete(ForeignKeyAction::Restrict),
        )
        .to_string(SqliteQueryBuilder);
    let cols = "id, user_id, node_id, slug, plan, state, state_reason, operation, http_port, ssh_port, ssh_keys, \
                created_at, updated_at, running_since";
    // One batch on one connection (the pool's other connections would see the swap half-done).
    // One transaction (SQLite's DDL is transactional): a failure half-way leaves the old table.
    let sql = format!(
        "BEGIN IMMEDIATE;
         DROP TABLE IF EXISTS hostings_new;
         {create};
         INSERT INTO hostings_new ({cols}) SELECT {cols} FROM hostings;
         CREATE TEMP TABLE vmw_seq AS SELECT MAX(n) AS n FROM (
             SELECT seq AS n FROM sqlite_sequence WHERE name = 'hostings'
             UNION ALL SELECT MAX(hosting_id) FROM hosting_events
             UNION ALL SELECT MAX(id) FROM hostings);
         DROP TABLE hostings;
         ALTER TABLE hostings_new RENAME TO hostings;
         DELETE FROM sqlite_sequence WHERE name IN ('hostings', 'hostings_new');
         INSERT INTO sqlite_sequence (name, seq) SELECT 'hostings', COALESCE(n, 0) FROM vmw_seq;
         DROP TABLE vmw_seq;
         CREATE INDEX idx_hostings_user ON hostings (user_id);
         COMMIT;"
    );
    m.get_connection().execute_unprepared(&sql).await?;
    Ok(())
}

#[derive(DeriveIden)]
enum Hostings {
    Table, Id, UserId, NodeId, Slug, Plan, State, StateReason, Operation, HttpPort, SshPort, SshKeys,
    CreatedAt, UpdatedAt, RunningSince, LeaseOwner, LeaseUntil, SpareTier, CreatedAs,
}

#[derive(DeriveIden)]
enum HostingsNew { Table }

#[derive(DeriveIden)]
enum Users { Table, Id }

#[derive(DeriveIden)]
enum Nodes { Table, Id }
