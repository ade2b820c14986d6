//! A sleeping clone's saved memory, stored as its difference to the golden snapshot's.
//!
//! Every clone starts from the golden's memory, and a site asleep still holds most of it
//! unchanged (kernel, nginx, sshd, at the same guest addresses). So its memory stream is
//! compressed by zstd with the golden's own stream as a reference prefix (what `zstd
//! --patch-from` does; long-distance matching finds the unchanged pages): ~104 MB of saved
//! memory take ~2.3 MB, against ~37 MB with lzop (BENCHMARKS.md). Lossless, and checked: the
//! frame carries zstd's checksum of the whole stream, so a wrong reference cannot restore
//! wrong memory, it fails.
//!
//! The file stays libvirt's managed save (libvirt still reports the domain as saved), but its
//! header's compression word is [`FORMAT`], a format libvirt does not know: anyone who asks
//! libvirt itself to restore it gets "Invalid compressed save format" instead of a guest with
//! the wrong memory. The VM's start serves it, expanded, as a plain save through a named pipe
//! that libvirt restores from (`super::wake_feed`), and only then drops the sleeping one
//! (`VmManager::start`).
//!
//! Layout after libvirt's header and XML area (host byte order, as libvirt's own header):
//! [`MAGIC`], the reference's stream offset and length (u64 each), the stream's length (u64),
//! the reference's path (u32 length, then its bytes), then one zstd frame to the end.
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use zstd::zstd_safe::{CCtx, CParameter};

use crate::vm::{VmError, io};
use super::compress::{Compressed, replace_save_file};
use super::save_file::{COMPRESSION, HEADER_LEN, SAVE_MAGIC, read_head, set_word, word};

/// The named pipe a delta is served through, expanded, for a wake, in the VM's folder; removed
/// once the restore returned (`VmManager::start`), or at start-up when a process died in between.
pub(in crate::vm) const WAKE_FILE: &str = "wake.save";
/// The header's compression word of a delta file (libvirt knows 0-4).
pub(in crate::vm) const FORMAT: u32 = u32::from_le_bytes(*b"vmwd");
const MAGIC: &[u8; 16] = b"vmw-golden-delta";
/// zstd's level: the fastest. Long-distance matching does the work here (level 3 saved 8 %).
const LEVEL: i32 = 1;

/// A golden snapshot's memory stream: the file and where the stream starts in it. The stream
/// of a complete golden is never written again (a clone rewrites only the XML area before it).
#[derive(Clone, Debug, PartialEq)]
pub(in crate::vm) struct Reference {
    pub path: PathBuf,
    pub offset: u64,
}

impl Reference {
    /// The golden memory the VM in `vm_dir` was cloned from: its disk's backing file is the
    /// golden's disk, and beside it lies the golden's saved memory. None: a VM booted from the
    /// image (its disk backs onto the image itself), or not a qcow2 overlay.
    pub fn of_vm(vm_dir: &Path) -> Option<Reference> {
        let backing = qcow2_backing_file(&vm_dir.join("disk.qcow2"))?;
        let backing = if backing.is_absolute() { backing } else { vm_dir.join(backing) };
        let gdir = backing.parent()?;
        if backing.file_name()? != "disk.qcow2" || !gdir.join("golden.json").is_file() {
            return None;
        }
        Self::of_save_file(&gdir.join("state.save")).ok()
    }

    /// The stream of the save file at `path`: after its header and XML area.
    pub fn of_save_file(path: &Path) -> Result<Reference, VmError> {
        let head = read_head(path)?;
        Ok(Reference { path: path.to_owned(), offset: head.len() as u64 })
    }
}

/// The backing file named in a qcow2 image's header (None: none, or not qcow2).
pub(in crate::vm) fn qcow2_backing_file(path: &Path) -> Option<PathBuf> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut h = [0u8; 20];
    f.read_exact(&mut h).ok()?;
    if &h[..4] != b"QFI\xfb" {
        return None;
    }
    let offset = u64::from_be_bytes(h[8..16].try_into().ok()?);
    let len = u32::from_be_bytes(h[16..20].try_into().ok()?) as usize;
    if offset == 0 || len == 0 || len > 4096 {
        return None;
    }
    let mut name = vec![0u8; len];
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(offset)).ok()?;
    f.read_exact(&mut name).ok()?;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(&name)))
}

