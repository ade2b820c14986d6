//! A consistent copy of one site's files for a backup (issue 31): what the restic driver
//! (`crate::backup`) hands restic. It never runs restic, and never restores.
//!
//! What is copied, by the VM's state:
//! - **running**: its qcow2 overlay, copied while the guest's filesystems are frozen by its agent
//!   (`guest-fsfreeze-freeze`, then `guest-fsfreeze-thaw` ALWAYS: on every path, also after a
//!   freeze that timed out or answered nonsense, since the guest may have frozen anyway). No
//!   memory: saving a running VM's memory stops it, and its page would stop answering for the
//!   seconds a save and a restore take (a user snapshot does exactly that, when its owner asks
//!   for it). The copy is then what a power cut at that instant would leave, every filesystem
//!   clean.
//! - **asleep or stopped with its memory saved**: the overlay and libvirt's managed save file,
//!   copied as they are (never woken, never started), and how that memory is stored
//!   ([`MemoryForm`]): a delta needs its golden's memory file to be restored ([`BaseRef`]).
//! - **powered off**: the overlay alone.
//!
//! Why a plain copy of a file QEMU holds open is sound while the guest is frozen: the freeze
//! makes the guest write back every dirty page and flush its disk; QEMU's qcow2 driver answers
//! a flush by writing its cached metadata (L2 tables, refcounts) and syncing the file; a frozen
//! guest then issues no writes, so until the thaw the host file is a complete, consistent qcow2
//! image. `cp --reflink=auto --sparse=always` keeps the copy as small as the file (blocks shared
//! on btrfs/XFS, holes skipped elsewhere); `qemu-img convert -U` would instead rewrite every
//! cluster through a second qcow2 driver (slower, and the freeze lasts as long). The copy is
//! checked with `qemu-img check` after the thaw, off the frozen time. A guest that lies (says
//! "frozen" without freezing) can only make its own backup inconsistent, and the check still
//! refuses a copy whose qcow2 metadata is broken.
//!
//! The frozen time is bounded: the agent's answer to the freeze within
//! [`CaptureOpts::freeze_timeout`], the copy within [`CaptureOpts::copy_within`] (else it is
//! killed: [`VmError::FrozenTooLong`]), each of at most [`THAW_ATTEMPTS`] thaws within
//! [`THAW_TIMEOUT_SECS`]. On ext4 (no reflink) the copy takes as long as the overlay's bytes
//! take to read and write (about 1 s per GB): a site with a larger overlay gets
//! `FrozenTooLong` and is to be captured through a snapshot instead.
//!
//! The freeze is a guest call of the site's owner (`guest_calls`): after the site's pending
//! call, in one of the few slots, on the guest calls' connection, so a tenant's stuck agent
//! holds up no one else's backup. The caller holds the site (its operation), so nothing starts,
//! saves or wakes the VM meanwhile; a saved VM's state is checked again after its copy anyway.
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use virt::domain::Domain;
use virt::error::ErrorNumber;

use super::memory::{compress, delta};
use super::{Doing, VmError, VmManager, VmState, io, map_state};

/// The overlay's name, in the VM's folder and in the staging folder.
const DISK: &str = "disk.qcow2";
/// The saved memory's name in the staging folder.
const MEMORY: &str = "memory.save";
/// Seconds the guest has to answer one thaw.
pub const THAW_TIMEOUT_SECS: i32 = 5;
/// Thaws sent before the guest is given up on ([`VmError::ThawFailed`]).
pub const THAW_ATTEMPTS: u32 = 3;

/// Bounds of a running site's capture.
#[derive(Clone, Copy, Debug)]
pub struct CaptureOpts {
    /// How long the agent has to answer the freeze (whole seconds, at least 1).
    pub freeze_timeout: Duration,
    /// How long the copy may keep the guest frozen before it is abandoned.
    pub copy_within: Duration,
}

impl Default for CaptureOpts {
    fn default() -> Self {
        Self { freeze_timeout: Duration::from_secs(5), copy_within: Duration::from_secs(10) }
    }
}

/// The state the VM was captured in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapturedFrom {
    /// Running: its disk, copied while frozen; no memory.
    Running,
    /// Asleep or stopped with its memory saved: disk and memory.
    Saved,
    /// Powered off: its disk.
    PoweredOff,
}

