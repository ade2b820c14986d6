//! The front door's certificates: the dashboard's, the sites' `{slug}.{base_domain}` (one
//! wildcard, or one per site from the local CA), and each custom domain's; issued when missing,
//! renewed at two thirds of their lifetime (or when the CA's renewal information says so) on
//! the leader, each change through `nginx -t` (a refused certificate leaves the old one
//! served). Their state is in the `certificates` table and their expiry a metric
//! ([`record`]). Where each comes from: [`sources`]; the dashboard's and the sites': [`front`];
//! custom domains: `lifecycle::domain_checks`.
use tokio::sync::OnceCell;

use crate::ServiceConfig;
use crate::dns::{Lookup, Rfc2136, TsigKey};
use crate::tls::{Acme, AcmeError, AcmeSettings, CertStore, LocalCa, TlsError};

pub(crate) mod front;
pub(crate) mod http01;
pub(crate) mod record;
pub(crate) mod sources;

/// The local certificate authority's folder (its root key stays there, 0600).
pub(crate) fn local_ca_dir(cfg: &ServiceConfig) -> std::path::PathBuf {
    cfg.data_dir.join("tls").join("local-ca")
}

/// What issuing needs, made once per process: the certificate files, the local CA and the
/// ACME account (on first use: the CA is contacted only when a name needs it), the DNS-01
/// updater and the resolver the ownership checks ask.
pub(crate) struct Certs {
    pub files: CertStore,
    local_ca: OnceCell<LocalCa>,
    acme: OnceCell<Acme>,
    /// None: no `--dns-update-server`, or its key file could not be read (logged at start).
    pub dns01: Option<Rfc2136>,
    pub lookup: Lookup,
}

impl Certs {
    pub(crate) fn new(cfg: &ServiceConfig) -> Self {
        let dns01 = cfg.tls.dns_update.as_ref().and_then(|u| match TsigKey::from_file(&u.tsig_key_file) {
            Ok(key) => Some(Rfc2136 { server: u.server, zone: u.zone.clone(), key, timeout: std::time::Duration::from_secs(10) }),
            Err(err) => {
                tracing::error!(%err, "--dns-tsig-key could not be read: no wildcard certificate by DNS-01");
                None
            }
        });
        Self {
            files: CertStore::new(&cfg.data_dir),
            local_ca: OnceCell::new(),
            acme: OnceCell::new(),
            dns01,
            lookup: Lookup::new(cfg.dns_resolver),
        }
    }

    /// The local CA, made at the first call of the first start.
    pub(crate) async fn local_ca(&self, cfg: &ServiceConfig) -> Result<&LocalCa, TlsError> {
        let dir = local_ca_dir(cfg);
        self.local_ca
            .get_or_try_init(|| async move {
                let ca = tokio::task::spawn_blocking(move || LocalCa::load_or_create(&dir)).await.map_err(|e| TlsError::Parse {
                    detail: format!("the local CA task failed: {e}"),
                    source: None,
                })??;
                tracing::info!(root = %ca.root_path().display(), "local certificate authority ready: its root certificate is offered at /tls/local-ca.pem");
                Ok(ca)
            })
            .await
    }

    /// The ACME account on `--acme-directory`, registered (or loaded) at the first call that
    /// succeeds.
    pub(crate) async fn acme(&self, cfg: &ServiceConfig) -> Result<&Acme, AcmeError> {
        self.acme
            .get_or_try_init(|| async {
                let t = &cfg.tls;
                let mut s = AcmeSettings::new(t.acme_directory.clone(), cfg.data_dir.join("tls").join("acme"));
                s.contact_email = t.acme_email.clone();
                s.eab = t.acme_eab.clone();
                s.extra_root = t.acme_ca_root.clone();
                Acme::new(s).await
            })
            .await
    }
}
