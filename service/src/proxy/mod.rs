//! nginx, owned by the project: the app at `/`, each site at `/{slug}/`, `/{user_id}/` and
//! `http://{slug}.{base_domain}/`. Per-site files are written atomically, `nginx -t` runs
//! before every reload, and a config nginx refuses is rolled back to the previous one. With an
//! HTTPS address, every name is served over HTTPS too with the certificates of the `TlsFront`
//! (`set_tls`) and the sites' custom domains (`SiteRoute::domains`): the dashboard by its own
//! server, every site name by one shared server that picks the certificate at the handshake and
//! the site by the Host header (`nginx/sites-https.template`), so a reload costs the same with
//! 10 sites or 1,000 (BENCHMARKS.md Run TLS-2).
mod error;
mod files;
mod front;
mod generation;
mod https;
mod logs;
mod nginx;
mod render;
mod routes;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::Mutex;

use crate::ServiceConfig;
use error::io;
pub use error::ProxyError;
pub use https::validate_domain_name;
pub use worker::worker_ids;
pub use render::{CertPaths, DomainRoute, SiteRoute, TlsFront, TlsName, dashboard_names, validate_slug};

#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: ServiceConfig,
    prefix: PathBuf,
    /// Serialises every change of the nginx configuration.
    lock: Mutex<()>,
    /// The HTTPS side the main files are rendered with (`set_tls`); changed only under `lock`.
    front: std::sync::RwLock<TlsFront>,
    invalid: AtomicBool,
    generation: AtomicU64,
    /// Counts reloads whose old workers have stopped accepting. Those workers close every
    /// connection they still hold `worker_shutdown_timeout` later, so the app ends its long
    /// responses (event streams) cleanly on this signal instead of having them cut.
    reloaded: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    pub fn new(cfg: &ServiceConfig) -> Self {
        let prefix = cfg.data_dir.join("nginx");
        let prefix = std::path::absolute(&prefix).unwrap_or(prefix);
        Self {
            inner: Arc::new(Inner {
                cfg: cfg.clone(),
                prefix,
                lock: Mutex::new(()),
                front: std::sync::RwLock::new(TlsFront::default()),
                invalid: AtomicBool::new(false),
                generation: AtomicU64::new(0),
                reloaded: tokio::sync::watch::Sender::new(0),
            }),
        }
    }

    /// Changes after every reload of a running nginx (see `Inner::reloaded`).
    pub fn reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.reloaded.subscribe()
    }

    pub fn prefix(&self) -> &Path {
        &self.inner.prefix
    }

    fn sites(&self) -> PathBuf {
        self.inner.prefix.join("sites")
    }

    /// The site's path-route file (its subdomain file sits beside it).
    pub fn site_file(&self, hosting_id: i32) -> PathBuf {
        self.sites().join(format!("hosting-{hosting_id}.locations.conf"))
    }

    /// The site's visits log: nginx appends a line per request, so its modification time is
    /// the site's last visit through nginx.
    pub fn visits_file(&self, hosting_id: i32) -> PathBuf {
        self.inner.prefix.join("logs").join("visits").join(format!("{hosting_id}.log"))
    }

    /// The site's visits on its own names ({slug}.{base_domain}, custom domains), over HTTP and
    /// HTTPS: the shared servers log to a path with a variable, which nginx's workers open (as
    /// the worker user when nginx runs as root), so these live in a directory of their own
    /// (`visits_file` holds the `/{slug}/` visits). A site's last visit is the newer of both
    /// files' mtimes.
    pub fn tls_visits_file(&self, hosting_id: i32) -> PathBuf {
        self.inner.prefix.join("logs").join("visits-tls").join(format!("{hosting_id}.log"))
    }

    fn server_file(&self, hosting_id: i32) -> PathBuf {
        self.sites().join(format!("hosting-{hosting_id}.server.conf"))
    }

    /// The site's lines of the shared HTTP server's map (`{name} "{id} {slug} {redirect}"`).
    fn http_map_file(&self, hosting_id: i32) -> PathBuf {
        self.sites().join(format!("hosting-{hosting_id}.http.map"))
    }

    /// The site's names, as `server_name` lines of the shared HTTP server.
    fn http_names_file(&self, hosting_id: i32) -> PathBuf {
        self.sites().join(format!("hosting-{hosting_id}.http.names"))
    }

    /// The site's lines of the shared HTTPS server's maps (`{name} "{id} {slug} {hsts} {cert}"`).
    fn https_map_file(&self, hosting_id: i32) -> PathBuf {
        self.sites().join(format!("hosting-{hosting_id}.https.map"))
    }

    /// The site's HTTPS names, as `server_name` lines of the shared HTTPS server.
    fn https_names_file(&self, hosting_id: i32) -> PathBuf {
        self.sites().join(format!("hosting-{hosting_id}.https.names"))
    }

    fn conf(&self) -> PathBuf {
        self.inner.prefix.join("nginx.conf")
    }

    /// Fault injection for rollback tests: the next site configs written are ones nginx rejects.
    #[doc(hidden)]
    pub fn inject_invalid_config(&self, on: bool) {
        self.inner.invalid.store(on, Ordering::SeqCst);
    }

}
