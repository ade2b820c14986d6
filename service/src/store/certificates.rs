//! The certificates the app keeps (issue #30): one row per label (`dashboard`, `sites`,
//! `domain-{id}`), what it covers, where it came from, and its renewal's back-off. The files
//! themselves (chain, key) are `tls`'s, in `{data_dir}/tls/certs/{label}/`.
use sea_orm::sea_query::OnConflict;
use sea_orm::{EntityTrait, QueryOrder};

use super::Store;
use crate::Result;
use crate::db::entity::certificate;

pub use certificate::Model as CertificateRow;

/// The label of domain `id`'s certificate (its row and its directory).
pub fn domain_cert_label(id: i32) -> String {
    format!("domain-{id}")
}

impl Store {
    /// Writes the row of `row.label`, replacing what was there.
    pub async fn upsert_certificate(&self, row: CertificateRow) -> Result<()> {
        let am: certificate::ActiveModel = row.into();
        certificate::Entity::insert(am)
            .on_conflict(
                OnConflict::column(certificate::Column::Label)
                    .update_columns([
                        certificate::Column::Names,
                        certificate::Column::Source,
                        certificate::Column::NotBefore,
                        certificate::Column::NotAfter,
                        certificate::Column::Failures,
                        certificate::Column::LastError,
                        certificate::Column::NextTryAt,
                        certificate::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(self.db())
            .await?;
        Ok(())
    }

    pub async fn certificate(&self, label: &str) -> Result<Option<CertificateRow>> {
        Ok(certificate::Entity::find_by_id(label.to_owned()).one(self.db()).await?)
    }

    /// Every certificate row, by label.
    pub async fn certificates(&self) -> Result<Vec<CertificateRow>> {
        Ok(certificate::Entity::find().order_by_asc(certificate::Column::Label).all(self.db()).await?)
    }

    pub async fn delete_certificate(&self, label: &str) -> Result<()> {
        certificate::Entity::delete_by_id(label.to_owned()).exec(self.db()).await?;
        Ok(())
    }
}
