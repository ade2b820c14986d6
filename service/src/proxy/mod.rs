//! nginx, owned by the project: the app at `/`, each site at `/{slug}/`, `/{user_id}/` and
//! `http://{slug}.{base_domain}/`. Per-site files are written atomically, `nginx -t` runs
//! before every reload, and a config nginx refuses is rolled back to the previous one.
mod render;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::Mutex;

use crate::ServiceConfig;
use crate::file_error::FileError;
pub use render::{SiteRoute, validate_slug};

/// What went wrong with nginx, keeping the underlying error or nginx's own words. Display is
/// worded for the site's owner (the hosting page shows "<step> failed: <this>").
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// `nginx -t` refused the configuration; `stderr` is nginx's whole report (Display shows
    /// its first `[emerg]` line).
    #[error("nginx refused the configuration: {}", first_emerg(.stderr))]
    Rejected { stderr: String },
    /// nginx could not be run at all (`action`: "-t", "start", "reload", "quit").
    #[error("could not run nginx {action}: {source}")]
    Spawn {
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// nginx ran and failed; `stderr` is what it said.
    #[error("nginx {action} failed ({status}): {}", .stderr.trim())]
    Command { action: &'static str, status: std::process::ExitStatus, stderr: String },
    #[error("nginx (pid {pid}) did not stop")]
    DidNotStop { pid: u32 },
    /// The site does not answer through nginx; `hint` is nginx's last error log line.
    #[error("/{slug}/ answers {} through nginx: {hint}", answer(.last_status))]
    NotServing { slug: String, last_status: Option<u16>, hint: String },
    /// A file operation in nginx's prefix.
    #[error(transparent)]
    Io(#[from] FileError),
    /// A value the proxy refuses to put into a configuration.
    #[error("{0}")]
    Invalid(String),
}

impl ProxyError {
    /// The error's kind, as the `vmw_nginx_errors_total` counter labels it.
    pub fn kind(&self) -> &'static str {
        match self {
            ProxyError::Rejected { .. } => "rejected",
            ProxyError::Spawn { .. } => "spawn",
            ProxyError::Command { .. } => "command",
            ProxyError::DidNotStop { .. } => "did_not_stop",
            ProxyError::NotServing { .. } => "not_serving",
            ProxyError::Io(_) => "io",
            ProxyError::Invalid(_) => "invalid",
        }
    }

    /// Counts this error (`vmw_nginx_errors_total`) where it is made, and returns it.
    fn counted(self) -> Self {
        crate::telemetry::nginx_error(self.kind());
        self
    }
}

/// nginx's first `[emerg]` line (the reason), or its whole report trimmed.
fn first_emerg(stderr: &str) -> &str {
    stderr.lines().find(|l| l.contains("[emerg]")).unwrap_or(stderr).trim()
}

fn answer(status: &Option<u16>) -> String {
    match status {
        Some(code) => format!("HTTP {code}"),
        None => "no answer".into(),
    }
}

fn io(what: &'static str, p: &Path, source: std::io::Error) -> ProxyError {
    ProxyError::Io(FileError { what, path: p.to_owned(), source }).counted()
}

#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: ServiceConfig,
    prefix: PathBuf,
    /// Serialises every change of the nginx configuration.
    lock: Mutex<()>,
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

    fn server_file(&self, hosting_id: i32) -> PathBuf {
        self.sites().join(format!("hosting-{hosting_id}.server.conf"))
    }

    fn conf(&self) -> PathBuf {
        self.inner.prefix.join("nginx.conf")
    }

    /// Fault injection for rollback tests: the next site configs written are ones nginx rejects.
    #[doc(hidden)]
    pub fn inject_invalid_config(&self, on: bool) {
        self.inner.invalid.store(on, Ordering::SeqCst);
    }

    /// Writes the main configuration from the project's templates and starts nginx, or
    /// reloads it when it already runs.
    pub async fn ensure_running(&self) -> Result<(), ProxyError> {
        let _g = self.exclusive().await;
        let p = &self.inner.prefix;
        for d in ["sites", "logs", "logs/visits", "tmp", "html/__vmw"] {
            let d = p.join(d);
            tokio::fs::create_dir_all(&d).await.map_err(|e| io("creating", &d, e))?;
        }
        let files = render::main_files(&self.inner.cfg, p)?;
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

    /// Publishes a site. On any failure the previous files (or none) are put back.
    pub async fn add_route(&self, route: &SiteRoute) -> Result<(), ProxyError> {
        let (locations, server) = render::site_files(&self.inner.cfg, &self.inner.prefix, route)?;
        let poison = self.inner.invalid.load(Ordering::SeqCst);
        let locations = if poison { format!("{locations}\nthis_is_not_an_nginx_directive on;\n") } else { locations };
        let _g = self.exclusive().await;
        let lf = self.site_file(route.hosting_id);
        let sf = self.server_file(route.hosting_id);
        let before = (read_opt(&lf).await?, read_opt(&sf).await?);
        write_atomic(&lf, &locations).await?;
        write_atomic(&sf, &server).await?;
        if let Err(e) = self.apply().await {
            restore(&lf, before.0).await?;
            restore(&sf, before.1).await?;
            // Put nginx back on the last good configuration (it still runs it: reload never happened).
            return Err(e);
        }
        Ok(())
    }

    /// Rewrites the files of these routes where they differ from what the templates make now
    /// (an upgrade changed them, or the waker's port moved with a restart), then reloads once.
    /// Returns how many sites changed. On failure every file is put back.
    pub async fn refresh_routes(&self, routes: &[SiteRoute]) -> Result<usize, ProxyError> {
        let _g = self.exclusive().await;
        let mut changed = Vec::new();
        for r in routes {
            let (locations, server) = render::site_files(&self.inner.cfg, &self.inner.prefix, r)?;
            let (lf, sf) = (self.site_file(r.hosting_id), self.server_file(r.hosting_id));
            let before = (read_opt(&lf).await?, read_opt(&sf).await?);
            if before.0.as_deref() == Some(locations.as_str()) && before.1.as_deref() == Some(server.as_str()) {
                continue;
            }
            write_atomic(&lf, &locations).await?;
            write_atomic(&sf, &server).await?;
            changed.push((lf, sf, before));
        }
        if changed.is_empty() {
            return Ok(0);
        }
        if let Err(e) = self.apply().await {
            for (lf, sf, before) in changed {
                restore(&lf, before.0).await?;
                restore(&sf, before.1).await?;
            }
            return Err(e);
        }
        Ok(changed.len())
    }

    /// Waits until nginx really serves the site at `/{slug}/` (any answer but a gateway error),
    /// so "running" means reachable. On failure, the reason names nginx's last error line about
    /// this site's own upstream, if there is one.
    pub async fn check_route(&self, route: &SiteRoute, timeout: Duration) -> Result<(), ProxyError> {
        let slug = route.slug.as_str();
        validate_slug(slug)?;
        let url = format!("http://{}/{slug}/", self.inner.cfg.nginx_local_addr());
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last: Option<u16>;
        loop {
            match crate::probe::status(&url, Some("localhost"), Duration::from_secs(3)).await {
                Some(code) if !(502..=504).contains(&code) => return Ok(()),
                code => last = code,
            }
            if tokio::time::Instant::now() >= deadline {
                let log = tokio::fs::read_to_string(self.inner.prefix.join("logs/error.log")).await.unwrap_or_default();
                let backend = std::net::SocketAddr::new(route.backend, route.http_port).to_string();
                let hint = own_error_line(&log, route.hosting_id, &backend).unwrap_or("").to_owned();
                return Err(ProxyError::NotServing { slug: slug.to_owned(), last_status: last, hint }.counted());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Unpublishes a site. Missing: fine.
    pub async fn remove_route(&self, hosting_id: i32) -> Result<(), ProxyError> {
        let _g = self.exclusive().await;
        let lf = self.site_file(hosting_id);
        let sf = self.server_file(hosting_id);
        let before = (read_opt(&lf).await?, read_opt(&sf).await?);
        if before.0.is_none() && before.1.is_none() {
            return Ok(());
        }
        restore(&lf, None).await?;
        restore(&sf, None).await?;
        if let Err(e) = self.apply().await {
            restore(&lf, before.0).await?;
            restore(&sf, before.1).await?;
            return Err(e);
        }
        let _ = tokio::fs::remove_file(self.visits_file(hosting_id)).await;
        Ok(())
    }

    /// Hosting ids that have route files (for reconciliation).
    pub async fn list_routes(&self) -> Result<Vec<i32>, ProxyError> {
        let dir = self.sites();
        let mut out = Vec::new();
        let mut rd = match tokio::fs::read_dir(&dir).await {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io("reading", &dir, e)),
        };
        while let Some(entry) = rd.next_entry().await.map_err(|e| io("reading", &dir, e))? {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let id = name
                .strip_prefix("hosting-")
                .and_then(|r| r.strip_suffix(".locations.conf").or_else(|| r.strip_suffix(".server.conf")))
                .and_then(|n| n.parse::<i32>().ok());
            if let Some(id) = id {
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
        out.sort_unstable();
        Ok(out)
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
        let dir = self.inner.prefix.join("logs").join("visits");
        if let Ok(mut entries) = tokio::fs::read_dir(&dir).await {
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

    /// Whether nginx answers on its listen address (health checks).
    pub async fn is_running(&self) -> bool {
        self.running_pid().await.is_some()
    }

    /// `nginx -t`, then reload, then wait until the new configuration serves.
    async fn apply(&self) -> Result<(), ProxyError> {
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
    async fn signal(&self, sig: &'static str) -> Result<(), ProxyError> {
        let out = self.nginx().args(["-s", sig]).output().await.map_err(|source| ProxyError::Spawn { action: sig, source }.counted())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(ProxyError::Command { action: sig, status: out.status, stderr: String::from_utf8_lossy(&out.stderr).into_owned() }.counted())
        }
    }

    async fn running_pid(&self) -> Option<u32> {
        let pid: u32 = tokio::fs::read_to_string(self.inner.prefix.join("nginx.pid")).await.ok()?.trim().parse().ok()?;
        let cmdline = tokio::fs::read(format!("/proc/{pid}/cmdline")).await.ok()?;
        String::from_utf8_lossy(&cmdline).contains("nginx").then_some(pid)
    }

    /// Each change gets a number that nginx serves at /__vmw_generation, so a caller can wait
    /// until a reload has really taken effect (reload is asynchronous).
    /// Every change of the configuration holds this: the in-process lock, then an exclusive
    /// `flock` on `{prefix}/.lock`, so app replicas sharing the prefix (one nginx) change it one
    /// at a time too (and each waits for its own generation).
    async fn exclusive(&self) -> Exclusive<'_> {
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

    async fn write_generation(&self) -> Result<(), ProxyError> {
        let g = self.generation_label(self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1);
        let f = self.sites().join("_generation.locations.conf");
        write_atomic(&f, &format!("location = /__vmw_generation {{\n    allow 127.0.0.0/8;\n    deny all;\n    default_type text/plain;\n    return 200 \"{g}\";\n}}\n"))
            .await
    }

    async fn wait_generation(&self) {
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
}

impl Proxy {
    /// A generation of this process's (replicas sharing one nginx count their own).
    fn generation_label(&self, g: u64) -> String {
        format!("{}.{g}", std::process::id())
    }
}

/// Held while the configuration changes (see `Proxy::exclusive`).
struct Exclusive<'a> {
    _mutex: tokio::sync::MutexGuard<'a, ()>,
    _file: Option<std::fs::File>,
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

/// The last `[error]` line of nginx's log about this site's own upstream (`vmw_site_{id}` or its
/// `backend` address). The log is shared by every site and its lines carry other tenants'
/// visitors (addresses, URLs), so no other line may reach this site's owner. The request and
/// referrer fields are the client's text: a line with a second `upstream: "` is a forgery.
fn own_error_line<'a>(log: &'a str, hosting_id: i32, backend: &str) -> Option<&'a str> {
    let named = format!("vmw_site_{hosting_id}");
    log.lines().rev().filter(|l| l.contains("[error]")).find(|l| {
        let mut fields = l.split("upstream: \"").skip(1);
        let (Some(value), None) = (fields.next(), fields.next()) else { return false };
        let host = value.split('"').next().unwrap_or("").strip_prefix("http://").unwrap_or("");
        let host = host.split('/').next().unwrap_or("");
        host == named || host == backend
    })
}

async fn read_opt(p: &Path) -> Result<Option<String>, ProxyError> {
    match tokio::fs::read_to_string(p).await {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("reading", p, e)),
    }
}

/// Puts a file back as it was (None: removes it).
async fn restore(p: &Path, content: Option<String>) -> Result<(), ProxyError> {
    match content {
        Some(c) => write_atomic(p, &c).await,
        None => match tokio::fs::remove_file(p).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("removing", p, e)),
        },
    }
}

/// Write to a temporary file beside the target, then rename: readers never see half a file.
/// The temporary name does not end in `.conf`, so nginx's include globs never pick it up.
async fn write_atomic(p: &Path, content: &str) -> Result<(), ProxyError> {
    let tmp = p.with_extension("tmp");
    tokio::fs::write(&tmp, content).await.map_err(|e| io("writing", &tmp, e))?;
    tokio::fs::rename(&tmp, p).await.map_err(|e| io("renaming", p, e))
}

#[cfg(test)]
mod tests {
    use super::own_error_line;

    const OURS: &str = r#"2026/12/01 19:30:00 [error] 81#81: *7 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: _, request: "GET /alice/ HTTP/1.0", upstream: "http://127.0.0.1:30001/", host: "localhost""#;
    const OTHERS: &str = r#"2026/12/01 19:30:01 [error] 81#81: *9 upstream prematurely closed connection while reading response header from upstream, client: 203.0.113.9, server: bob.localhost, request: "GET /bob-secret-page?token=abc HTTP/1.1", upstream: "http://127.0.0.1:30002/bob-secret-page?token=abc", host: "bob.localhost""#;

    #[test]
    fn a_failed_route_shows_only_its_own_nginx_error_lines() {
        let log = format!("{OURS}\n{OTHERS}\n");
        assert_eq!(own_error_line(&log, 3, "127.0.0.1:30001"), Some(OURS), "the other site's later line is skipped");
        assert_eq!(own_error_line(&log, 5, "127.0.0.1:3000"), None, "port 3000 is not 30001");
        assert_eq!(own_error_line(OTHERS, 3, "127.0.0.1:30001"), None);
        let named = r#"2026/12/01 19:30:02 [error] 81#81: *11 no live upstreams while connecting to upstream, client: 127.0.0.1, server: _, request: "GET /alice/ HTTP/1.0", upstream: "http://vmw_site_3/", host: "localhost""#;
        assert_eq!(own_error_line(named, 3, "127.0.0.1:30001"), Some(named));
        assert_eq!(own_error_line(named, 31, "127.0.0.1:30031"), None, "vmw_site_3 is not vmw_site_31");
        // A visitor of another site cannot make its line look like ours.
        let forged = OTHERS.replace("?token=abc HTTP", "?\", upstream: \"http://127.0.0.1:30001/ HTTP");
        assert_eq!(own_error_line(&forged, 3, "127.0.0.1:30001"), None);
        let warn = OURS.replace("[error]", "[warn]");
        assert_eq!(own_error_line(&warn, 3, "127.0.0.1:30001"), None);
    }
}
