//! Running one restic process: the environment that carries the repository and the password
//! file, stdin fed or closed, stdout parsed or streamed, a bounded tail of stderr kept for the
//! error, a timeout, and the exit sorted into a [`BackupError`]. The child is killed when the
//! future is dropped (`kill_on_drop`), so cancelling a backup stops restic; the lock it leaves
//! is stale and [`super::Restic::unlock`] removes it.
use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::Command;

use super::error::BackupError;
use super::repo::{password_range, RepoSettings};

/// How much of restic's stderr an error keeps (its last bytes: the fatal message is at the end).
const STDERR_TAIL: usize = 4096;
/// The longest stdout collected whole (`snapshots --json` of a large repository fits easily).
const COLLECT_LIMIT: usize = 64 << 20;
/// The longest single `--json` line read.
const LINE_LIMIT: usize = 1 << 20;
/// Progress lines per second restic prints with `--json` (its default is 60).
const PROGRESS_FPS: &str = "4";

/// What restic reads on stdin.
pub(crate) enum Input<'a> {
    Closed,
    Reader(&'a mut (dyn AsyncRead + Unpin + Send)),
}

/// What is done with restic's stdout.
pub(crate) enum Output<'a> {
    Ignore,
    /// The whole output (bounded by [`COLLECT_LIMIT`]).
    Collect(&'a mut Vec<u8>),
    /// Each line, as it arrives; an error stops restic.
    Lines(&'a mut (dyn FnMut(&str) -> Result<(), BackupError> + Send)),
    /// Streamed to a writer (a `dump`); returns the bytes written.
    Writer(&'a mut (dyn AsyncWrite + Unpin + Send)),
}

/// One restic invocation.
pub(crate) struct Call<'a> {
    pub verb: &'static str,
    /// Flags after the verb.
    pub flags: Vec<String>,
    /// Arguments after `--` (paths, snapshot ids): never read as flags.
    pub positional: Vec<OsString>,
    pub timeout: Duration,
    pub input: Input<'a>,
    pub output: Output<'a>,
    /// Exit codes that are not failures (`backup`: 3, "some files could not be read").
    pub ok_codes: &'static [i32],
}

impl<'a> Call<'a> {
    pub fn new(verb: &'static str, timeout: Duration) -> Self {
        Self { verb, flags: Vec::new(), positional: Vec::new(), timeout, input: Input::Closed, output: Output::Ignore, ok_codes: &[0] }
    }
}

/// How restic ended (when it ended well, or with one of `ok_codes`).
#[derive(Debug)]
pub(crate) struct Finished {
    pub code: i32,
    pub stderr: String,
    /// Bytes of stdout written to an [`Output::Writer`].
    pub written: u64,
}

pub(crate) async fn run(settings: &RepoSettings, call: Call<'_>) -> Result<Finished, BackupError> {
    let Call { verb, flags, positional, timeout, mut input, mut output, ok_codes } = call;
    let mut cmd = Command::new(&settings.program);
    cmd.arg(verb).args(&flags);
    if let Some(sftp) = &settings.sftp_command {
        cmd.arg("-o").arg(format!("sftp.command={}", sftp.render()));
    }
    if !positional.is_empty() {
        cmd.arg("--").args(&positional);
    }
    // The repository and the password file only through the environment (not in `ps`); any
    // inherited restic settings that could point elsewhere are dropped.
    for var in ["RESTIC_PASSWORD", "RESTIC_PASSWORD_COMMAND", "RESTIC_REPOSITORY_FILE", "RESTIC_KEY_HINT", "RESTIC_PACK_SIZE"] {
        cmd.env_remove(var);
    }
    cmd.env("RESTIC_REPOSITORY", &settings.url)
        .env("RESTIC_PASSWORD_FILE", &settings.password_file)
        .env("RESTIC_CACHE_DIR", &settings.cache_dir)
        .env("RESTIC_PROGRESS_FPS", PROGRESS_FPS)
        .stdin(if matches!(input, Input::Closed) { Stdio::null() } else { Stdio::piped() })
        .stdout(if matches!(output, Output::Ignore) { Stdio::null() } else { Stdio::piped() })
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // restic dies with the service: a service killed outright (SIGKILL, the OOM killer) must
    // not leave a restic writing on, behind the back of the next start's clean-up.
    // SAFETY: prctl is async-signal-safe and touches nothing of the parent's.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }

    let started = Instant::now();
    let repo = settings.redacted_url();
    tracing::debug!(verb, repo = %repo, "restic starting");
    let mut child = cmd.spawn().map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
            BackupError::ResticMissing { program: settings.program.clone(), source }
        }
        _ => BackupError::io("starting", &settings.program, source),
    })?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let mut stderr = child.stderr.take().expect("stderr is piped");

    let mut tail = Vec::new();
    let work = async {
        // restic may stop reading stdin before the end (a wrong password, a full disk): a broken
        // pipe is then not the story, its exit code and stderr are.
        let feed = async {
            if let (Input::Reader(reader), Some(mut w)) = (&mut input, stdin) {
                let res = tokio::io::copy(reader, &mut w).await;
                let res = match res {
                    Ok(_) => w.shutdown().await,
                    Err(e) => Err(e),
                };
                drop(w);
                return res.err();
            }
            None
        };
        let read_out = async {
            let Some(out) = stdout else { return Ok(0) };
            read_stdout(verb, out, &mut output).await
        };
        let read_err = async {
            let mut buf = [0u8; 8192];
            loop {
                match stderr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        tail.extend_from_slice(&buf[..n]);
                        if tail.len() > 2 * STDERR_TAIL {
                            tail.drain(..tail.len() - STDERR_TAIL);
                        }
                    }
                }
            }
        };
        // An output error (a line restic should not print, a writer that fails) ends the wait
        // early; restic is then killed below.
        let (feed_err, written, ()) = tokio::try_join!(async { Ok(feed.await) }, read_out, async {
            read_err.await;
            Ok(())
        })?;
        let status = child.wait().await.map_err(|e| BackupError::io("waiting for", &settings.program, e))?;
        Ok::<_, BackupError>((feed_err, written, status))
    };
    let result = tokio::time::timeout(timeout, work).await;
    let elapsed = started.elapsed();
    let stderr_text = mask(settings, &tail);
    let (feed_err, written, status) = match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            let _ = child.kill().await;
            tracing::warn!(verb, repo = %repo, error = %e, "restic stopped: its output could not be handled");
            return Err(e);
        }
        Err(_) => {
            let _ = child.kill().await;
            tracing::warn!(verb, repo = %repo, secs = elapsed.as_secs(), "restic timed out, killed");
            return Err(BackupError::TimedOut { verb, after: timeout });
        }
    };
    if let Some(signal) = status.signal() {
        tracing::warn!(verb, repo = %repo, signal, "restic killed by a signal");
        return Err(BackupError::Killed { verb, signal });
    }
    let code = status.code().unwrap_or(-1);
    if !ok_codes.contains(&code) {
        let err = classify(settings, verb, code, stderr_text);
        tracing::warn!(verb, repo = %repo, code, ms = elapsed.as_millis() as u64, error = %err, "restic failed");
        return Err(err);
    }
    if let Some(e) = feed_err {
        return Err(BackupError::io("feeding restic's stdin from", "[input stream]", e));
    }
    tracing::info!(verb, repo = %repo, code, ms = elapsed.as_millis() as u64, "restic done");
    Ok(Finished { code, stderr: stderr_text, written })
}