/// What a base disk is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaseKind {
    /// A guest image's `base.qcow2` (a VM booted from the image).
    Image,
    /// A golden snapshot's `disk.qcow2` (a clone; it backs onto its image's base in turn).
    Golden,
}

/// The read-only disk an overlay backs onto, for the repository to hold once for all sites.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BaseRef {
    /// Stable and file-name safe: `image-{image folder}` or `golden-{image key}-{golden
    /// folder}` (folders are never reused for other contents: an image build's folder names
    /// its build, a golden's its attempt).
    pub id: String,
    /// The base disk, as the overlay's header names it (absolute).
    pub disk: PathBuf,
    pub kind: BaseKind,
}

/// How a captured memory file stores the guest's memory (libvirt's save header says).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryForm {
    /// libvirt's raw save: libvirt restores it.
    Plain,
    /// lzop-compressed in libvirt's own format: libvirt restores it.
    Lzop,
    /// Another of libvirt's compressed formats (its header's word): libvirt restores it.
    Libvirt(u32),
    /// A delta to a golden's memory (`memory::delta`): restored only with that golden's
    /// `state.save` at `reference` (one of [`VmManager::base_files`] of golden `golden`).
    Delta { golden: String, reference: PathBuf },
}

/// A site captured into a staging folder.
#[derive(Clone, Debug)]
pub struct Capture {
    /// The copy of the qcow2 overlay (`{staging}/disk.qcow2`); it backs onto [`Capture::base`].
    pub disk: PathBuf,
    /// The copy of the saved memory (`{staging}/memory.save`) and how it is stored.
    pub memory: Option<(PathBuf, MemoryForm)>,
    pub base: BaseRef,
    /// How long the guest's filesystems were frozen (a running site only).
    pub frozen_for: Option<Duration>,
    /// Bytes of the captured files.
    pub bytes: u64,
    pub from: CapturedFrom,
}

impl VmManager {
    /// Fills `staging` (an existing, empty folder of the caller's) with a consistent copy of
    /// hosting `hosting_id`'s files, as the module docs say by state; `owner` is the site's
    /// owner (whose guest-call share the freeze takes). A running site whose agent does not
    /// freeze gives [`VmError::FreezeFailed`] (nothing copied: take a snapshot instead); a
    /// paused or crashed one [`VmError::NotCapturable`]. On failure nothing of the capture is
    /// left in `staging`.
    pub async fn capture_for_backup(&self, hosting_id: i32, owner: i32, staging: &Path, opts: CaptureOpts) -> Result<Capture, VmError> {
        let overlay = self.vm_dir(hosting_id).join(DISK);
        let (disk, mem) = (staging.join(DISK), staging.join(MEMORY));
        if !staging.is_dir() {
            return Err(VmError::Invalid(format!("the staging folder {} does not exist", staging.display())));
        }
        if disk.exists() || mem.exists() {
            return Err(VmError::Invalid(format!("the staging folder {} holds a capture already", staging.display())));
        }
        let base = {
            let overlay = overlay.clone();
            tokio::task::spawn_blocking(move || base_of(&overlay)).await??
        };
        let name = self.domain_name(hosting_id);
        let (state, saved) = self.saved_state(&name).await?;
        let t = Instant::now();
        let (from, frozen_for, memory) = match (state, saved) {
            (VmState::Running, _) => {
                let frozen = self.capture_running(hosting_id, owner, &overlay, &disk, opts).await?;
                (CapturedFrom::Running, Some(frozen), None)
            }
            (_, true) => {
                let form = self.capture_saved(&name, &overlay, &disk, &mem, &base).await?;
                (CapturedFrom::Saved, None, Some((mem.clone(), form)))
            }
            (VmState::ShutOff, false) => {
                finish_copy(Some(&overlay), &disk).await?;
                (CapturedFrom::PoweredOff, None, None)
            }
            (other, false) => return Err(VmError::NotCapturable(other)),
        };
        let bytes = file_bytes(&disk) + memory.as_ref().map_or(0, |(p, _)| file_bytes(p));
        tracing::info!(hosting_id, ?from, bytes, frozen_ms = frozen_for.map(|d| d.as_millis() as u64), ms = t.elapsed().as_millis() as u64, base = %base.id, "site captured for a backup");
        Ok(Capture { disk, memory, base, frozen_for, bytes, from })
    }

