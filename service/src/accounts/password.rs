//! Argon2id with OWASP's parameters (m=19 MiB, t=2, p=1), always off the async runtime.
//!
//! Hashing runs on a [`Hasher`]: a few threads of its own (`hash_concurrency`, default 2), fed
//! through a tokio semaphore with as many permits. Why not `spawn_blocking`: tokio's blocking
//! pool is shared with the libvirt calls, and a login flood (each hash is ~20 MiB and tens of
//! milliseconds of CPU) would fill it and stall VM work; a rayon pool would be one more
//! dependency for what a handful of std threads do. Callers beyond the permits wait on the
//! semaphore (an async wait, cheap), so at most `hash_concurrency` hashes run and memory stays
//! bounded at that many times 19 MiB.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use tokio::sync::{Semaphore, oneshot};

use crate::{Error, Result};

fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(19 * 1024, 2, 1, None).expect("valid argon2 params"))
}

/// Verified against when the account does not exist, so both paths take the same time (same
/// algorithm and parameters as real hashes; a constant, so the first unknown login is not
/// slower either). Its password was random and thrown away.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$RVFqRSu3njlsYOhVAc2CTQ$1C0dVHgbom2a49fHiAERS7htju7lsiNAuala0hMMTOg";

type Job = Box<dyn FnOnce() + Send>;

struct Inner {
    permits: Semaphore,
    jobs: Mutex<mpsc::Sender<Job>>,
    running: AtomicUsize,
    peak: AtomicUsize,
    started: AtomicUsize,
}

/// Password hashing with bounded concurrency on dedicated threads (see the module docs).
#[derive(Clone)]
pub struct Hasher {
    inner: Arc<Inner>,
}

impl Hasher {
    /// `concurrency` threads (at least 1), each running one hash at a time.
    pub fn new(concurrency: usize) -> Self {
        let n = concurrency.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..n {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("vmw-hash-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // every Hasher handle is gone
                        }
                    }
                })
                .expect("start a password hashing thread");
        }
        Self {
            inner: Arc::new(Inner {
                permits: Semaphore::new(n),
                jobs: Mutex::new(tx),
                running: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
                started: AtomicUsize::new(0),
            }),
        }
    }

    /// The most hashes that ever ran at the same time (for tests and diagnostics).
    pub fn peak_concurrency(&self) -> usize {
        self.inner.peak.load(Ordering::SeqCst)
    }

    /// How many hashes or verifications were started (each is one password check).
    pub fn checks_started(&self) -> usize {
        self.inner.started.load(Ordering::SeqCst)
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let _permit = self.inner.permits.acquire().await.map_err(Error::internal)?;
        let (tx, rx) = oneshot::channel();
        let inner = self.inner.clone();
        let job: Job = Box::new(move || {
            inner.started.fetch_add(1, Ordering::SeqCst);
            let now = inner.running.fetch_add(1, Ordering::SeqCst) + 1;
            inner.peak.fetch_max(now, Ordering::SeqCst);
            let out = f();
            inner.running.fetch_sub(1, Ordering::SeqCst);
            let _ = tx.send(out);
        });
        self.inner
            .jobs
            .lock()
            .map_err(|_| Error::internal("password hashing threads are gone"))?
            .send(job)
            .map_err(|_| Error::internal("password hashing threads are gone"))?;
        rx.await.map_err(|_| Error::internal("a password hashing thread failed"))
    }

    pub async fn hash(&self, password: String) -> Result<String> {
        self.run(move || {
            hasher()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| Error::internal(format!("hashing a password: {e}")))
        })
        .await?
    }

    /// True when `password` matches `hash` (None: compares against a dummy hash and says no).
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool> {
        self.run(move || {
            let known = hash.is_some();
            let h = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
            let ok = hasher().verify_password(password.as_bytes(), h.as_str()).is_ok();
            ok && known
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let h = Hasher::new(2);
        let hashed = h.hash("correct horse".into()).await.unwrap();
        assert!(hashed.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hashed}");
        assert!(h.verify("correct horse".into(), Some(hashed.clone())).await.unwrap());
        assert!(!h.verify("wrong horse".into(), Some(hashed.clone())).await.unwrap());
        assert!(!h.verify("an unguessable dummy password".into(), None).await.unwrap());
        // The dummy costs what a real verification costs.
        let params = |h: &str| h.split('$').take(4).collect::<Vec<_>>().join("$");
        assert_eq!(params(DUMMY_HASH), params(&hashed));
        assert!(argon2::PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_hashes_run_at_once_than_the_concurrency_allows() {
        let h = Hasher::new(2);
        let all = (0..8).map(|_| {
            let h = h.clone();
            tokio::spawn(async move { h.verify("guess".into(), None).await.unwrap() })
        });
        for j in all.collect::<Vec<_>>() {
            assert!(!j.await.unwrap());
        }
        assert_eq!(h.checks_started(), 8);
        assert!(h.peak_concurrency() <= 2, "peak {}", h.peak_concurrency());
    }
}
