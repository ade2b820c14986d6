//! The certificate files nginx reads: `{data_dir}/tls/certs/{label}/{fullchain.pem,key.pem}`.
//! Directories are 0700 and keys 0600; each file is written to a temporary name and renamed,
//! the key before the chain, so nginx never reads a half-written file and the reload that
//! follows a save finds the new key next to the new chain.
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

/// Writes `path` through a temporary file in the same directory, then renames it over.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp).map_err(io("creating", &tmp))?;
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

    /// Writes the certificate of `label`: key (0600) first, then the chain.
    pub fn save(&self, label: &str, cert: &IssuedCert) -> Result<CertPaths, TlsError> {
        let paths = self.files(label)?;
        private_dir(&self.root)?;
        private_dir(&self.root.join(label))?;
        write_atomic(&paths.key, cert.key_pem.as_bytes(), 0o600)?;
        write_atomic(&paths.chain, cert.chain_pem.as_bytes(), 0o644)?;
        tracing::info!(label, not_after = %cert.not_after, "certificate saved");
        Ok(paths)
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
    /// directories; a load gives the same certificate back, a removal leaves nothing.
    #[test]
    fn saved_certificates_load_back_and_keys_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let tmp = tempfile::tempdir().unwrap();
        let ca = super::super::LocalCa::load_or_create(&tmp.path().join("ca")).unwrap();
        let cert = ca.issue(&["localhost".to_string()]).unwrap();
        let store = CertStore::new(tmp.path());
        assert!(store.load("dashboard").unwrap().is_none());
        let paths = store.save("dashboard", &cert).unwrap();
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
        store.save("dashboard", &renewed).unwrap();
        assert_eq!(fs::read_to_string(&paths.key).unwrap(), renewed.key_pem);
        assert_eq!(fs::read_dir(paths.key.parent().unwrap()).unwrap().count(), 2, "no temporary files left");
        store.remove("dashboard").unwrap();
        assert!(store.load("dashboard").unwrap().is_none());
        store.remove("dashboard").unwrap();
        assert!(matches!(store.save("../x", &cert), Err(TlsError::InvalidLabel(_))));
    }
}