    /// Snapshot `sid` of hosting `hosting_id` (its running VM's memory and disk, taken for a
    /// backup: its agent did not freeze, or its memory was asked for) made a [`Capture`]: its
    /// disk and memory moved into `staging` (an existing, empty folder on the same filesystem:
    /// renames, no copy) and the snapshot's folder removed. On failure the snapshot's folder is
    /// left for the caller to remove.
    pub async fn capture_from_snapshot(&self, hosting_id: i32, sid: i32, staging: &Path) -> Result<Capture, VmError> {
        let dir = self.snapshot_dir(hosting_id, sid);
        let (disk, mem) = (staging.join(DISK), staging.join(MEMORY));
        for (from, to) in [(dir.join(DISK), &disk), (dir.join(MEMORY), &mem)] {
            tokio::fs::rename(&from, to).await.map_err(io("moving", &from))?;
        }
        let (d, m) = (disk.clone(), mem.clone());
        let (base, form) = tokio::task::spawn_blocking(move || {
            let base = base_of(&d)?;
            let form = memory_form(&m, &base)?;
            Ok::<_, VmError>((base, form))
        })
        .await??;
        let _ = super::files::remove_dir(&dir).await;
        let bytes = file_bytes(&disk) + file_bytes(&mem);
        tracing::info!(hosting_id, bytes, base = %base.id, "site captured for a backup through a snapshot");
        Ok(Capture { disk, memory: Some((mem, form)), base, frozen_for: None, bytes, from: CapturedFrom::Running })
    }

    /// The files a restore on a fresh node needs besides a capture on `base`, for the caller to
    /// back up once: the base disk, and for a golden its saved memory (a delta's reference),
    /// its metadata, and its own image's files (its disk backs onto the image's base). Only
    /// files that exist; the base disk first.
    pub fn base_files(&self, base: &BaseRef) -> Vec<PathBuf> {
        let Some(dir) = base.disk.parent() else { return Vec::new() };
        let mut out = vec![base.disk.clone()];
        let others: &[&str] = match base.kind {
            BaseKind::Image => &["vmlinuz", "initrd.img", "image.json"],
            // `state.save`'s header is rewritten while a clone is made (its memory stream after it
            // never is): a copy taken meanwhile holds some clone's XML, which a clone replaces.
            BaseKind::Golden => &["state.save", "golden.json", "golden.xml", "golden.head"],
        };
        out.extend(others.iter().map(|f| dir.join(f)).filter(|p| p.is_file()));
        if base.kind == BaseKind::Golden {
            if let Ok(image) = base_of(&base.disk) {
                out.extend(self.base_files(&image));
            }
        }
        out
    }

    /// The domain's state, and whether it keeps its memory saved (inactive only).
    async fn saved_state(&self, name: &str) -> Result<(VmState, bool), VmError> {
        let name = name.to_owned();
        self.blocking(move |c| {
            let d = Self::existing(c, &name)?;
            let state = map_state(&d, &name)?;
            let active = d.is_active().doing("read the state of domain", &name)?;
            let saved = !active && d.has_managed_save(0).doing("look for a saved state of domain", &name)?;
            Ok((state, saved))
        })
        .await
    }

    /// The running VM's overlay copied to `disk` while its guest is frozen; the time frozen.
    async fn capture_running(&self, hosting_id: i32, owner: i32, overlay: &Path, disk: &Path, opts: CaptureOpts) -> Result<Duration, VmError> {
        let name = self.domain_name(hosting_id);
        // A site whose pending call (a stuck agent of its tenant's) keeps the turn: not frozen.
        let pass = self
            .inner
            .guest
            .enter(&name, owner, "guest-fsfreeze-freeze")
            .await
            .map_err(|e| VmError::FreezeFailed { domain: name.clone(), source: Box::new(e) })?;
        let (inner, overlay, part) = (self.inner.clone(), overlay.to_owned(), part_of(disk));
        let frozen_for = tokio::task::spawn_blocking(move || {
            let _pass = pass; // the site's turn and a slot, until the thaw returned
            let checkout = inner.guest_conns.as_ref().unwrap_or(&inner.conns).checkout()?;
            let d = Self::existing(&checkout.conn, &name)?;
            match map_state(&d, &name)? {
                VmState::Running => frozen_copy(&d, &name, &overlay, &part, opts),
                other => Err(VmError::NotRunning(other)),
            }
        })
        .await??;
        finish_copy(None, disk).await?;
        Ok(frozen_for)
    }

