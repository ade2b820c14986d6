//! The node behind the libvirt connection: its health, its identity, whether it shares the
//! app's folder, and marks that tell whether two URIs reach one daemon.
use std::path::PathBuf;

use virt::error::ErrorNumber;

use super::{Doing, VmError, VmManager, io};

impl VmManager {
    /// Connects (or checks the live connection) and answers the hypervisor's libvirt version
    /// ("9.0.0") and whether the guest image is there. On a `test:` URI the image is not looked
    /// for; on any other the image's disk must be a volume of one of the node's storage pools
    /// (`virsh pool-define-as vmw-images dir --target DIR` on the node, where DIR holds the image
    /// at the same path as here).
    pub async fn health(&self) -> Result<(String, Result<(), String>), VmError> {
        let image = self.inner.cfg.guest_image_dir.join("base.qcow2");
        let test = self.inner.cfg.libvirt_uri.starts_with("test:");
        self.blocking(move |conn| {
            let v = conn.lib_version().doing_host("read the libvirt version")?;
            let version = format!("{}.{}.{}", v / 1_000_000, (v / 1000) % 1000, v % 1000);
            if test {
                return Ok((version, Ok(())));
            }
            // The pool lists the image at its real path (the image folder is often a symlink).
            let path = image.canonicalize().or_else(|_| std::path::absolute(&image)).unwrap_or(image);
            let path = path.to_string_lossy().into_owned();
            let found = match conn.lookup_storage_vol_by_path(&path) {
                Ok(_) => Ok(()),
                Err(e) => Err(format!("the guest image {path} is not a volume of a storage pool on the node: {}", e.message())),
            };
            Ok((version, found))
        })
        .await
    }

    /// Whether the node sees `dir` of this host at the same path (shared storage): the folder
    /// where the app writes a node's overlay disks, seeds and saved states. A file made here
    /// under a random name must be found there, by a throwaway storage pool on `dir` made over
    /// the node's connection (refreshed, looked up, destroyed). On a `test:` URI nothing is
    /// looked for. `Ok(Err(why))` when the node answers but does not share it.
    pub async fn check_shared_folder(&self, dir: PathBuf) -> Result<Result<(), String>, VmError> {
        if self.inner.cfg.libvirt_uri.starts_with("test:") {
            return Ok(Ok(()));
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        let marker = format!("vmw-shared-check-{token}");
        self.blocking(move |conn| {
            // The file here (on the blocking pool, like the libvirt calls), removed again below.
            std::fs::create_dir_all(&dir).map_err(io("making the node folder", &dir))?;
            let dir = dir.canonicalize().map_err(io("resolving the node folder", &dir))?;
            let file = dir.join(&marker);
            std::fs::write(&file, b"vm-webhoster: a node's folder must be shared\n")
                .map_err(io("writing the shared-folder check", &file))?;
            let shown = dir.display().to_string();
            let xml = format!(
                "<pool type='dir'><name>vmw-check-{token}</name><target><path>{}</path></target></pool>",
                crate::escape::markup(&dir.to_string_lossy())
            );
            let not_shared = |why: String| {
                format!(
                    "the node does not see {shown} (this host's folder for the node's VM files, which must be shared storage at the same path there): {why}"
                )
            };
            let res = match conn.create_storage_pool_xml(&xml, 0) {
                Err(e) => Err(not_shared(e.message().to_owned())),
                Ok(pool) => {
                    let res = match pool.refresh(0) {
                        Err(e) => Err(not_shared(e.message().to_owned())),
                        Ok(_) => match pool.lookup_storage_vol_by_name(&marker) {
                            Ok(_) => Ok(()),
                            Err(_) => Err(not_shared(format!("a file written there now ({marker}) is not there on the node"))),
                        },
                    };
                    let _ = pool.destroy();
                    res
                }
            };
            let _ = std::fs::remove_file(&file);
            Ok(res)
        })
        .await
    }

    /// What the node's libvirt daemon says it is, whatever URI reached it: its driver and its
    /// host's name, from the daemon's own answers (kept in the node's row for the operator).
    /// Not its capabilities (host UUID, security labels): over `qemu+libssh` that reply never
    /// arrived (libvirt 9.0), which hung the add, and they cannot tell root's `/session` from
    /// `/system` anyway: whether two URIs reach one daemon is told by [`Self::mark_daemon`].
    /// libvirt's test driver lives in this process: each `test:///FILE.xml` is a driver of its
    /// own, so its URI is part of it.
    pub async fn identity(&self) -> Result<String, VmError> {
        self.blocking(|c| {
            let kind = c.driver_type().doing_host("read the driver type")?;
            let hostname = c.hostname().doing_host("read the host name")?;
            let mut id = format!("{}|name={}", kind.to_ascii_lowercase(), hostname.trim());
            if kind.eq_ignore_ascii_case("test") {
                let uri = c.uri().doing_host("read the URI")?;
                id.push_str(&format!("|uri={}", uri.split('?').next().unwrap_or_default()));
            }
            Ok(id)
        })
        .await
    }

    /// Leaves a mark on the node's daemon that any connection to that daemon sees: a transient
    /// storage pool (no file is written, it is gone once destroyed or the daemon restarts) named
    /// `vmw-daemon-{token}` on `dir` (a folder the node sees: its shared node folder). Two
    /// URIs reach one daemon exactly when one sees the other's mark ([`Self::sees_mark`]); the
    /// daemon's host and labels ([`Self::identity`]) cannot tell root's `/session` daemon from
    /// `/system` on one host. Returns the mark's name.
    pub async fn mark_daemon(&self, dir: PathBuf) -> Result<String, VmError> {
        let name = format!("vmw-daemon-{}", uuid::Uuid::new_v4().simple());
        let xml = format!(
            "<pool type='dir'><name>{name}</name><target><path>{}</path></target></pool>",
            crate::escape::markup(&dir.to_string_lossy())
        );
        self.blocking(move |c| {
            c.create_storage_pool_xml(&xml, 0).doing_host("make a transient storage pool")?;
            Ok(name)
        })
        .await
    }

    /// Whether this node's daemon has the mark `name` ([`Self::mark_daemon`]).
    pub async fn sees_mark(&self, name: &str) -> Result<bool, VmError> {
        let name = name.to_owned();
        self.blocking(move |c| match c.lookup_storage_pool_by_name(&name) {
            Ok(_) => Ok(true),
            Err(e) if e.code() == ErrorNumber::NoStoragePool.into() => Ok(false),
            Err(e) => Err(e).doing_host("look up a storage pool"),
        })
        .await
    }

    /// Removes the mark `name`. Missing: fine.
    pub async fn unmark_daemon(&self, name: &str) -> Result<(), VmError> {
        let name = name.to_owned();
        self.blocking(move |c| {
            if let Ok(p) = c.lookup_storage_pool_by_name(&name) {
                p.destroy().doing_host("remove a transient storage pool")?;
            }
            Ok(())
        })
        .await
    }
}
