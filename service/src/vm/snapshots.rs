//! User snapshots of a VM: its memory and its disk, restorable to the running site as it was.
//!
//! Files, named after ids only: `{vm_dir}/snapshots/{sid}/memory.save` (a libvirt save image,
//! restored with its XML's port forwards stripped, see `forwards`), `saved` (a marker: the
//! memory file is complete) and `disk.qcow2` (a copy of the VM's overlay, backed by the same
//! read-only base). A running VM is saved into its snapshot; a sleeping or stopped one (its
//! memory saved already) has its saved memory copied, and is not woken.
//!
//! Once the VM runs again, the memory file is made small as a sleeping site's is (the footprint
//! settings, `super::memory::shrink_save_file`): a clone's as its difference to the golden's
//! memory (`super::memory::delta`; ~104 MB become a few MB), others with lzop. A restore from a
//! delta is fed through a named pipe beside it (`memory.pipe`, `super::memory::wake_feed`),
//! paused until the whole stream has matched its checksum; libvirt reads lzop's itself.
//!
//! Mechanism, and why not libvirt's own snapshot API on this libvirt (9.0):
//! - internal snapshots (`virDomainSnapshotCreateXML`, memory + disk inside the qcow2) would put
//!   every snapshot's memory into the VM's own overlay: no per-snapshot size for the quota, the
//!   overlay only ever grows (qcow2 does not give freed clusters back), a restore (`loadvm`)
//!   binds the forwards while the guest is still loading (see `forwards`), and a VM with
//!   snapshot metadata can no longer be managed-saved by older libvirts;
//! - external snapshots (memory and disk in files) move the VM onto a new overlay each time (a
//!   growing backing chain) and libvirt can revert them only from 9.7 on.
//!
//! So this uses the calls the sleep and clone paths already rely on: `virDomainSaveFlags` into
//! the snapshot's folder (the VM stops, its disk is then quiet), a copy of the overlay, and a
//! restore from that same file (a few seconds of downtime). Restoring a snapshot stages a copy
//! of its disk, swaps it in (the previous disk kept as `disk.before.qcow2` until the restore
//! worked) and restores the memory file; `memory.save` stays as it is for the next restore.
use std::path::{Path, PathBuf};

use super::memory::{compress, delta, save_domain, shrink_save_file, wake_feed};
use super::{Doing, VmError, VmManager, io};

const MEMORY: &str = "memory.save";
/// The named pipe a delta-stored memory file is restored through (there only during a restore).
const PIPE: &str = "memory.pipe";
const SAVED: &str = "saved";
const DISK: &str = "disk.qcow2";
/// A snapshot's disk staged next to the VM's own, before it is swapped in.
pub(super) const STAGED: &str = "disk.restore.qcow2";
/// The VM's own disk while a snapshot's is swapped in (put back when the restore fails).
const BEFORE: &str = "disk.before.qcow2";

/// How a snapshot ended when it did not work.
#[derive(Debug)]
pub struct TakeFailure {
    pub error: VmError,
    /// Whether the VM runs again (else it is shut off: its memory was saved but not restored).
    pub vm_running: bool,
}

impl VmManager {
    /// `{vm_dir}/snapshots/{sid}`.
    pub fn snapshot_dir(&self, hosting_id: i32, sid: i32) -> PathBuf {
        self.vm_dir(hosting_id).join("snapshots").join(sid.to_string())
    }

    /// Whether the snapshot's files are complete.
    pub fn snapshot_complete(&self, hosting_id: i32, sid: i32) -> bool {
        let dir = self.snapshot_dir(hosting_id, sid);
        [MEMORY, SAVED, DISK].iter().all(|f| dir.join(f).is_file())
    }

    /// Whether a snapshot's memory was saved completely (the marker follows the save).
    pub fn snapshot_memory_saved(&self, hosting_id: i32, sid: i32) -> bool {
        let dir = self.snapshot_dir(hosting_id, sid);
        dir.join(MEMORY).is_file() && dir.join(SAVED).is_file()
    }

