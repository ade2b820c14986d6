//! HTTP-01: the answers go into the database (`store::acme_challenges`), where whichever
//! replica nginx hands `/.well-known/acme-challenge/{token}` to reads them.
use sea_orm::DatabaseConnection;

use crate::tls::{Http01Publisher, PublishError};

pub(crate) struct DbHttp01(pub DatabaseConnection);

#[async_trait::async_trait]
impl Http01Publisher for DbHttp01 {
    async fn publish(&self, token: &str, key_authorization: &str) -> Result<(), PublishError> {
        crate::store::acme_challenges::publish(&self.0, token, key_authorization)
            .await
            .map_err(|e| PublishError { what: "storing the HTTP-01 answer".into(), source: Box::new(e) })
    }

    async fn withdraw(&self, token: &str) {
        if let Err(err) = crate::store::acme_challenges::withdraw(&self.0, token).await {
            tracing::warn!(%err, "could not remove an HTTP-01 answer (pruned within the hour)");
        }
    }
}
