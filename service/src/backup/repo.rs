//! Where the backup repository is, as restic understands it, and how to reach it. Checked once,
//! before restic ever runs: the URL's scheme must be one restic 0.14 knows (a relative path
//! would silently land under the service's working directory), and the SFTP command restic
//! runs is given as a program and plain words, since restic splits it itself.
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::BackupError;

/// The storage backends restic 0.14 knows, by URL prefix (a plain absolute path is `local`).
const SCHEMES: &[&str] = &["local:", "sftp:", "rest:", "s3:", "b2:", "azure:", "gs:", "swift:", "rclone:"];

/// A restic repository and how to open it. Its `Debug` masks any password in the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RepoSettings {
    /// The repository as restic takes it: `/abs/folder`, `local:/abs/folder`,
    /// `sftp:user@host:/path`, `sftp://user@host:port//path`, `rest:http://127.0.0.1:8000/`,
    /// `s3:...`, `b2:...`, `azure:...`, `gs:...`, `swift:...`, `rclone:...`.
    pub url: String,
    /// The file holding the repository password (mode 0600). restic reads it itself
    /// (`RESTIC_PASSWORD_FILE`): the password is never in argv, a log or an error.
    pub password_file: PathBuf,
    /// For `sftp:` repositories: the command restic runs instead of its default `ssh HOST -s sftp`
    /// (a port, an identity file, a known-hosts file...).
    pub sftp_command: Option<SftpCommand>,
    /// restic's local cache of the repository's metadata (`RESTIC_CACHE_DIR`); makes listing and
    /// incremental backups fast. Safe to delete.
    pub cache_dir: PathBuf,
    /// How long each kind of call may run before restic is killed.
    pub timeouts: Timeouts,
    /// The restic binary (`restic`, found on PATH, unless set).
    pub program: PathBuf,
}

/// The command restic 0.14 runs to reach an SFTP server (`-o sftp.command=...`). It must speak
/// the SFTP protocol on stdin/stdout, e.g. `ssh -p 2222 -i KEY -o BatchMode=yes user@host -s sftp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SftpCommand {
    pub program: String,
    /// Plain words: restic splits the command line itself, so no word may hold spaces or quotes.
    pub args: Vec<String>,
}

/// Per-call time limits: a call that runs longer is killed and fails with
/// [`BackupError::TimedOut`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Listing, forgetting, unlocking, reading the config, stats: metadata only.
    pub metadata: Duration,
    /// Backups, restores, dumps, checks and prunes: they move or read data.
    pub data: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { metadata: Duration::from_secs(120), data: Duration::from_secs(6 * 3600) }
    }
}

impl std::fmt::Debug for RepoSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoSettings")
            .field("url", &self.redacted_url())
            .field("password_file", &self.password_file)
            .field("sftp_command", &self.sftp_command)
            .field("cache_dir", &self.cache_dir)
            .field("timeouts", &self.timeouts)
            .field("program", &self.program)
            .finish()
    }
}

impl RepoSettings {
    /// Settings with the default timeouts, no SFTP command and `restic` from PATH.
    pub fn new(url: impl Into<String>, password_file: impl Into<PathBuf>, cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            url: url.into(),
            password_file: password_file.into(),
            sftp_command: None,
            cache_dir: cache_dir.into(),
            timeouts: Timeouts::default(),
            program: PathBuf::from("restic"),
        }
    }

    /// Checks the URL, the SFTP command and the paths, without touching the repository.
    pub fn validate(&self) -> Result<(), BackupError> {
        validate_url(&self.url)?;
        if let Some(cmd) = &self.sftp_command {
            if !self.url.starts_with("sftp:") {
                return Err(BackupError::InvalidSettings("an SFTP command is set but the repository is not sftp:".into()));
            }
            cmd.validate()?;
        }
        if !self.password_file.is_absolute() {
            return Err(BackupError::InvalidSettings(format!(
                "the password file must be an absolute path, not {}",
                self.password_file.display()
            )));
        }
        if !self.cache_dir.is_absolute() {
            return Err(BackupError::InvalidSettings(format!(
                "the cache directory must be an absolute path, not {}",
                self.cache_dir.display()
            )));
        }
        if self.timeouts.metadata.is_zero() || self.timeouts.data.is_zero() {
            return Err(BackupError::InvalidSettings("timeouts must be longer than zero".into()));
        }
        Ok(())
    }

    /// The URL with any password in it masked (`rest:https://user:***@host/`), for logs and errors.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }

    /// The local folder of a `local` repository (plain path or `local:` URL), `None` otherwise.
    pub fn local_path(&self) -> Option<&Path> {
        let p = self.url.strip_prefix("local:").unwrap_or(&self.url);
        p.starts_with('/').then(|| Path::new(p))
    }

    /// Whether the repository shares the node's disk (a local folder): what the admin page warns
    /// about until an off-node repository is set.
    pub fn is_local(&self) -> bool {
        self.local_path().is_some()
    }
}

impl SftpCommand {
    pub fn new(program: impl Into<String>, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self { program: program.into(), args: args.into_iter().map(Into::into).collect() }
    }

    fn validate(&self) -> Result<(), BackupError> {
        for word in std::iter::once(&self.program).chain(&self.args) {
            if word.is_empty() || word.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\')) {
                return Err(BackupError::InvalidSettings(format!(
                    "SFTP command word {word:?} is empty or holds spaces, quotes or backslashes"
                )));
            }
        }
        Ok(())
    }

    /// The value of restic's `sftp.command` option.
    pub(crate) fn render(&self) -> String {
        std::iter::once(self.program.as_str()).chain(self.args.iter().map(String::as_str)).collect::<Vec<_>>().join(" ")
    }
}