    /// The snapshot ids that have a folder of the hosting's.
    pub async fn snapshot_ids_on_disk(&self, hosting_id: i32) -> Vec<i32> {
        let root = self.vm_dir(hosting_id).join("snapshots");
        let mut out = Vec::new();
        let Ok(mut rd) = tokio::fs::read_dir(&root).await else { return out };
        while let Ok(Some(e)) = rd.next_entry().await {
            if let Some(id) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
                if e.file_name().to_str() == Some(id.to_string().as_str()) {
                    out.push(id);
                }
            }
        }
        out.sort();
        out
    }

    /// Bytes the VM's overlay takes now (what a snapshot's disk copy will take, about).
    pub async fn disk_bytes(&self, hosting_id: i32) -> u64 {
        tokio::fs::metadata(self.vm_dir(hosting_id).join(DISK)).await.map(|m| m.len()).unwrap_or(0)
    }

    /// Bytes the VM's saved memory (its managed save) takes now; 0 without one.
    pub async fn saved_memory_bytes(&self, hosting_id: i32) -> u64 {
        let path = compress::managed_save_path(&self.domain_name(hosting_id));
        tokio::fs::metadata(path).await.map(|m| m.len()).unwrap_or(0)
    }

    pub async fn remove_snapshot_files(&self, hosting_id: i32, sid: i32) -> Result<(), VmError> {
        super::files::remove_dir(&self.snapshot_dir(hosting_id, sid)).await
    }

    /// Takes a snapshot of the running VM: saves its memory into the snapshot's folder (the VM
    /// stops), copies its disk, and restores it from the saved memory. Returns the bytes the
    /// snapshot's files take. On failure the VM runs again whenever its memory can be restored.
    /// `fail_copy` (failure injection for tests) makes the disk copy fail.
    pub async fn take_snapshot(&self, hosting_id: i32, sid: i32, http_port: u16, ssh_port: u16, fail_copy: bool) -> Result<u64, TakeFailure> {
        let dir = self.snapshot_dir(hosting_id, sid);
        let running = |error| TakeFailure { error, vm_running: true };
        tokio::fs::create_dir_all(&dir).await.map_err(io("creating", &dir)).map_err(running)?;
        let (name, mem) = (self.domain_name(hosting_id), dir.join(MEMORY));
        // A failed save leaves the domain running (libvirt resumes it).
        {
            let (name, mem) = (name.clone(), mem.clone());
            self.blocking(move |c| save_domain(&Self::existing(c, &name)?, &name, &mem)).await.map_err(running)?;
        }
        let copied = async {
            super::files::write_file(&dir.join(SAVED), b"").await?;
            if fail_copy {
                return Err(VmError::Invalid("copying the disk failed (injected failure)".into()));
            }
            copy_file(&self.vm_dir(hosting_id).join(DISK), &dir.join(DISK)).await
        }
        .await;
        let restored = self.restore_memory_file(hosting_id, mem.clone(), http_port, ssh_port).await;
        match (copied, restored) {
            (Ok(()), Ok(())) => {
                self.shrink_snapshot_memory(hosting_id, sid).await;
                Ok(dir_bytes(&dir).await)
            }
            (Err(error), Ok(())) => Err(TakeFailure { error, vm_running: true }),
            (_, Err(error)) => Err(TakeFailure { error, vm_running: false }),
        }
    }

    /// Takes a snapshot of a VM that does not run but keeps its memory saved (asleep, or
    /// stopped): the saved memory and the disk are copied; the VM stays as it is. Returns the
    /// bytes the snapshot's files take. `fail_copy` (failure injection for tests) makes the
    /// disk copy fail. The caller holds the site, so nothing restores the VM meanwhile.
    pub async fn take_snapshot_of_saved(&self, hosting_id: i32, sid: i32, fail_copy: bool) -> Result<u64, VmError> {
        let name = self.domain_name(hosting_id);
        let saved = {
            let name = name.clone();
            self.blocking(move |c| {
                let d = Self::existing(c, &name)?;
                let saved = !d.is_active().doing("read the state of domain", &name)?
                    && d.has_managed_save(0).doing("look for a saved state of domain", &name)?;
                Ok(saved.then(|| compress::managed_save_path(&name)))
            })
            .await?
        };
        let Some(saved) = saved else {
            return Err(VmError::Invalid(format!("domain {name} has no saved memory to take (it runs, or it was powered off)")));
        };
        let dir = self.snapshot_dir(hosting_id, sid);
        tokio::fs::create_dir_all(&dir).await.map_err(io("creating", &dir))?;
        copy_file(&saved, &dir.join(MEMORY)).await?;
        super::files::write_file(&dir.join(SAVED), b"").await?;
        if fail_copy {
            return Err(VmError::Invalid("copying the disk failed (injected failure)".into()));
        }
        copy_file(&self.vm_dir(hosting_id).join(DISK), &dir.join(DISK)).await?;
        self.shrink_snapshot_memory(hosting_id, sid).await;
        Ok(dir_bytes(&dir).await)
    }

    /// Stores snapshot `sid`'s memory file small, as a sleeping site's is (a delta or lzop:
    /// `super::memory::shrink_save_file`), unless it is already or the settings keep it raw.
    async fn shrink_snapshot_memory(&self, hosting_id: i32, sid: i32) {
        let Some(against) = self.shrink_against(hosting_id) else { return };
        let (mem, name) = (self.snapshot_dir(hosting_id, sid).join(MEMORY), self.domain_name(hosting_id));
        let t = std::time::Instant::now();
        let shrunk = tokio::task::spawn_blocking(move || shrink_save_file(&mem, against.as_deref(), &name)).await;
        if let Ok(Some(c)) = shrunk {
            let ms = t.elapsed().as_millis() as u64;
            tracing::debug!(hosting_id, sid, raw_bytes = c.raw_bytes, stored_bytes = c.compressed_bytes, ms, "snapshot memory stored small");
        }
    }

    /// Restores the VM from the memory of snapshot `sid` (the disk must match it: a crash
    /// between a snapshot's save and its restore leaves exactly that).
    pub async fn resume_from_snapshot_memory(&self, hosting_id: i32, sid: i32, http_port: u16, ssh_port: u16) -> Result<(), VmError> {
        let mem = self.snapshot_dir(hosting_id, sid).join(MEMORY);
        self.restore_memory_file(hosting_id, mem, http_port, ssh_port).await
    }

    /// Restores the VM from the memory file `mem`, running, with its forwards. A delta is
    /// expanded into a pipe beside it while libvirt restores from that; the guest runs only once
    /// the whole stream matched its checksum (else the domain is stopped again).
    pub(super) async fn restore_memory_file(&self, hosting_id: i32, mem: PathBuf, http_port: u16, ssh_port: u16) -> Result<(), VmError> {
        let name = self.domain_name(hosting_id);
        let (http, ssh) = ((self.inner.cfg.http_forward_bind, http_port), (self.inner.cfg.forward_bind, ssh_port));
        let feed = {
            let mem = mem.clone();
            let pipe = mem.with_file_name(PIPE);
            tokio::task::spawn_blocking(move || if delta::is_delta(&mem) { wake_feed::Feed::start(&mem, &pipe).map(Some) } else { Ok(None) })
                .await??
        };
        self.blocking(move |c| {
            // The saved XML without its forwards (a sleeping site's SSH waker holds its port, and
            // they are added once the guest runs, see `forwards`).
            let what = "restore the snapshot of domain";
            match feed {
                Some(feed) => {
                    let d = Self::existing(c, &name)?;
                    let xml = without_forwards(feed.xml());
                    Self::restore_paused_checked(c, &d, &name, feed, xml.as_deref(), what, std::time::Instant::now())?;
                    d.resume().doing("resume domain", &name)?;
                }
                None => {
                    let path = mem.display().to_string();
                    let xml = match c.save_image_xml_desc(&path, virt::sys::VIR_DOMAIN_SAVE_IMAGE_XML_SECURE) {
                        Ok(x) => without_forwards(&x),
                        // libvirt's test driver keeps its own save format (and its VMs have no ports).
                        Err(e) if e.code() == virt::error::ErrorNumber::NoSupport.into() => None,
                        Err(e) => return Err(e).doing("read the saved snapshot of domain", &name),
                    };
                    c.restore_domain_flags(&path, xml.as_deref(), 0).doing(what, &name)?;
                }
            }
            super::forwards::ensure(&Self::existing(c, &name)?, &name, http, ssh)
        })
        .await
    }

    /// Finishes a restore from a delta that a process that died left halfway (see
    /// [`Self::restore_memory_file`]; its pipe is removed only once the restore returned): a
    /// domain restored paused runs once its memory has been expanded and checked again (else it
    /// is stopped), and the pipe goes. True when one was left.
    pub async fn settle_interrupted_snapshot_restore(&self, hosting_id: i32) -> Result<bool, VmError> {
        let mut left = None;
        for sid in self.snapshot_ids_on_disk(hosting_id).await {
            let pipe = self.snapshot_dir(hosting_id, sid).join(PIPE);
            if tokio::fs::symlink_metadata(&pipe).await.is_ok() {
                left = Some((self.snapshot_dir(hosting_id, sid).join(MEMORY), pipe));
                break;
            }
        }
        let Some((mem, pipe)) = left else { return Ok(false) };
        let name = self.domain_name(hosting_id);
        let fifo = pipe.clone();
        let settled = self
            .blocking(move |c| {
                let Some(d) = Self::lookup(c, &name)? else { return Ok(()) };
                if !d.is_active().doing("read the state of domain", &name)? || super::map_state(&d, &name)? != super::VmState::Paused {
                    return Ok(());
                }
                let wrong = "a VM restored from a snapshot was fed memory that is not right: stopped";
                Self::check_fed_again(&d, &name, &mem, &fifo, wrong)?;
                tracing::warn!(domain = %name, "a VM restored from a snapshot was left paused: resumed");
                d.resume().doing("resume domain", &name)
            })
            .await;
        let _ = tokio::fs::remove_file(&pipe).await;
        settled.map(|()| true)
    }

    /// Copies snapshot `sid`'s disk next to the VM's (nothing of the VM changes yet).
    pub async fn stage_snapshot_disk(&self, hosting_id: i32, sid: i32) -> Result<(), VmError> {
        if !self.snapshot_complete(hosting_id, sid) {
            let dir = self.snapshot_dir(hosting_id, sid);
            return Err(VmError::ImageMissing { path: dir });
        }
        copy_file(&self.snapshot_dir(hosting_id, sid).join(DISK), &self.vm_dir(hosting_id).join(STAGED)).await
    }

    /// The staged snapshot disk becomes the VM's (which is kept aside). The VM must not run.
    pub async fn swap_in_staged_disk(&self, hosting_id: i32) -> Result<(), VmError> {
        let dir = self.vm_dir(hosting_id);
        let (disk, before, staged) = (dir.join(DISK), dir.join(BEFORE), dir.join(STAGED));
        tokio::fs::rename(&disk, &before).await.map_err(io("renaming", &disk))?;
        if let Err(e) = tokio::fs::rename(&staged, &disk).await {
            let _ = tokio::fs::rename(&before, &disk).await;
            return Err(io("renaming", &staged)(e));
        }
        Ok(())
    }

    /// Restores the VM from snapshot `sid`'s memory (its disk swapped in first), running.
    pub async fn restore_snapshot_memory(&self, hosting_id: i32, sid: i32, http_port: u16, ssh_port: u16) -> Result<(), VmError> {
        self.resume_from_snapshot_memory(hosting_id, sid, http_port, ssh_port).await
    }

    /// Puts the VM's own disk back if a snapshot's was swapped in (the VM must not run), and
    /// drops a staged copy. True when the disk was put back.
    pub async fn swap_back_disk(&self, hosting_id: i32) -> Result<bool, VmError> {
        let dir = self.vm_dir(hosting_id);
        let (disk, before) = (dir.join(DISK), dir.join(BEFORE));
        let _ = tokio::fs::remove_file(dir.join(STAGED)).await;
        if !before.is_file() {
            return Ok(false);
        }
        tokio::fs::rename(&before, &disk).await.map_err(io("renaming", &before))?;
        Ok(true)
    }

    /// After a restore worked: the previous disk and any staged copy go.
    pub async fn drop_previous_disk(&self, hosting_id: i32) {
        let dir = self.vm_dir(hosting_id);
        let _ = tokio::fs::remove_file(dir.join(BEFORE)).await;
        let _ = tokio::fs::remove_file(dir.join(STAGED)).await;
    }

    /// Whether a restore left the VM's previous disk aside (it was interrupted).
    pub fn has_previous_disk(&self, hosting_id: i32) -> bool {
        self.vm_dir(hosting_id).join(BEFORE).is_file() || self.vm_dir(hosting_id).join(STAGED).is_file()
    }
}

/// A saved domain XML without its forwards; None when it has none (restored as saved: libvirt's
/// test driver takes no XML with a restore).
fn without_forwards(xml: &str) -> Option<String> {
    Some(super::forwards::strip_hostfwds(xml)).filter(|s| s != xml)
}

/// Copies `from` to `to` through a temporary file (a crash never leaves a half copy under `to`).
async fn copy_file(from: &Path, to: &Path) -> Result<(), VmError> {
    let tmp = to.with_extension("part");
    tokio::fs::copy(from, &tmp).await.map_err(io("copying", from))?;
    let f = tokio::fs::File::open(&tmp).await.map_err(io("opening", &tmp))?;
    f.sync_all().await.map_err(io("syncing", &tmp))?;
    tokio::fs::rename(&tmp, to).await.map_err(io("renaming", &tmp))
}

async fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(mut rd) = tokio::fs::read_dir(dir).await {
        while let Ok(Some(e)) = rd.next_entry().await {
            total += e.metadata().await.map(|m| m.len()).unwrap_or(0);
        }
    }
    total
}
