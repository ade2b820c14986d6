//! Changes of the configuration one at a time (across replicas sharing the prefix), and the
//! generation each one gets, to wait until nginx really serves it.
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Proxy;
use super::ProxyError;
use super::files::write_atomic;

impl Proxy {
    /// Each change gets a number that nginx serves at /__vmw_generation, so a caller can wait
    /// until a reload has really taken effect (reload is asynchronous).
    /// Every change of the configuration holds this: the in-process lock, then an exclusive
    /// `flock` on `{prefix}/.lock`, so app replicas sharing the prefix (one nginx) change it one
    /// at a time too (and each waits for its own generation).
    pub(super) async fn exclusive(&self) -> Exclusive<'_> {
        let mutex = self.inner.lock.lock().await;
        let path = self.inner.prefix.join(".lock");
        let file = tokio::task::spawn_blocking(move || {
            use std::os::fd::AsRawFd;
            std::fs::create_dir_all(path.parent()?).ok()?;
            let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).ok()?;
            // SAFETY: flock on a descriptor this closure owns; closing it unlocks.
            (unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0).then_some(f)
        })
        .await
        .ok()
        .flatten();
        if file.is_none() {
            tracing::warn!(prefix = %self.inner.prefix.display(), "could not lock nginx's prefix against other replicas");
        }
        Exclusive { _mutex: mutex, _file: file }
    }

    pub(super) async fn write_generation(&self) -> Result<(), ProxyError> {
        let g = self.generation_label(self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1);
        let f = self.sites().join("_generation.locations.conf");
        write_atomic(&f, &format!("location = /__vmw_generation {{\n    allow 127.0.0.0/8;\n    deny all;\n    default_type text/plain;\n    return 200 \"{g}\";\n}}\n"))
            .await
    }

    pub(super) async fn wait_generation(&self) {
        let want = self.generation_label(self.inner.generation.load(Ordering::SeqCst));
        let url = format!("http://{}/__vmw_generation", self.inner.cfg.nginx_local_addr());
        // Usually a few milliseconds; a busy host can take seconds to start the new workers.
        for _ in 0..750 {
            let answer = crate::probe::get_text(&url, Some("localhost"), Duration::from_millis(500)).await;
            if matches!(&answer, Some((200, body)) if body.trim() == want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::warn!("nginx did not report configuration generation {want} within 15 s");
    }

    /// A generation of this process's (replicas sharing one nginx count their own).
    fn generation_label(&self, g: u64) -> String {
        format!("{}.{g}", std::process::id())
    }
}

/// Held while the configuration changes (see `Proxy::exclusive`).
pub(super) struct Exclusive<'a> {
    _mutex: tokio::sync::MutexGuard<'a, ()>,
    _file: Option<std::fs::File>,
}