fn invalid(path: &Path, why: impl std::fmt::Display) -> VmError {
    VmError::Invalid(format!("{}: {why}", path.display()))
}

fn zstd_error(path: &Path, what: &str, code: usize) -> VmError {
    invalid(path, format!("{what}: {}", zstd::zstd_safe::get_error_name(code)))
}

/// Maps `path` read-only. The files mapped here are never written while mapped: a saved VM's
/// file (its operation holds the site) and a golden's stream.
fn map(path: &Path) -> Result<memmap2::Mmap, VmError> {
    let f = std::fs::File::open(path).map_err(io("opening", path))?;
    // SAFETY: see above: nothing truncates or writes these files while the map lives.
    unsafe { memmap2::Mmap::map(&f) }.map_err(io("mapping", path))
}

/// The reference's stream, checked to be `len` bytes when given.
fn reference_stream<'m>(r: &Reference, m: &'m memmap2::Mmap, len: Option<u64>) -> Result<&'m [u8], VmError> {
    let all = m.len() as u64;
    match len {
        Some(len) if r.offset.checked_add(len) != Some(all) => {
            Err(invalid(&r.path, format!("the golden memory is {} bytes, not the {len} this save was made against", all.saturating_sub(r.offset))))
        }
        _ if r.offset > all => Err(invalid(&r.path, "shorter than its header")),
        _ => Ok(&m[r.offset as usize..]),
    }
}

/// Whether the save file at `path` is a delta (false: no file, or another format).
pub(in crate::vm) fn is_delta(path: &Path) -> bool {
    let mut h = [0u8; HEADER_LEN as usize];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut h)).is_ok() && &h[..16] == SAVE_MAGIC && word(&h, COMPRESSION) == FORMAT
}

/// Rewrites the plain save file at `path` as a delta to `reference`, through a new file renamed
/// over it (an interrupted rewrite leaves the plain save). None: not a plain save (compressed
/// already, or no file).
pub(in crate::vm) fn write_delta(path: &Path, reference: &Reference) -> Result<Option<Compressed>, VmError> {
    if !path.is_file() {
        return Ok(None);
    }
    let mut head = read_head(path)?;
    if word(&head, COMPRESSION) != 0 {
        return Ok(None);
    }
    let save = map(path)?;
    let stream = &save[head.len()..];
    let rmap = map(&reference.path)?;
    let prefix = reference_stream(reference, &rmap, None)?;
    // The window reaches back over the whole stream and the reference before it.
    let span = (prefix.len() + stream.len()).max(1 << 20) as u64;
    let window_log = (64 - (span - 1).leading_zeros()).clamp(20, 30);
    let mut c = CCtx::create();
    let set = |c: &mut CCtx, p| c.set_parameter(p).map_err(|e| zstd_error(path, "setting up zstd", e));
    set(&mut c, CParameter::CompressionLevel(LEVEL))?;
    set(&mut c, CParameter::WindowLog(window_log))?;
    set(&mut c, CParameter::EnableLongDistanceMatching(true))?;
    set(&mut c, CParameter::ChecksumFlag(true))?;
    set(&mut c, CParameter::ContentSizeFlag(true))?;
    c.ref_prefix(prefix).map_err(|e| zstd_error(path, "setting up zstd", e))?;
    // Only the bytes written are ever touched (a few MB); the rest is address space.
    let mut frame: Vec<u8> = Vec::with_capacity(zstd::zstd_safe::compress_bound(stream.len()));
    c.compress2(&mut frame, stream).map_err(|e| zstd_error(path, "compressing", e))?;
    drop(c);

    set_word(&mut head, COMPRESSION, FORMAT);
    let rpath = reference.path.as_os_str().as_bytes();
    let mut meta = Vec::with_capacity(64 + rpath.len());
    meta.extend_from_slice(MAGIC);
    meta.extend_from_slice(&reference.offset.to_ne_bytes());
    meta.extend_from_slice(&(prefix.len() as u64).to_ne_bytes());
    meta.extend_from_slice(&(stream.len() as u64).to_ne_bytes());
    meta.extend_from_slice(&(rpath.len() as u32).to_ne_bytes());
    meta.extend_from_slice(rpath);

    replace_save_file(path, |out, tmp| {
        out.write_all(&head).map_err(io("writing", tmp))?;
        out.write_all(&meta).map_err(io("writing", tmp))?;
        out.write_all(&frame).map_err(io("writing", tmp))
    })?;
    let raw_bytes = save.len() as u64;
    let compressed_bytes = (head.len() + meta.len() + frame.len()) as u64;
    Ok(Some(Compressed { raw_bytes, compressed_bytes }))
}