async fn read_stdout(verb: &'static str, out: tokio::process::ChildStdout, output: &mut Output<'_>) -> Result<u64, BackupError> {
    match output {
        Output::Ignore => Ok(0),
        Output::Collect(buf) => {
            let mut limited = out.take(COLLECT_LIMIT as u64 + 1);
            limited.read_to_end(buf).await.map_err(|e| BackupError::io("reading restic's output", "[stdout]", e))?;
            if buf.len() > COLLECT_LIMIT {
                return Err(BackupError::Parse { verb, line: String::new(), detail: format!("output longer than {COLLECT_LIMIT} bytes") });
            }
            Ok(buf.len() as u64)
        }
        Output::Lines(on_line) => {
            let mut reader = BufReader::new(out);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = (&mut reader)
                    .take(LINE_LIMIT as u64 + 1)
                    .read_until(b'\n', &mut line)
                    .await
                    .map_err(|e| BackupError::io("reading restic's output", "[stdout]", e))?;
                if n == 0 {
                    return Ok(0);
                }
                if line.len() > LINE_LIMIT {
                    return Err(BackupError::Parse { verb, line: String::new(), detail: format!("a line longer than {LINE_LIMIT} bytes") });
                }
                let text = String::from_utf8_lossy(&line);
                let text = text.trim();
                if !text.is_empty() {
                    on_line(text)?;
                }
            }
        }
        Output::Writer(w) => {
            let mut out = out;
            let n = tokio::io::copy(&mut out, w).await.map_err(|e| BackupError::io("writing restic's output to", "[output stream]", e))?;
            w.flush().await.map_err(|e| BackupError::io("writing restic's output to", "[output stream]", e))?;
            Ok(n)
        }
    }
}