    /// The saved VM's memory and overlay copied (it is not woken); how the memory is stored.
    async fn capture_saved(&self, name: &str, overlay: &Path, disk: &Path, mem: &Path, base: &BaseRef) -> Result<MemoryForm, VmError> {
        let saved = compress::managed_save_path(name);
        let stamp = |p: &Path| std::fs::metadata(p).and_then(|m| Ok((m.len(), m.modified()?))).ok();
        let before = stamp(&saved);
        let copied = async {
            finish_copy(Some(&saved), mem).await?;
            finish_copy(Some(overlay), disk).await?;
            let (state, still) = self.saved_state(name).await?;
            if !still || state == VmState::Running || stamp(&saved) != before {
                return Err(VmError::Invalid(format!("domain {name} was started while its saved state was copied")));
            }
            let (mem, base) = (mem.to_owned(), base.clone());
            tokio::task::spawn_blocking(move || memory_form(&mem, &base)).await?
        }
        .await;
        if copied.is_err() {
            let _ = tokio::fs::remove_file(mem).await;
            let _ = tokio::fs::remove_file(disk).await;
        }
        copied
    }
}

/// The base disk the qcow2 overlay at `overlay` backs onto.
pub(super) fn base_of(overlay: &Path) -> Result<BaseRef, VmError> {
    if !overlay.is_file() {
        return Err(VmError::ImageMissing { path: overlay.to_owned() });
    }
    let backing = delta::qcow2_backing_file(overlay)
        .ok_or_else(|| VmError::Invalid(format!("{} is not a qcow2 overlay on a base disk", overlay.display())))?;
    let backing = match overlay.parent() {
        Some(dir) if backing.is_relative() => dir.join(backing),
        _ => backing,
    };
    let name = |p: Option<&Path>| safe_name(p.and_then(Path::file_name).and_then(|n| n.to_str()).unwrap_or("none"));
    let dir = backing.parent();
    let (id, kind) = match backing.file_name().and_then(|n| n.to_str()) {
        Some("disk.qcow2") if dir.is_some_and(|d| d.join("golden.json").is_file()) => {
            (format!("golden-{}-{}", name(dir.and_then(Path::parent)), name(dir)), BaseKind::Golden)
        }
        Some("base.qcow2") => (format!("image-{}", name(dir)), BaseKind::Image),
        _ => {
            let why = format!("{} backs onto {}: neither a guest image's base nor a golden's disk", overlay.display(), backing.display());
            return Err(VmError::Invalid(why));
        }
    };
    Ok(BaseRef { id, disk: backing, kind })
}

/// A folder name as an id part: a-z, A-Z, 0-9, '-' and '.'; anything else '_'.
fn safe_name(n: &str) -> String {
    n.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect()
}

/// How the captured memory file `mem` is stored; a delta must be against `base`'s golden.
fn memory_form(mem: &Path, base: &BaseRef) -> Result<MemoryForm, VmError> {
    match compress::stream_format(mem)? {
        0 => Ok(MemoryForm::Plain),
        compress::LZOP => Ok(MemoryForm::Lzop),
        delta::FORMAT => {
            let opened = delta::open(mem)?;
            let reference = opened.meta.reference_path().to_owned();
            let golden_dir = base.disk.parent();
            if base.kind != BaseKind::Golden || reference.parent() != golden_dir {
                let why = format!("its memory is a delta to {}, not to the golden its disk backs onto ({})", reference.display(), base.id);
                return Err(VmError::Invalid(why));
            }
            Ok(MemoryForm::Delta { golden: base.id.clone(), reference })
        }
        other => Ok(MemoryForm::Libvirt(other)),
    }
}