/// What a delta file says after libvirt's header and XML area.
pub(in crate::vm) struct Meta {
    reference: Reference,
    reference_len: u64,
    pub stream_len: u64,
    /// Where the zstd frame starts in the file.
    frame_at: usize,
}

impl Meta {
    /// The golden memory file this delta was made against (it cannot be restored without it).
    pub fn reference_path(&self) -> &Path {
        &self.reference.path
    }
}

fn read_meta(path: &Path, file: &[u8], head_len: usize) -> Result<Meta, VmError> {
    let bad = || invalid(path, "not a complete delta save file");
    let rest = file.get(head_len..).ok_or_else(bad)?;
    if rest.get(..16) != Some(&MAGIC[..]) {
        return Err(bad());
    }
    let u64_at = |at: usize| -> Result<u64, VmError> { Ok(u64::from_ne_bytes(rest.get(at..at + 8).ok_or_else(bad)?.try_into().map_err(|_| bad())?)) };
    let (offset, reference_len, stream_len) = (u64_at(16)?, u64_at(24)?, u64_at(32)?);
    let plen = u32::from_ne_bytes(rest.get(40..44).ok_or_else(bad)?.try_into().map_err(|_| bad())?) as usize;
    if plen == 0 || plen > 4096 {
        return Err(bad());
    }
    let rpath = PathBuf::from(std::ffi::OsStr::from_bytes(rest.get(44..44 + plen).ok_or_else(bad)?));
    if !rpath.is_absolute() || stream_len > 1 << 40 {
        return Err(bad());
    }
    Ok(Meta { reference: Reference { path: rpath, offset }, reference_len, stream_len, frame_at: head_len + 44 + plen })
}

/// A delta file opened for its expansion: its header (libvirt's, as in the file), what it says
/// of its reference, and both files mapped.
pub(in crate::vm) struct Opened {
    pub head: Vec<u8>,
    pub meta: Meta,
    file: memmap2::Mmap,
    reference: memmap2::Mmap,
}

impl Opened {
    /// The golden's stream the frame was made against, checked to be as long as it was then.
    pub fn reference_stream(&self) -> Result<&[u8], VmError> {
        reference_stream(&self.meta.reference, &self.reference, Some(self.meta.reference_len))
    }

    /// The zstd frame.
    pub fn frame(&self) -> &[u8] {
        &self.file[self.meta.frame_at..]
    }
}

/// Opens the delta file at `path` and its reference (see [`Opened`]), checked.
pub(in crate::vm) fn open(path: &Path) -> Result<Opened, VmError> {
    let head = read_head(path)?;
    if word(&head, COMPRESSION) != FORMAT {
        return Err(invalid(path, "not a delta save file"));
    }
    let file = map(path)?;
    let meta = read_meta(path, &file, head.len())?;
    let reference = map(&meta.reference.path)?;
    let opened = Opened { head, meta, file, reference };
    opened.reference_stream()?;
    Ok(opened)
}

