//! nginx's logs kept small: rotated past a size, visits logs emptied in place.
use super::{Proxy, ProxyError, io};

impl Proxy {
    /// Rotates nginx's logs (`logs/access.log`, `logs/error.log`) that passed `max_bytes`: each
    /// becomes `NAME.1` (the previous `.1` is dropped) and a running nginx reopens its files
    /// (`nginx -s reopen`). So the logs take at most about twice `max_bytes` each. Returns the
    /// rotated file names.
    pub async fn rotate_logs(&self, max_bytes: u64) -> Result<Vec<&'static str>, ProxyError> {
        let mut rotated = Vec::new();
        for name in ["access.log", "error.log"] {
            let p = self.inner.prefix.join("logs").join(name);
            let Ok(meta) = tokio::fs::metadata(&p).await else { continue };
            if meta.len() > max_bytes {
                let old = self.inner.prefix.join("logs").join(format!("{name}.1"));
                tokio::fs::rename(&p, &old).await.map_err(|e| io("rotating", &p, e))?;
                rotated.push(name);
            }
        }
        // Visits logs are only read for their modification time: past the cap they are emptied
        // in place (nginx appends; the site looks visited once more, which delays its sleep).
        for dir in ["visits", "visits-tls"] {
            let dir = self.inner.prefix.join("logs").join(dir);
            let Ok(mut entries) = tokio::fs::read_dir(&dir).await else { continue };
            while let Ok(Some(e)) = entries.next_entry().await {
                if e.metadata().await.map(|m| m.len() > max_bytes).unwrap_or(false) {
                    if let Ok(f) = tokio::fs::OpenOptions::new().write(true).open(e.path()).await {
                        let _ = f.set_len(0).await;
                    }
                }
            }
        }
        if !rotated.is_empty() && self.running_pid().await.is_some() {
            self.signal("reopen").await?;
        }
        Ok(rotated)
    }

}
