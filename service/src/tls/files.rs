//! The certificate files nginx reads: `{data_dir}/tls/certs/{label}/{fullchain.pem,key.pem}`.
//! The sites' certificates are read by nginx's workers at each handshake (one shared HTTPS
//! server, `service::proxy`), so when we run as root (nginx's workers then run as www-data) keys
//! are 0640 and directories 0750, group www-data: readable by root and nginx's workers only.
//! Otherwise (tests, a non-root install: the workers run as we do) 0600 and 0700. Each file is
//! written to a temporary name and renamed, the key before the chain, so nginx never reads a
//! half-written file and the handshake or reload that follows a save finds the new key next to
//! the new chain.
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{IssuedCert, TlsError, validity};
use crate::proxy::CertPaths;

const CHAIN: &str = "fullchain.pem";
const KEY: &str = "key.pem";

/// The certificates on disk, one directory per label ("dashboard", "sites", "domain-12").
#[derive(Clone, Debug)]
pub struct CertStore {
    root: PathBuf,
}

/// A label is a directory name: `[a-z0-9-]`, 1 to 64 characters.
pub fn validate_label(label: &str) -> Result<(), TlsError> {
    let ok = (1..=64).contains(&label.len()) && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok { Ok(()) } else { Err(TlsError::InvalidLabel(label.to_string())) }
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> TlsError {
    let path = path.to_path_buf();
    move |source| TlsError::Io { what, path, source }
}

/// Creates `dir` and its missing parents with mode 0700 (and tightens it if it exists).
pub(crate) fn private_dir(dir: &Path) -> Result<(), TlsError> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io("creating", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io("setting the mode of", dir))
}

/// The group that may read the certificates' keys besides their owner: nginx's workers', when
/// we run as root. None: nobody else.
fn worker_group() -> Option<u32> {
    crate::proxy::worker_ids().map(|(_, gid)| gid)
}

/// Creates `dir` (and missing parents, 0700) readable by nginx's workers: 0750 with their
/// group when there is one, else 0700 like `private_dir`.
fn workers_dir(dir: &Path, group: Option<u32>) -> Result<(), TlsError> {
    let Some(gid) = group else { return private_dir(dir) };
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io("creating", dir))?;
    std::os::unix::fs::chown(dir, None, Some(gid)).map_err(io("setting the group of", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o750)).map_err(io("setting the mode of", dir))
}

/// Writes `path` through a temporary file in the same directory, then renames it over.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    write_atomic_group(path, contents, mode, None)
}

/// `write_atomic`, the file in `group` (set before the rename: never seen without it).
fn write_atomic_group(path: &Path, contents: &[u8], mode: u32, group: Option<u32>) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp).map_err(io("creating", &tmp))?;
    if let Some(gid) = group {
        std::os::unix::fs::fchown(&f, None, Some(gid)).map_err(io("setting the group of", &tmp))?;
    }
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(io("setting the mode of", &tmp))?;
    f.write_all(contents).and_then(|()| f.sync_all()).map_err(io("writing", &tmp))?;
    fs::rename(&tmp, path).map_err(io("renaming", &tmp))
}

impl CertStore {
    /// The store under `{data_dir}/tls/certs`. Nothing is created until a save.
    pub fn new(data_dir: &Path) -> Self {
        Self { root: data_dir.join("tls").join("certs") }
    }

    /// Where the files of `label` are (whether they exist or not).
    pub fn files(&self, label: &str) -> Result<CertPaths, TlsError> {
        validate_label(label)?;
        let dir = self.root.join(label);
        Ok(CertPaths { chain: dir.join(CHAIN), key: dir.join(KEY) })
    }

    /// Writes the certificate of `label`: key first (0640 group www-data as root, else 0600),
    /// then the chain.
    pub fn save(&self, label: &str, cert: &IssuedCert) -> Result<CertPaths, TlsError> {
        self.save_for(label, cert, worker_group())
    }

    /// `save` with the keys' group given (None: keys private to their owner).
    fn save_for(&self, label: &str, cert: &IssuedCert, group: Option<u32>) -> Result<CertPaths, TlsError> {
        let paths = self.files(label)?;
        self.dirs_for(label, group)?;
        let mode = if group.is_some() { 0o640 } else { 0o600 };
        write_atomic_group(&paths.key, cert.key_pem.as_bytes(), mode, group)?;
        write_atomic(&paths.chain, cert.chain_pem.as_bytes(), 0o644)?;
        tracing::info!(label, not_after = %cert.not_after, "certificate saved");
        Ok(paths)
    }

    /// `{data_dir}/tls`, `certs` and the label's directory, open to nginx's workers' group
    /// (`{data_dir}/tls` holds the local CA's own 0700 directory: its key stays root's).
    fn dirs_for(&self, label: &str, group: Option<u32>) -> Result<(), TlsError> {
        if let Some(tls) = self.root.parent() {
            workers_dir(tls, group)?;
        }
        workers_dir(&self.root, group)?;
        workers_dir(&self.root.join(label), group)
    }

    /// Hands every stored key to nginx's workers (or back to its owner only), as `save` writes
    /// them: at start-up, for keys an earlier version saved 0600 (the shared HTTPS server reads
    /// them at handshakes as www-data).
    pub fn share_with_workers(&self) -> Result<(), TlsError> {
        let group = worker_group();
        let Ok(entries) = fs::read_dir(&self.root) else { return Ok(()) };
        for e in entries.flatten() {
            let label = e.file_name().to_string_lossy().into_owned();
            if validate_label(&label).is_err() || !e.path().is_dir() {
                continue;
            }
            self.dirs_for(&label, group)?;
            let key = self.files(&label)?.key;
            if key.is_file() {
                if let Some(gid) = group {
                    std::os::unix::fs::chown(&key, None, Some(gid)).map_err(io("setting the group of", &key))?;
                }
                let mode = if group.is_some() { 0o640 } else { 0o600 };
                fs::set_permissions(&key, fs::Permissions::from_mode(mode)).map_err(io("setting the mode of", &key))?;
            }
        }
        Ok(())
    }

