//! The instance's certificates, for administrators.
use super::super::HostingService;
use crate::accounts::Actor;
use crate::hosting::certs::{record, sources};
use crate::Result;
use vmw_types::{CertificateView, TlsOverview};

impl HostingService {
    /// The certificates nginx starts with: what is on disk, and the local CA's (made now when
    /// missing); no CA is asked (the leader's certificate loop does that).
    pub async fn tls_front_at_start(&self) -> crate::proxy::TlsFront {
        // Keys saved before nginx read them per handshake (0600) are given to its workers.
        if let Err(err) = self.cx.shared.certs.files.share_with_workers() {
            tracing::warn!(%err, "could not let nginx's workers read the certificate keys");
        }
        crate::hosting::certs::front::front(&self.cx, false).await
    }

    /// Every certificate the instance keeps, troubled ones first, and notes on what is served
    /// over HTTP only (administrators only).
    pub async fn tls_overview(&self, actor: &Actor) -> Result<TlsOverview> {
        actor.require_admin()?;
        let now = crate::db::now_ms();
        let soon = now + record::WARN_BEFORE.whole_milliseconds() as i64;
        let mut certificates: Vec<CertificateView> = self
            .cx
            .store
            .certificates()
            .await?
            .into_iter()
            .map(|r| CertificateView {
                names: serde_json::from_str(&r.names).unwrap_or_default(),
                trouble: match r.not_after {
                    None => r.failures > 0,
                    Some(t) => t <= now || (r.failures > 0 && t <= soon),
                },
                label: r.label,
                source: r.source,
                not_before: r.not_before,
                not_after: r.not_after,
                failures: r.failures,
                last_error: r.last_error,
                next_try_at: r.next_try_at,
            })
            .collect();
        certificates.sort_by(|a, b| b.trouble.cmp(&a.trouble).then_with(|| a.label.cmp(&b.label)));
        Ok(TlsOverview { certificates, notes: sources::notes(&self.cx.cfg) })
    }
}