/// Freezes the guest, copies `overlay` to `part` within the bound, and thaws it, always; the
/// time from the freeze's request to the thaw's answer. Blocking.
fn frozen_copy(d: &Domain, name: &str, overlay: &Path, part: &Path, opts: CaptureOpts) -> Result<Duration, VmError> {
    const FREEZE: &str = "guest-fsfreeze-freeze";
    let t0 = Instant::now();
    let secs = opts.freeze_timeout.as_secs().clamp(1, i32::MAX as u64) as i32;
    let answer = VmManager::agent(d, name, FREEZE, None, secs);
    // The guest may be frozen when it answered, or when the freeze was sent and its answer did
    // not come in time (libvirt's other errors come before the command is sent: no agent
    // connected, or its guest-sync unanswered).
    let may_be_frozen = match &answer {
        Ok(_) => true,
        Err(VmError::Agent { source, .. }) => source.code() == ErrorNumber::AgentCommandTimeout.into(),
        Err(_) => false,
    };
    // The answer is the count of filesystems frozen: anything else is not a freeze.
    let frozen = answer.and_then(|v| match v.as_u64() {
        Some(n) if n > 0 => Ok(n),
        _ => Err(VmError::AgentReply { command: FREEZE, problem: format!("{:.60} filesystems frozen, not a positive count", v.to_string()) }),
    });
    let copied = frozen.as_ref().ok().map(|_| copy_sparse(overlay, part, Some(opts.copy_within)));
    // Thawed always, even when the freeze plainly failed: nothing is lost by a thaw too many.
    let thawed = thaw(d, name);
    let frozen_for = t0.elapsed();
    let failed = |e: VmError| {
        let _ = std::fs::remove_file(part);
        Err(e)
    };
    match thawed {
        Err(e) if may_be_frozen => {
            tracing::error!(domain = name, err = %e, "the guest did not confirm the thaw after a backup's freeze");
            return failed(VmError::ThawFailed { domain: name.to_owned(), source: Box::new(e) });
        }
        Err(e) => tracing::debug!(domain = name, err = %e, "no thaw after a freeze that was not sent"),
        Ok(()) => {}
    }
    if let Err(e) = frozen {
        tracing::warn!(domain = name, err = %e, "the guest's filesystems were not frozen for a backup: nothing copied");
        return failed(VmError::FreezeFailed { domain: name.to_owned(), source: Box::new(e) });
    }
    match copied {
        Some(Ok(true)) => Ok(frozen_for),
        Some(Ok(false)) => failed(VmError::FrozenTooLong { domain: name.to_owned(), bound_ms: opts.copy_within.as_millis() as u64 }),
        Some(Err(e)) => failed(e),
        None => unreachable!("a freeze is copied"),
    }
}

/// Thaws the guest: up to [`THAW_ATTEMPTS`] tries of [`THAW_TIMEOUT_SECS`] each. Blocking.
fn thaw(d: &Domain, name: &str) -> Result<(), VmError> {
    let mut attempt = 1;
    loop {
        match VmManager::agent(d, name, "guest-fsfreeze-thaw", None, THAW_TIMEOUT_SECS) {
            Ok(_) => return Ok(()),
            Err(e) if attempt >= THAW_ATTEMPTS => return Err(e),
            Err(e) => {
                tracing::warn!(domain = name, attempt, err = %e, "a thaw after a backup's freeze failed: trying again");
                std::thread::sleep(Duration::from_millis(200));
                attempt += 1;
            }
        }
    }
}

/// `{file}.part`: where a copy is made before it is complete.
fn part_of(file: &Path) -> PathBuf {
    file.with_extension("part")
}

/// Copies `from` to `to` with `cp --reflink=auto --sparse=always`; within `within` if given
/// (else killed). Ok(false): out of time (nothing left at `to`). Blocking.
fn copy_sparse(from: &Path, to: &Path, within: Option<Duration>) -> Result<bool, VmError> {
    let deadline = within.map(|w| Instant::now() + w);
    let mut child = Command::new("cp")
        .args(["--reflink=auto", "--sparse=always", "--"])
        .arg(from)
        .arg(to)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| VmError::Spawn { program: "cp", source })?;
    loop {
        // Out of time first: a copy done just then is given up too (a zero bound never copies).
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(to);
            return Ok(false);
        }
        if let Some(status) = child.try_wait().map_err(io("copying", from))? {
            if status.success() {
                return Ok(true);
            }
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut stderr);
            }
            let _ = std::fs::remove_file(to);
            return Err(VmError::Command { program: "cp", status, stderr });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Makes `to` a complete copy: copies `from` to `{to}.part` (None: copied there already),
