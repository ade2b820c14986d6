//! Restoring saved memory fed through a pipe (a delta expanded while libvirt reads it), and
//! finishing a wake that a process that died left halfway.
use std::path::Path;
use std::time::Instant;

use virt::connect::Connect;
use virt::domain::Domain;

use crate::vm::{Doing, VmError, VmManager, VmState, map_state};
use super::{compress, delta, wake_feed};

impl VmManager {
    /// Restores the domain paused from `feed` (its sleeping memory, expanded while libvirt
    /// reads it) with the domain XML `xml` (ABI-checked by libvirt against the saved one). Only
    /// when the whole memory was expanded right does it drop the sleeping save, and only then
    /// let the guest run: once it has run, no saved memory older than its disk is left to
    /// restore. Anything else stops the domain again before it ran (the sleeping save stays good).
    pub(in crate::vm) fn restore_fed(c: &Connect, d: &Domain, name: &str, feed: wake_feed::Feed, xml: &str, t: Instant) -> Result<(), VmError> {
        let restored_ms = Self::restore_paused_checked(c, d, name, feed, Some(xml), "restore the saved memory of domain", t)?;
        if let Err(e) = d.managed_save_remove(0).doing("drop the saved state of domain", name) {
            let _ = d.destroy();
            return Err(e);
        }
        let dropped_ms = t.elapsed().as_millis() as u64;
        d.resume().doing("resume domain", name)?;
        tracing::debug!(domain = %name, restored_ms, dropped_ms, started_ms = t.elapsed().as_millis() as u64, "domain started from its delta");
        Ok(())
    }

    /// Restores domain `d` paused from `feed` (a delta expanded while libvirt reads it) with the
    /// domain XML `xml` (None: the one saved with it; ABI-checked by libvirt against it), and
    /// checks what it was fed: Ok once the whole stream matched its checksum, else the domain is
    /// stopped again before it ran. Returns when the restore returned, in ms from `t`.
    pub(in crate::vm) fn restore_paused_checked(c: &Connect, d: &Domain, name: &str, feed: wake_feed::Feed, xml: Option<&str>, what: &'static str, t: Instant) -> Result<u64, VmError> {
        let restored = c.restore_domain_flags(&feed.path().display().to_string(), xml, virt::sys::VIR_DOMAIN_SAVE_PAUSED).doing(what, name);
        let restored_ms = t.elapsed().as_millis() as u64;
        let fed = feed.finish();
        restored?;
        if let Err(e) = fed {
            let _ = d.destroy();
            return Err(e);
        }
        Ok(restored_ms)
    }

    /// Finishes a wake that a process that died left halfway (see [`Self::restore_fed`]):
    /// a running or paused domain keeps no saved state, a paused one restored for a wake runs,
    /// and its pipe goes. True when something was left.
    pub async fn settle_interrupted_wake(&self, hosting_id: i32) -> Result<bool, VmError> {
        let name = self.domain_name(hosting_id);
        let wake_file = self.vm_dir(hosting_id).join(delta::WAKE_FILE);
        // The pipe goes only after the restore returned: without it, no wake was interrupted.
        if !tokio::fs::try_exists(&wake_file).await.unwrap_or(false) {
            return Ok(false);
        }
        let wake = wake_file.clone();
        self.blocking(move |c| {
            let Some(d) = Self::lookup(c, &name)? else { return Ok(()) };
            if !d.is_active().doing("read the state of domain", &name)? {
                return Ok(());
            }
            if d.has_managed_save(0).doing("look for a saved state of domain", &name)? {
                // The restore returned, but the process died before it knew whether the
                // memory it was fed was right (`Self::restore_fed`): expanded once more to see.
                let saved = compress::managed_save_path(&name);
                if map_state(&d, &name)? == VmState::Paused {
                    let wrong = "a woken VM was fed saved memory that is not right: stopped, still asleep";
                    Self::check_fed_again(&d, &name, &saved, &wake, wrong)?;
                }
                tracing::warn!(domain = %name, "a woken VM still had the saved state it was restored from: dropped");
                d.managed_save_remove(0).doing("drop the saved state of domain", &name)?;
            }
            if map_state(&d, &name)? == VmState::Paused {
                d.resume().doing("resume domain", &name)?;
            }
            Ok(())
        })
        .await?;
        let _ = tokio::fs::remove_file(&wake_file).await;
        Ok(true)
    }

    /// Checks what a restore that a process that died left paused was fed: the delta at `saved`
    /// expanded once more, through the pipe `pipe`. Not right: the domain is stopped before it
    /// ran (`wrong` is logged). A plain save: nothing to check.
    pub(in crate::vm) fn check_fed_again(d: &Domain, name: &str, saved: &Path, pipe: &Path, wrong: &str) -> Result<(), VmError> {
        if delta::is_delta(saved) {
            if let Err(e) = wake_feed::Feed::start(saved, pipe).and_then(wake_feed::Feed::finish) {
                tracing::error!(domain = %name, err = %e, "{wrong}");
                let _ = d.destroy();
                return Err(e);
            }
        }
        Ok(())
    }

}