/// restic 0.14 exits with 1 for every fatal error: its message says which.
fn classify(settings: &RepoSettings, verb: &'static str, code: i32, stderr: String) -> BackupError {
    if stderr.contains("wrong password or no key found") {
        BackupError::WrongPassword
    } else if stderr.contains("repository is already locked") || stderr.contains("unable to create lock") {
        BackupError::Locked { detail: last_lines(&stderr, 4) }
    } else if stderr.contains("Is there a repository at the following location?")
        || stderr.contains("unable to open config file")
        || stderr.contains("config file does not exist")
    {
        BackupError::NotInitialised { url: settings.redacted_url(), detail: last_lines(&stderr, 3) }
    } else {
        BackupError::Failed { verb, code, stderr: last_lines(&stderr, 20) }
    }
}

/// The stderr tail as text, with the URL's password (if it has one) masked.
fn mask(settings: &RepoSettings, tail: &[u8]) -> String {
    let start = tail.len().saturating_sub(STDERR_TAIL);
    let mut text = String::from_utf8_lossy(&tail[start..]).into_owned();
    let redacted = settings.redacted_url();
    if redacted != settings.url {
        text = text.replace(&settings.url, &redacted);
        if let Some(secret) = password_range(&settings.url) {
            text = text.replace(&settings.url[secret], "***");
        }
    }
    text
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> RepoSettings {
        RepoSettings::new(url, "/pw", "/cache")
    }

    #[test]
    fn fatal_messages_of_restic_0_14_are_sorted() {
        let s = settings("/srv/r");
        assert!(matches!(classify(&s, "snapshots", 1, "Fatal: wrong password or no key found\n".into()), BackupError::WrongPassword));
        let locked = "unable to create lock in backend: repository is already locked by PID 25018 on vm by root (UID 0, GID 0)\nlock was created at 2026-12-07 22:21:51 (4.39s ago)\nstorage ID b7d9c379\nthe `unlock` command can be used to remove stale locks\n";
        assert!(matches!(classify(&s, "check", 1, locked.into()), BackupError::Locked { detail } if detail.contains("unlock")));
        let missing = "Fatal: unable to open config file: stat /srv/r/config: no such file or directory\nIs there a repository at the following location?\n/srv/r\n";
        assert!(matches!(classify(&s, "snapshots", 1, missing.into()), BackupError::NotInitialised { .. }));
        assert!(matches!(classify(&s, "backup", 1, "Fatal: something else".into()), BackupError::Failed { code: 1, .. }));
    }

    #[test]
    fn url_passwords_never_reach_errors() {
        let s = settings("rest:https://u:hunter2@h/r/");
        let text = mask(&s, b"Fatal: rest:https://u:hunter2@h/r/ said no to hunter2");
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(password_range("rest:http://127.0.0.1:80/"), None);
    }

    #[test]
    fn stderr_tail_is_bounded() {
        let s = settings("/srv/r");
        let long = "x".repeat(3 * STDERR_TAIL);
        assert_eq!(mask(&s, long.as_bytes()).len(), STDERR_TAIL);
    }
}
