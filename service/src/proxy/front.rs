//! The HTTPS front door's certificates (`TlsFront`): kept, rendered into the main files, and
//! changed as one step that nginx accepts or that is undone.
use super::files::{read_opt, restore, write_atomic};
use super::{Proxy, ProxyError, TlsFront, render};

impl Proxy {
    /// The certificates the dashboard and the sites' `{slug}.{base_domain}` are served with now.
    pub fn tls_front(&self) -> TlsFront {
        self.inner.front.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The certificates to render with when nginx is (re)started next ([`Proxy::ensure_running`]),
    /// without touching nginx now: the front at start-up, before nginx runs.
    pub fn preset_tls(&self, front: TlsFront) {
        *self.inner.front.write().unwrap_or_else(|e| e.into_inner()) = front;
    }

    /// Serves the dashboard and the sites' subdomains with `front` (a new or renewed
    /// certificate, HSTS): re-renders the main files (the sites' files name nothing of the
    /// front: they map their subdomain to `s` over HTTP and `*` over HTTPS), runs `nginx -t`
    /// and reloads. When nginx refuses
    /// it (a garbage certificate file, a key that does not match), every file and the kept
    /// front are put back and nginx keeps serving the old configuration, old certificates
    /// included.
    pub async fn set_tls(&self, front: TlsFront) -> Result<(), ProxyError> {
        let p = self.inner.prefix.clone();
        // Refused values (paths, names) are refused before anything is touched.
        let files = render::main_files(&self.inner.cfg, &p, &front)?;
        if self.inner.cfg.nginx_listen_tls.is_some() {
            // The wildcard is read at handshakes only: `nginx -t` would not see a broken one.
            if let Some(t) = &front.sites {
                super::https::check_cert_files(t)?;
            }
        }
        let _g = self.exclusive().await;
        let mut before = Vec::with_capacity(files.len());
        for (name, _) in &files {
            before.push((p.join(name), read_opt(&p.join(name)).await?));
        }
        let old = std::mem::replace(&mut *self.inner.front.write().unwrap_or_else(|e| e.into_inner()), front);
        let result = async {
            for (name, content) in &files {
                write_atomic(&p.join(name), content).await?;
            }
            self.apply().await
        }
        .await;
        if let Err(e) = result {
            *self.inner.front.write().unwrap_or_else(|e| e.into_inner()) = old;
            for (path, content) in before {
                restore(&path, content).await?;
            }
            tracing::warn!(error = %e, "nginx refused the new TLS settings; the previous ones stay");
            return Err(e);
        }
        tracing::info!("nginx serves the new TLS settings");
        Ok(())
    }
}