/// syncs it, checks a qcow2 (`qemu-img check`: leaks are fine, corruption is not), and renames
/// it to `to`. On failure nothing is left.
async fn finish_copy(from: Option<&Path>, to: &Path) -> Result<(), VmError> {
    let (from, to, left) = (from.map(Path::to_owned), to.to_owned(), part_of(to));
    let part = part_of(&to);
    let done = tokio::task::spawn_blocking(move || {
        if let Some(from) = from {
            copy_sparse(&from, &part, None)?;
        }
        std::fs::File::open(&part).and_then(|f| f.sync_all()).map_err(io("syncing", &part))?;
        if to.extension().is_some_and(|e| e == "qcow2") {
            check_qcow2(&part)?;
        }
        std::fs::rename(&part, &to).map_err(io("renaming", &part))
    })
    .await?;
    if done.is_err() {
        let _ = tokio::fs::remove_file(left).await;
    }
    done
}

/// `qemu-img check`: 0 (clean) or 3 (leaked clusters: space only) pass. Blocking.
fn check_qcow2(path: &Path) -> Result<(), VmError> {
    let out = Command::new("qemu-img")
        .args(["check", "-q", "-f", "qcow2"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| VmError::Spawn { program: "qemu-img check", source })?;
    match out.status.code() {
        Some(0 | 3) => Ok(()),
        _ => Err(VmError::Command { program: "qemu-img check", status: out.status, stderr: String::from_utf8_lossy(&out.stderr).into_owned() }),
    }
}

fn file_bytes(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Makes the qcow2 overlay `disk` back onto `base` (absolute; its contents must be those of the
/// base it was made on: nothing is compared) with `qemu-img rebase -u`: a captured overlay
/// restored where its base lies at another path (another node, another data dir).
pub async fn rebase_overlay(disk: &Path, base: &Path) -> Result<(), VmError> {
    if !base.is_absolute() {
        return Err(VmError::Invalid(format!("the base {} is not an absolute path", base.display())));
    }
    for p in [disk, base] {
        if !p.is_file() {
            return Err(VmError::ImageMissing { path: p.to_owned() });
        }
    }
    let mut cmd = tokio::process::Command::new("qemu-img");
    cmd.args(["rebase", "-u", "-f", "qcow2", "-F", "qcow2", "-b"]).arg(base).arg(disk);
    super::files::run(&mut cmd, "qemu-img rebase").await
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::{CpuPriority, VmSpec};

    fn qemu_img(args: &[&str], paths: &[&Path]) {
        let status = Command::new("qemu-img").args(args).args(paths).status().expect("qemu-img (qemu-utils)");
        assert!(status.success(), "qemu-img {args:?}: {status}");
    }

    /// A qcow2 file of 16 MiB at `path`, backed by `base` if given.
    fn qcow2(path: &Path, base: Option<&Path>) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        match base {
            Some(b) => qemu_img(&["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"], &[b, path, Path::new("16M")]),
            None => qemu_img(&["create", "-q", "-f", "qcow2"], &[path, Path::new("16M")]),
        }
    }

    /// What qemu-io says to `cmds` on the qcow2 image `img`.
    fn qemu_io(img: &Path, cmds: &[&str]) -> String {
        let mut c = Command::new("qemu-io");
        c.args(["-f", "qcow2"]);
        for cmd in cmds {
            c.args(["-c", cmd]);
        }
        let out = c.arg(img).output().expect("qemu-io (qemu-utils)");
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }

    #[tokio::test]
    async fn a_captured_overlay_rebased_onto_its_base_at_another_path_reads_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let (base, overlay) = (dir.path().join("images/lean-x/base.qcow2"), dir.path().join("vms/1/disk.qcow2"));
        qcow2(&base, None);
        assert!(qemu_io(&base, &["write -P 0xab 0 64k"]).contains("wrote 65536/65536"));
        qcow2(&overlay, Some(&base));
        assert!(qemu_io(&overlay, &["write -P 0xcd 1M 64k"]).contains("wrote 65536/65536"));
        let b = base_of(&overlay).unwrap();
        assert_eq!((b.id.as_str(), b.kind, b.disk.as_path()), ("image-lean-x", BaseKind::Image, base.as_path()));

        // The base restored at another path (another node's data dir).
        let moved = dir.path().join("elsewhere/images/lean-x/base.qcow2");
        std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
        std::fs::rename(&base, &moved).unwrap();
        rebase_overlay(&overlay, &moved).await.unwrap();
        let read = qemu_io(&overlay, &["read -P 0xab 0 64k", "read -P 0xcd 1M 64k"]);
        assert_eq!(read.matches("read 65536/65536").count(), 2, "the base's data and the overlay's own: {read}");
        assert!(!read.contains("verification failed"), "{read}");
        assert_eq!(base_of(&overlay).unwrap().disk, moved);

        assert!(matches!(rebase_overlay(&overlay, Path::new("base.qcow2")).await, Err(VmError::Invalid(_))), "a relative base is refused");
        let missing = dir.path().join("nowhere.qcow2");
        assert!(matches!(rebase_overlay(&overlay, &missing).await, Err(VmError::ImageMissing { .. })));
        assert_eq!(base_of(&overlay).unwrap().disk, moved, "a refused rebase changes nothing");
    }

    /// A manager on libvirt's test driver, its data dir in `dir`.
    async fn manager(dir: &Path) -> VmManager {
        let cfg = crate::ServiceConfig {
            data_dir: dir.to_path_buf(),
            guest_image_dir: vmw_test_support::fake_guest_image(dir),
            libvirt_uri: "test:///default".into(),
            domain_type: Some(crate::DomainType::Qemu),
            domain_prefix: format!("vmwcap{}-", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            ..crate::ServiceConfig::default()
        };
        VmManager::connect(&cfg).await.unwrap()
    }

    #[tokio::test]
    async fn a_clone_backs_onto_its_golden_whose_files_and_image_files_are_listed_once() {
        let dir = tempfile::tempdir().unwrap();
        let vm = manager(dir.path()).await;
        let image = vm.config().guest_image_dir.canonicalize().unwrap();
        let gdir = dir.path().join("golden/lean-x/g-1");
        qcow2(&gdir.join("disk.qcow2"), Some(&image.join("base.qcow2")));
        for f in ["golden.json", "state.save", "golden.xml", "golden.head"] {
            std::fs::write(gdir.join(f), b"x").unwrap();
        }
        let overlay = vm.vm_dir(7).join("disk.qcow2");
        qcow2(&overlay, Some(&gdir.join("disk.qcow2")));
        let b = base_of(&overlay).unwrap();
        assert_eq!((b.id.as_str(), b.kind), ("golden-lean-x-g-1", BaseKind::Golden));
        let want: Vec<PathBuf> = ["disk.qcow2", "state.save", "golden.json", "golden.xml", "golden.head"]
            .iter()
            .map(|f| gdir.join(f))
            .chain(["base.qcow2", "vmlinuz", "initrd.img"].iter().map(|f| image.join(f)))
            .collect();
        assert_eq!(vm.base_files(&b), want, "the golden's disk and memory, then its image's base and kernel");

        // An overlay on anything else is not taken for a base.
        let odd = dir.path().join("odd/disk.qcow2");
        qcow2(&odd, Some(&overlay));
        assert!(matches!(base_of(&odd), Err(VmError::Invalid(_))));
    }

    #[test]
    fn saved_memory_is_told_plain_lzop_or_a_delta_to_the_golden_the_disk_backs_onto() {
        let dir = tempfile::tempdir().unwrap();
        let save = |p: &Path, stream: &[u8]| {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, super::super::memory::save_file_bytes(b"<domain/>\0\0\0\0\0\0\0", 0, stream)).unwrap();
        };
        let golden = BaseRef { id: "golden-img-g1".into(), disk: dir.path().join("golden/img/g1/disk.qcow2"), kind: BaseKind::Golden };
        let image = BaseRef { id: "image-img".into(), disk: dir.path().join("images/img/base.qcow2"), kind: BaseKind::Image };
        let stream: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mem = dir.path().join("staging/memory.save");
        save(&mem, &stream);
        assert_eq!(memory_form(&mem, &image).unwrap(), MemoryForm::Plain);

        // lzop: the header's compression word is 4 (the stream is not read).
        let mut bytes = std::fs::read(&mem).unwrap();
        bytes[16 + 12..16 + 16].copy_from_slice(&compress::LZOP.to_ne_bytes());
        let lzop = dir.path().join("staging/lzop.save");
        std::fs::write(&lzop, &bytes).unwrap();
        assert_eq!(memory_form(&lzop, &image).unwrap(), MemoryForm::Lzop);

        // A delta names the golden memory it needs; against another base it is refused.
        let reference = dir.path().join("golden/img/g1/state.save");
        save(&reference, &stream.iter().map(|b| b ^ 1).collect::<Vec<u8>>());
        delta::write_delta(&mem, &delta::Reference::of_save_file(&reference).unwrap()).unwrap().expect("a delta");
        assert_eq!(memory_form(&mem, &golden).unwrap(), MemoryForm::Delta { golden: "golden-img-g1".into(), reference: reference.clone() });
        assert!(memory_form(&mem, &image).is_err(), "a delta on a VM booted from the image cannot be right");
        let other = BaseRef { id: "golden-img-g2".into(), disk: dir.path().join("golden/img/g2/disk.qcow2"), ..golden };
        assert!(memory_form(&mem, &other).is_err(), "nor one to another golden");
    }

    #[tokio::test]
    async fn a_capture_goes_by_the_vms_state_and_never_copies_a_disk_it_could_not_freeze() {
        let dir = tempfile::tempdir().unwrap();
        let vm = manager(dir.path()).await;
        let spec = VmSpec { hosting_id: 3, vcpus: 1, memory_mib: 256, disk_gib: 1, http_port: 20_003, ssh_port: 10_003, priority: CpuPriority::default() };
        vm.create_disk(&spec).await.unwrap();
        vm.define(&spec).await.unwrap();
        let staging = |n: &str| {
            let p = dir.path().join(n);
            std::fs::create_dir_all(&p).unwrap();
            p
        };
        let opts = CaptureOpts::default();

        // Powered off: the disk alone, checked and complete.
        let s = staging("off");
        let c = vm.capture_for_backup(3, 1, &s, opts).await.unwrap();
        assert_eq!((c.from, c.memory.as_ref(), c.frozen_for), (CapturedFrom::PoweredOff, None, None));
        assert_eq!(c.disk, s.join("disk.qcow2"));
        assert_eq!(c.bytes, std::fs::metadata(&c.disk).unwrap().len());
        assert_eq!(c.base.kind, BaseKind::Image);
        assert!(c.base.id.starts_with("image-") && vm.base_files(&c.base).contains(&c.base.disk));
        assert_eq!(base_of(&c.disk).unwrap(), c.base, "the copy backs onto the same base");
        assert!(matches!(vm.capture_for_backup(3, 1, &s, opts).await, Err(VmError::Invalid(_))), "a staging folder is filled once");
        let nowhere = dir.path().join("nowhere");
        assert!(matches!(vm.capture_for_backup(3, 1, &nowhere, opts).await, Err(VmError::Invalid(_))));

        // Running: the test driver has no guest agent, so nothing freezes and nothing is copied.
        vm.start(3, CpuPriority::default(), spec.http_port).await.unwrap();
        let s = staging("running");
        let r = vm.capture_for_backup(3, 1, &s, opts).await;
        assert!(matches!(r, Err(VmError::FreezeFailed { .. })), "{r:?}");
        assert_eq!(std::fs::read_dir(&s).unwrap().count(), 0, "no disk copied unfrozen, no part left");
        assert_eq!(vm.state(3).await.unwrap(), VmState::Running);

        // Paused: neither running with an agent nor saved.
        vm.suspend(3).await.unwrap();
        let r = vm.capture_for_backup(3, 1, &s, opts).await;
        assert!(matches!(r, Err(VmError::NotCapturable(VmState::Paused))), "{r:?}");
        vm.destroy(3).await.unwrap();
        vm.undefine(3).await.unwrap();
    }
}
