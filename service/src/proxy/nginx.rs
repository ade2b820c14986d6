//! The nginx process: started or reloaded on the project's configuration (tested first),
//! each reload waited for until it serves, and stopped.
use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use super::files::write_atomic;
use super::{Proxy, ProxyError, io, render};

impl Proxy {
    /// Writes the main configuration from the project's templates and starts nginx, or
    /// reloads it when it already runs.
    pub async fn ensure_running(&self) -> Result<(), ProxyError> {
        let _g = self.exclusive().await;
        let p = &self.inner.prefix;
        for d in ["sites", "logs", "logs/visits", "logs/visits-tls", "tmp", "html/__vmw"] {
            let d = p.join(d);
            tokio::fs::create_dir_all(&d).await.map_err(|e| io("creating", &d, e))?;
        }
        // The shared servers' visits logs (HTTP and HTTPS) are opened by the workers (a path
        // with a variable): as root nginx runs them as www-data, whose directory this is.
        if let Some((uid, gid)) = super::worker_ids() {
            let d = p.join("logs/visits-tls");
            std::os::unix::fs::chown(&d, Some(uid), Some(gid)).map_err(|e| io("handing to nginx's workers", &d, e))?;
        }
        let files = render::main_files(&self.inner.cfg, p, &self.tls_front())?;
        for (name, content) in files {
            write_atomic(&p.join(name), &content).await?;
        }
        self.write_generation().await?;
        self.test().await?;
        if self.running_pid().await.is_some() {
            self.signal("reload").await?;
        } else {
            let out = self.nginx().output().await.map_err(|source| ProxyError::Spawn { action: "start", source }.counted())?;
            if !out.status.success() {
                return Err(ProxyError::Command {
                    action: "start",
                    status: out.status,
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                }
                .counted());
            }
        }
        self.wait_generation().await;
        tracing::info!(prefix = %p.display(), listen = %self.inner.cfg.nginx_listen, "nginx running");
        Ok(())
    }

    /// Stops this nginx (tests, shutdown).
    pub async fn stop(&self) -> Result<(), ProxyError> {
        let Some(pid) = self.running_pid().await else { return Ok(()) };
        self.signal("quit").await?;
        for _ in 0..100 {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(ProxyError::DidNotStop { pid }.counted())
    }

    /// Whether nginx answers on its listen address (health checks).
    pub async fn is_running(&self) -> bool {
        self.running_pid().await.is_some()
    }

    /// `nginx -t`, then reload, then wait until the new configuration serves.
    pub(super) async fn apply(&self) -> Result<(), ProxyError> {
        self.write_generation().await?;
        self.test().await?;
        if let Some(master) = self.running_pid().await {
            let old = accepting_workers(master).await;
            self.signal("reload").await?;
            self.wait_generation().await;
            self.wait_workers_gone(master, &old).await;
            self.inner.reloaded.send_modify(|n| *n += 1);
        }
        Ok(())
    }

    /// After a reload, the old workers still accept connections for a moment (and serve the
    /// old routes). Waits until none of `old` is an accepting worker any more: they exited or
    /// renamed themselves "worker process is shutting down" (their listen sockets closed).
    async fn wait_workers_gone(&self, master: u32, old: &[u32]) {
        for _ in 0..750 {
            let now = accepting_workers(master).await;
            if !old.iter().any(|p| now.contains(p)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::warn!("old nginx workers still accepted connections 15 s after a reload");
    }

    fn nginx(&self) -> Command {
        let mut c = Command::new(&self.inner.cfg.nginx_bin);
        c.arg("-p").arg(&self.inner.prefix).arg("-c").arg(self.conf());
        c.kill_on_drop(false);
        c
    }

    async fn test(&self) -> Result<(), ProxyError> {
        let out = self.nginx().arg("-t").arg("-q").output().await.map_err(|source| ProxyError::Spawn { action: "-t", source }.counted())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(ProxyError::Rejected { stderr: String::from_utf8_lossy(&out.stderr).into_owned() }.counted())
        }
    }

    /// `nginx -s SIG` (reload, quit).
    pub(super) async fn signal(&self, sig: &'static str) -> Result<(), ProxyError> {
        let out = self.nginx().args(["-s", sig]).output().await.map_err(|source| ProxyError::Spawn { action: sig, source }.counted())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(ProxyError::Command { action: sig, status: out.status, stderr: String::from_utf8_lossy(&out.stderr).into_owned() }.counted())
        }
    }

    pub(super) async fn running_pid(&self) -> Option<u32> {
        let pid: u32 = tokio::fs::read_to_string(self.inner.prefix.join("nginx.pid")).await.ok()?.trim().parse().ok()?;
        let cmdline = tokio::fs::read(format!("/proc/{pid}/cmdline")).await.ok()?;
        String::from_utf8_lossy(&cmdline).contains("nginx").then_some(pid)
    }

}

/// The children of nginx's `master` that accept connections ("nginx: worker process", not
/// "... is shutting down"), from /proc.
async fn accepting_workers(master: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(mut rd) = tokio::fs::read_dir("/proc").await else { return out };
    while let Ok(Some(e)) = rd.next_entry().await {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = tokio::fs::read_to_string(format!("/proc/{pid}/stat")).await else { continue };
        // "pid (comm) state ppid ...": the fields after the last ')'.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)).and_then(|p| p.parse::<u32>().ok());
        if ppid != Some(master) {
            continue;
        }
        let title = tokio::fs::read(format!("/proc/{pid}/cmdline")).await.unwrap_or_default();
        let title = String::from_utf8_lossy(&title);
        if title.contains("worker process") && !title.contains("shutting down") {
            out.push(pid);
        }
    }
    out
}

