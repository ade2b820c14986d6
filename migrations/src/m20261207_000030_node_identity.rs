//! One libvirt daemon is one node (issue #28):
//! - `nodes.identity`: what the node's daemon is (its host UUID, the URI its driver answers
//!   to, its security labels: `vm::VmManager::identity`), shown to operators. Whether a new
//!   node is a known node's daemon is asked of the daemons themselves (a transient mark,
//!   `hosting::nodes`): identities alone cannot tell (root's `qemu:///session` and
//!   `qemu:///system` report the same). NULL: not read yet (rows from before; read at the next add);
//! - `nodes.domain_prefix`: the prefix of the node's libvirt domain names; NULL: the app's
//!   `--domain-prefix` (the node of the app's settings, and nodes added before this column,
//!   whose domains already carry that prefix).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        m.alter_table(Table::alter().table(Nodes::Table).add_column(ColumnDef::new(Nodes::Identity).string().null()).to_owned())
            .await?;
        m.alter_table(Table::alter().table(Nodes::Table).add_column(ColumnDef::new(Nodes::DomainPrefix).string().null()).to_owned())
            .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for c in [Nodes::DomainPrefix, Nodes::Identity] {
            m.alter_table(Table::alter().table(Nodes::Table).drop_column(c).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Nodes {
    Table,
    Identity,
    DomainPrefix,
}