    /// The certificate of `label`, validity read from the chain; None when there is none.
    pub fn load(&self, label: &str) -> Result<Option<IssuedCert>, TlsError> {
        let paths = self.files(label)?;
        let chain_pem = match fs::read_to_string(&paths.chain) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("reading", &paths.chain)(e)),
        };
        let key_pem = match fs::read_to_string(&paths.key) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("reading", &paths.key)(e)),
        };
        let (not_before, not_after) = validity::validity(&chain_pem)?;
        Ok(Some(IssuedCert { chain_pem, key_pem, not_before, not_after }))
    }

    /// Deletes the certificate of `label` (nothing to do when there is none).
    pub fn remove(&self, label: &str) -> Result<(), TlsError> {
        validate_label(label)?;
        let dir = self.root.join(label);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("removing", &dir)(e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_plain_directory_names() {
        for ok in ["dashboard", "sites", "domain-12", &"a".repeat(64)] {
            validate_label(ok).unwrap();
        }
        for bad in ["", "..", "a/b", "Dash", "a.b", "a b", &"a".repeat(65)] {
            assert!(matches!(validate_label(bad), Err(TlsError::InvalidLabel(_))), "{bad}");
        }
    }

    /// What nginx reads after a save: the chain and the key as issued, the key 0600 in 0700
    /// directories when nginx's workers run as we do (not root); a load gives the same
    /// certificate back, a removal leaves nothing.
    #[test]
    fn saved_certificates_load_back_and_keys_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let tmp = tempfile::tempdir().unwrap();
        let ca = super::super::LocalCa::load_or_create(&tmp.path().join("ca")).unwrap();
        let cert = ca.issue(&["localhost".to_string()]).unwrap();
        let store = CertStore::new(tmp.path());
        assert!(store.load("dashboard").unwrap().is_none());
        let paths = store.save_for("dashboard", &cert, None).unwrap();
        assert_eq!(paths, store.files("dashboard").unwrap());
        assert_eq!(paths.chain, tmp.path().join("tls/certs/dashboard/fullchain.pem"));
        assert_eq!(mode(&paths.key), 0o600);
        assert_eq!(mode(paths.key.parent().unwrap()), 0o700);
        assert_eq!(mode(&tmp.path().join("tls/certs")), 0o700);
        let loaded = store.load("dashboard").unwrap().unwrap();
        assert_eq!((loaded.chain_pem.as_str(), loaded.key_pem.as_str()), (cert.chain_pem.as_str(), cert.key_pem.as_str()));
        assert_eq!((loaded.not_before, loaded.not_after), (cert.not_before, cert.not_after));
        // A renewal replaces both files.
        let renewed = ca.issue(&["localhost".to_string()]).unwrap();
        store.save_for("dashboard", &renewed, None).unwrap();
        assert_eq!(fs::read_to_string(&paths.key).unwrap(), renewed.key_pem);
        assert_eq!(fs::read_dir(paths.key.parent().unwrap()).unwrap().count(), 2, "no temporary files left");
        store.remove("dashboard").unwrap();
        assert!(store.load("dashboard").unwrap().is_none());
        store.remove("dashboard").unwrap();
        assert!(matches!(store.save("../x", &cert), Err(TlsError::InvalidLabel(_))));
    }

    /// As root, nginx's workers (www-data) read the sites' keys at handshakes: keys 0640 and
    /// directories 0750 in their group, nobody else; the local CA's key stays 0600 in 0700.
    #[test]
    fn as_root_keys_are_readable_by_root_and_nginxs_workers_only() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = |p: &Path| fs::metadata(p).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let ca = super::super::LocalCa::load_or_create(&tmp.path().join("tls/ca")).unwrap();
        let cert = ca.issue(&["localhost".to_string()]).unwrap();
        let store = CertStore::new(tmp.path());
        let Some(gid) = worker_group() else {
            // Not root: the workers run as we do, nothing is shared.
            let paths = store.save("sites", &cert).unwrap();
            assert_eq!(meta(&paths.key).permissions().mode() & 0o777, 0o600);
            return;
        };
        let paths = store.save("sites", &cert).unwrap();
        assert_eq!((meta(&paths.key).permissions().mode() & 0o777, meta(&paths.key).gid()), (0o640, gid));
        for d in [paths.key.parent().unwrap(), &tmp.path().join("tls/certs"), &tmp.path().join("tls")] {
            assert_eq!((meta(d).permissions().mode() & 0o777, meta(d).gid()), (0o750, gid), "{}", d.display());
        }
        let ca_dir = tmp.path().join("tls/ca");
        assert_eq!(meta(&ca_dir).permissions().mode() & 0o777, 0o700);
        let keys: Vec<_> = fs::read_dir(&ca_dir).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().contains("key")).collect();
        assert!(!keys.is_empty());
        for e in keys {
            assert_eq!(meta(&e.path()).permissions().mode() & 0o777, 0o600, "{}", e.path().display());
        }
        // A key an earlier version saved private is handed over at start-up.
        let old = store.save_for("domain-1", &cert, None).unwrap();
        assert_eq!(meta(&old.key).permissions().mode() & 0o777, 0o600);
        store.share_with_workers().unwrap();
        assert_eq!((meta(&old.key).permissions().mode() & 0o777, meta(&old.key).gid()), (0o640, gid));
    }
}