/// Turns a delta's header into the header of the plain save it expands to.
pub(in crate::vm) fn mark_plain(head: &mut [u8]) {
    set_word(head, COMPRESSION, 0);
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::OpenOptionsExt;

    use super::super::wake_feed::Feed;
    use super::*;

    /// A save file with the XML area `xml` and the "memory stream" `stream`; returns its bytes.
    fn fake_save(path: &Path, xml: &[u8], stream: &[u8]) -> Vec<u8> {
        let f = super::super::save_file::save_file_bytes(xml, 0, stream);
        std::fs::write(path, &f).unwrap();
        f
    }

    /// Pseudo-random pages (incompressible alone), `n` of 4 KiB.
    fn pages(seed: u64, n: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n * 4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// A golden stream of 2 MiB and a clone's: the same pages, a few changed.
    fn golden_and_clone() -> (Vec<u8>, Vec<u8>) {
        let golden = pages(7, 512);
        let mut clone = golden.clone();
        clone[100 * 4096..103 * 4096].copy_from_slice(&pages(99, 3));
        (golden, clone)
    }

    /// A golden save file and a clone's, both in `dir`, the clone's rewritten as a delta to the
    /// golden's. Returns the golden's stream and both paths.
    fn delta_of_a_clone(dir: &Path) -> (Vec<u8>, PathBuf, PathBuf) {
        let (golden, clone) = golden_and_clone();
        let gpath = dir.join("state.save");
        fake_save(&gpath, b"<domain/>\0\0\0", &golden);
        let spath = dir.join("d.save");
        fake_save(&spath, b"<domain/>\0\0\0", &clone);
        write_delta(&spath, &Reference::of_save_file(&gpath).unwrap()).unwrap().unwrap();
        (golden, gpath, spath)
    }

    /// Reads the wake pipe of the delta at `spath` as libvirt 9.0 does (opened once, read to its
    /// end), then the feed's verdict.
    fn read_through_pipe(spath: &Path) -> Result<(Vec<u8>, Result<(), VmError>), VmError> {
        let fifo = spath.with_file_name(WAKE_FILE);
        let feed = Feed::start(spath, &fifo)?;
        let mut bytes = Vec::new();
        std::fs::File::open(feed.path()).unwrap().read_to_end(&mut bytes).unwrap();
        let verdict = feed.finish();
        assert!(!fifo.exists(), "the pipe goes with the feed");
        Ok((bytes, verdict))
    }

    #[test]
    fn a_clone_is_stored_as_a_small_delta_and_served_as_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (golden, clone) = golden_and_clone();
        let gpath = dir.path().join("state.save");
        fake_save(&gpath, b"<domain>golden</domain>\0\0\0\0", &golden);
        let spath = dir.path().join("d.save");
        let original = fake_save(&spath, b"<domain>site</domain>\0\0\0", &clone);
        let reference = Reference::of_save_file(&gpath).unwrap();

        let sizes = write_delta(&spath, &reference).unwrap().expect("written");
        assert!(sizes.compressed_bytes < 64 * 1024, "3 changed pages of 512: {sizes:?}");
        assert!(is_delta(&spath));
        assert!(write_delta(&spath, &reference).unwrap().is_none(), "a delta is not written twice");
        assert!(!spath.with_extension("save.vmw-tmp").exists());

        let (bytes, verdict) = read_through_pipe(&spath).unwrap();
        verdict.unwrap();
        assert!(bytes == original, "header, XML and memory as libvirt wrote them ({} bytes of {})", bytes.len(), original.len());
        assert!(is_delta(&spath), "the delta stays until the restore worked");
        assert_eq!(Feed::start(&spath, &dir.path().join(WAKE_FILE)).unwrap().xml(), "<domain>site</domain>");
    }

    #[test]
    fn a_reader_that_left_early_lets_the_next_get_the_whole_file_and_then_the_pipe_closes() {
        let dir = tempfile::tempdir().unwrap();
        let (_, _, spath) = delta_of_a_clone(dir.path());
        let (expected, verdict) = read_through_pipe(&spath).unwrap();
        verdict.unwrap();
        let feed = Feed::start(&spath, &dir.path().join(WAKE_FILE)).unwrap();
        // Newer libvirt reads the header once for the save's metadata, then opens it again.
        let mut head = vec![0u8; HEADER_LEN as usize + 12];
        std::fs::File::open(feed.path()).unwrap().read_exact(&mut head).unwrap();
        assert_eq!(head, expected[..head.len()]);
        // (libvirt parses that XML before it opens again; a reader back within microseconds
        // could still find the first one's unread bytes in the pipe.)
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut bytes = Vec::new();
        std::fs::File::open(feed.path()).unwrap().read_to_end(&mut bytes).unwrap();
        assert!(bytes == expected, "{} bytes of {}", bytes.len(), expected.len());
        // Once someone got it all, the pipe has no writer any more: a late reader gets nothing.
        let mut late = Vec::new();
        let nonblocking = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(feed.path());
        nonblocking.unwrap().read_to_end(&mut late).unwrap();
        assert!(late.is_empty(), "{} bytes", late.len());
        feed.finish().unwrap();
    }

    #[test]
    fn a_feed_nobody_read_ends_and_leaves_no_pipe() {
        let dir = tempfile::tempdir().unwrap();
        let (_, _, spath) = delta_of_a_clone(dir.path());
        let fifo = dir.path().join(WAKE_FILE);
        // The restore failed before libvirt opened the pipe.
        Feed::start(&spath, &fifo).unwrap().finish().unwrap();
        assert!(!fifo.exists());
        drop(Feed::start(&spath, &fifo).unwrap());
        assert!(!fifo.exists(), "dropped without finish: stopped all the same");
    }

    #[test]
    fn a_changed_or_missing_reference_fails_instead_of_restoring_wrong_memory() {
        let dir = tempfile::tempdir().unwrap();
        let (golden, gpath, spath) = delta_of_a_clone(dir.path());

        // The same length, one byte changed: zstd's checksum of the stream catches it.
        let mut changed = golden.clone();
        changed[200 * 4096 + 5] ^= 0xff;
        fake_save(&gpath, b"<domain/>\0\0\0", &changed);
        let (_, verdict) = read_through_pipe(&spath).unwrap();
        let err = verdict.unwrap_err().to_string();
        assert!(err.contains("expanding the saved memory"), "{err}");

        fake_save(&gpath, b"<domain/>\0\0\0", &golden[..4096]);
        let err = read_through_pipe(&spath).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("not the"), "{err}");

        std::fs::remove_file(&gpath).unwrap();
        assert!(read_through_pipe(&spath).is_err());
        assert!(is_delta(&spath), "the sleeping file is untouched by failed wakes");
        assert!(!dir.path().join(WAKE_FILE).exists());
    }

    #[test]
    fn a_truncated_delta_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_, _, spath) = delta_of_a_clone(dir.path());
        let bytes = std::fs::read(&spath).unwrap();
        std::fs::write(&spath, &bytes[..bytes.len() - 10]).unwrap();
        let (served, verdict) = read_through_pipe(&spath).unwrap();
        assert!(verdict.is_err());
        assert!(served.len() < HEADER_LEN as usize + 12 + 512 * 4096, "a short file, so the restore fails: {}", served.len());
        std::fs::write(&spath, &bytes[..HEADER_LEN as usize + 12 + 20]).unwrap();
        assert!(Feed::start(&spath, &dir.path().join(WAKE_FILE)).is_err());
    }

    #[test]
    fn the_golden_of_a_clone_is_found_through_its_disks_backing_file() {
        let dir = tempfile::tempdir().unwrap();
        let gdir = dir.path().join("golden/img/g-1");
        std::fs::create_dir_all(&gdir).unwrap();
        fake_save(&gdir.join("state.save"), b"<domain/>\0\0\0", &[1, 2, 3]);
        std::fs::write(gdir.join("golden.json"), "{}").unwrap();
        let qcow2 = |path: &Path, backing: &str| {
            let mut h = b"QFI\xfb".to_vec();
            h.extend_from_slice(&3u32.to_be_bytes());
            h.extend_from_slice(&(104u64).to_be_bytes());
            h.extend_from_slice(&(backing.len() as u32).to_be_bytes());
            h.resize(104, 0);
            h.extend_from_slice(backing.as_bytes());
            std::fs::write(path, h).unwrap();
        };
        let vm = dir.path().join("vms/1");
        std::fs::create_dir_all(&vm).unwrap();
        qcow2(&vm.join("disk.qcow2"), &gdir.join("disk.qcow2").display().to_string());
        let r = Reference::of_vm(&vm).expect("a clone");
        assert_eq!(r.path, gdir.join("state.save"));
        assert_eq!(r.offset, HEADER_LEN + 12);

        // A VM booted from the image backs onto the image: no golden.
        qcow2(&vm.join("disk.qcow2"), "/srv/images/current/base.qcow2");
        assert_eq!(Reference::of_vm(&vm), None);
        std::fs::write(vm.join("disk.qcow2"), b"not qcow2").unwrap();
        assert_eq!(Reference::of_vm(&vm), None);
    }
}