fn validate_url(url: &str) -> Result<(), BackupError> {
    let bad = |why: &str| Err(BackupError::InvalidSettings(format!("repository URL {:?}: {why}", redact(url))));
    if url.is_empty() || url.len() > 2048 {
        return bad("empty or longer than 2048 bytes");
    }
    if url.chars().any(char::is_control) {
        return bad("holds control characters");
    }
    if url.starts_with('/') {
        return Ok(());
    }
    let Some(scheme) = SCHEMES.iter().find(|s| url.starts_with(**s)) else {
        return bad("not an absolute folder and not one of local:, sftp:, rest:, s3:, b2:, azure:, gs:, swift:, rclone:");
    };
    let rest = &url[scheme.len()..];
    match *scheme {
        "local:" if !rest.starts_with('/') => bad("a local repository must be an absolute path"),
        "rest:" if !(rest.starts_with("http://") || rest.starts_with("https://")) => bad("rest: must be followed by http:// or https://"),
        "sftp:" => {
            // `sftp://[user@]host[:port]//path` or `sftp:[user@]host:/path`.
            let ok = match rest.strip_prefix("//") {
                Some(r) => r.split_once('/').is_some_and(|(host, _)| !host.is_empty()),
                None => rest.split_once(':').is_some_and(|(host, path)| !host.is_empty() && !path.is_empty()),
            };
            if ok { Ok(()) } else { bad("sftp: must be sftp:user@host:/path or sftp://user@host:port//path") }
        }
        _ if rest.is_empty() || rest.starts_with('-') => bad("nothing after the scheme"),
        _ => Ok(()),
    }
}

/// Masks the password of a `scheme://user:password@host` part, wherever it is in the URL.
fn redact(url: &str) -> String {
    match password_range(url) {
        Some(r) => format!("{}***{}", &url[..r.start], &url[r.end..]),
        None => url.to_string(),
    }
}

/// Where the password of a `scheme://user:password@host` part is in the URL, if it has one.
pub(crate) fn password_range(url: &str) -> Option<std::ops::Range<usize>> {
    let start = url.find("://")? + 3;
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    let at = start + url[start..end].rfind('@')?;
    let colon = start + url[start..at].find(':')?;
    (colon + 1 < at).then_some(colon + 1..at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> RepoSettings {
        RepoSettings::new(url, "/etc/vmw/restic-password", "/var/cache/vmw/restic")
    }

    #[test]
    fn known_schemes_and_absolute_folders_are_accepted() {
        for url in [
            "/srv/backups/restic",
            "local:/srv/backups",
            "sftp:backup@store.example:/srv/restic",
            "sftp://backup@store.example:2222//srv/restic",
            "rest:http://127.0.0.1:8000/",
            "rest:https://user:secret@backup.example/repo/",
            "s3:s3.amazonaws.com/bucket/restic",
            "b2:bucket:restic",
            "rclone:remote:restic",
        ] {
            settings(url).validate().unwrap_or_else(|e| panic!("{url}: {e}"));
        }
    }

    #[test]
    fn relative_unknown_and_malformed_urls_are_refused() {
        for url in [
            "",
            "backups",
            "./backups",
            "local:backups",
            "ftp://host/x",
            "rest:127.0.0.1:8000",
            "sftp:host",
            "sftp::/path",
            "s3:",
            "b2:-x",
            "/srv/back\nups",
        ] {
            assert!(matches!(settings(url).validate(), Err(BackupError::InvalidSettings(_))), "{url:?} accepted");
        }
    }

    #[test]
    fn sftp_command_is_plain_words_and_only_for_sftp() {
        let mut s = settings("sftp:root@127.0.0.1:/srv/r");
        s.sftp_command = Some(SftpCommand::new("ssh", ["-p", "2222", "-i", "/k/id", "root@127.0.0.1", "-s", "sftp"]));
        s.validate().unwrap();
        assert_eq!(s.sftp_command.as_ref().unwrap().render(), "ssh -p 2222 -i /k/id root@127.0.0.1 -s sftp");
        s.sftp_command = Some(SftpCommand::new("ssh", ["-o", "ProxyCommand=sh -c x"]));
        assert!(s.validate().is_err());
        let mut local = settings("/srv/r");
        local.sftp_command = Some(SftpCommand::new("ssh", ["-s", "sftp"]));
        assert!(local.validate().is_err());
    }

    #[test]
    fn relative_password_file_is_refused() {
        let mut s = settings("/srv/r");
        s.password_file = "pw".into();
        assert!(s.validate().is_err());
    }

    #[test]
    fn credentials_in_urls_are_masked() {
        assert_eq!(redact("rest:https://user:secret@host:8000/repo/"), "rest:https://user:***@host:8000/repo/");
        assert_eq!(redact("rest:http://127.0.0.1:8000/"), "rest:http://127.0.0.1:8000/");
        assert_eq!(redact("sftp://backup@host//srv"), "sftp://backup@host//srv");
        assert_eq!(redact("/srv/restic"), "/srv/restic");
        assert!(!settings("rest:https://u:hunter2@h/").validate().is_err_and(|e| e.to_string().contains("hunter2")));
        assert!(!format!("{:?}", settings("rest:https://u:hunter2@h/")).contains("hunter2"));
    }

    #[test]
    fn local_repositories_are_told_apart() {
        assert!(settings("/srv/r").is_local());
        assert_eq!(settings("local:/srv/r").local_path(), Some(Path::new("/srv/r")));
        assert!(!settings("rest:http://127.0.0.1:1/").is_local());
    }
}
