use sea_orm::entity::prelude::*;
use vmw_types::CertSource;

/// A certificate the app keeps (issue #30): `label` names it and its directory
/// `{data_dir}/tls/certs/{label}/` (`dashboard`, `sites`, `domain-{id}`). The key and chain are
/// files, never in the database. Only `store::certificates` reads or writes these rows.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "certificates")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub label: String,
    /// JSON array of the names it covers.
    #[sea_orm(column_type = "Text")]
    pub names: String,
    pub source: CertSource,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    /// Issuances or renewals that failed in a row (the back-off).
    pub failures: i32,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub next_try_at: Option<i64>,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
