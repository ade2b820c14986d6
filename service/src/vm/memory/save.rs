//! Saving a VM's memory: a managed save (the next start restores it), a sleeping site's save
//! made small, and dropping a saved state.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::vm::{Doing, VmError, VmManager, golden};
use super::{compress, delta};

impl VmManager {
    /// Saves the running VM's memory to disk and stops it (frees its RAM); the next `start`
    /// restores it in well under a second.
    pub async fn managed_save(&self, hosting_id: i32) -> Result<(), VmError> {
        let name = self.domain_name(hosting_id);
        self.blocking(move |c| {
            let d = Self::existing(c, &name)?;
            d.managed_save(0).doing("save domain", &name)?;
            Ok(())
        })
        .await
    }

    /// A save for a site going to sleep, made small (README: the footprint settings): with
    /// `sleep_trim` the guest first drops its page cache ([`golden::SLEEP_TRIM`]; a guest that
    /// does not answer in time is saved as it is), and with
    /// `sleep_compress` the saved memory is then compressed ([`compress`]). Some(sizes) when
    /// it was compressed.
    pub async fn sleep_save(&self, hosting_id: i32) -> Result<Option<compress::Compressed>, VmError> {
        let name = self.domain_name(hosting_id);
        let (trim, shrink) = (self.inner.cfg.sleep_trim, self.shrink_against(hosting_id));
        // After the site's pending guest call (a tenant's stuck agent: saved untrimmed).
        let turn = if trim { self.inner.guest.turn(&name, Duration::from_secs(10)).await } else { None };
        if trim && turn.is_none() {
            tracing::warn!(domain = %name, "a guest call of the site is still pending: saved without trimming its memory");
        }
        self.blocking(move |c| {
            let d = Self::existing(c, &name)?;
            if let Some(_turn) = turn {
                let cmd = vec!["-c".into(), golden::SLEEP_TRIM.into()];
                if let Err(err) = Self::agent_run(&d, &name, "/bin/sh", cmd, Instant::now() + Duration::from_secs(10)) {
                    tracing::warn!(domain = %name, %err, "the guest did not trim its memory before the save (saved as it is)");
                }
            }
            d.managed_save(0).doing("save domain", &name)?;
            let Some(against) = shrink else { return Ok(None) };
            Ok(shrink_save_file(&compress::managed_save_path(&name), against.as_deref(), &name))
        })
        .await
    }

    /// Where a saved memory of this VM is stored small ([`shrink_save_file`]): the VM's folder
    /// when its memory may be a delta to its golden's (`sleep_delta`). None: not at all
    /// (`sleep_compress` off).
    pub(in crate::vm) fn shrink_against(&self, hosting_id: i32) -> Option<Option<PathBuf>> {
        let cfg = &self.inner.cfg;
        cfg.sleep_compress.then(|| cfg.sleep_delta.then(|| self.vm_dir(hosting_id)))
    }

    /// Drops a saved memory state, so the next start boots. None: fine.
    pub async fn discard_saved_state(&self, hosting_id: i32) -> Result<(), VmError> {
        let name = self.domain_name(hosting_id);
        self.blocking(move |c| {
            if let Some(d) = Self::lookup(c, &name)? {
                if d.has_managed_save(0).doing("look for a saved state of domain", &name)? {
                    d.managed_save_remove(0).doing("drop the saved state of domain", &name)?;
                }
            }
            Ok(())
        })
        .await
    }

    pub async fn has_managed_save(&self, hosting_id: i32) -> Result<bool, VmError> {
        let name = self.domain_name(hosting_id);
        self.blocking(move |c| match Self::lookup(c, &name)? {
            Some(d) => d.has_managed_save(0).doing("look for a saved state of domain", &name),
            None => Ok(false),
        })
        .await
    }

}


/// Rewrites the plain save file at `path` (of domain `name`) small: as its difference to the
/// golden's memory when `vm_dir` is given and holds a golden's clone ([`delta`]), else with
/// lzop ([`compress`]). None: left as it was (not a plain save, or it did not work: logged,
/// the plain file is still good).
pub(in crate::vm) fn shrink_save_file(path: &std::path::Path, vm_dir: Option<&std::path::Path>, name: &str) -> Option<compress::Compressed> {
    if let Some(reference) = vm_dir.and_then(delta::Reference::of_vm) {
        match delta::write_delta(path, &reference) {
            Ok(sizes) => return sizes,
            Err(err) => tracing::warn!(domain = %name, %err, "the saved memory is not stored as a delta (lzop instead)"),
        }
    }
    compress::compress_save_file(path)
        .inspect_err(|err| tracing::warn!(domain = %name, %err, "the saved memory stays uncompressed"))
        .ok()
        .flatten()
}


/// `virDomainSaveFlags` (the virt crate has no wrapper for it): the running domain's memory to
/// `path`; the domain stops.
pub(in crate::vm) fn save_domain(d: &virt::domain::Domain, name: &str, path: &Path) -> Result<(), VmError> {
    let to = std::ffi::CString::new(path.display().to_string()).map_err(|e| VmError::Invalid(e.to_string()))?;
    // SAFETY: `d` is a live domain handle for the duration of the call; `to` is a valid C string;
    // a null dxml means "keep the domain's XML".
    let rc = unsafe { virt::sys::virDomainSaveFlags(d.as_ptr(), to.as_ptr(), std::ptr::null(), 0) };
    if rc < 0 {
        crate::telemetry::libvirt_error("save domain");
        return Err(VmError::Libvirt { action: "save domain", domain: Some(name.to_owned()), source: virt::error::Error::last_error() });
    }
    Ok(())
}
