//! A sleeping VM's saved memory, compressed in libvirt's own save format.
//!
//! libvirt 9.0 compresses a save only when qemu.conf says so (`save_image_format`, read when
//! libvirtd starts), but it restores whatever its header names: the `compressed` word picks the
//! program the stream is piped through on the way to QEMU (`lzop -dc` for 4). So after the
//! save, the memory stream is rewritten here with `lzop -1` (the fastest of libvirt's formats
//! to decompress: a third of the size, BENCHMARKS.md) behind the same header and XML, into a
//! new file renamed over the old one: an interrupted rewrite leaves the raw save as it was.
//! Lossless: the guest gets back exactly the memory it had.
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::vm::{VmError, io};
use super::save_file::{COMPRESSION, HEADER_LEN, read_head, set_word, word};

/// Where libvirt keeps managed saves of qemu:///system.
const MANAGED_SAVE_DIR: &str = "/var/lib/libvirt/qemu/save";
/// libvirt's `QEMU_SAVE_FORMAT_LZOP` (qemu_saveimage.h: raw, gzip, bzip2, xz, lzop).
pub(in crate::vm) const LZOP: u32 = 4;

/// The managed save file of domain `name`.
pub(in crate::vm) fn managed_save_path(name: &str) -> PathBuf {
    Path::new(MANAGED_SAVE_DIR).join(format!("{name}.save"))
}

/// How the save file at `path` stores its memory stream: its header's compression word (0: raw,
/// [`LZOP`], [`super::delta::FORMAT`], or another of libvirt's formats).
pub(in crate::vm) fn stream_format(path: &Path) -> Result<u32, VmError> {
    Ok(word(&read_head(path)?, COMPRESSION))
}

/// Writes a new version of the save file at `path`: `fill` writes it into a file of its own
/// beside it (named second), which is then synced and renamed over `path`. On failure that
/// file goes, and `path` stays as it was.
pub(in crate::vm) fn replace_save_file(path: &Path, fill: impl FnOnce(&mut std::fs::File, &Path) -> Result<(), VmError>) -> Result<(), VmError> {
    let tmp = path.with_extension("save.vmw-tmp");
    let written = (|| {
        let mut out =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io("creating", &tmp))?;
        fill(&mut out, &tmp)?;
        out.sync_all().map_err(io("writing", &tmp))?;
        std::fs::rename(&tmp, path).map_err(io("replacing", path))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Sizes of a rewritten save file, before and after.
#[derive(Clone, Copy, Debug)]
pub struct Compressed {
    pub raw_bytes: u64,
    pub compressed_bytes: u64,
}

/// Compresses the save file at `path` in place. None: no such file (another driver) or it is
/// compressed already.
pub(in crate::vm) fn compress_save_file(path: &Path) -> Result<Option<Compressed>, VmError> {
    if !path.is_file() {
        return Ok(None);
    }
    let mut head = read_head(path)?;
    if word(&head, COMPRESSION) != 0 {
        return Ok(None);
    }
    let raw_bytes = std::fs::metadata(path).map_err(io("reading", path))?.len();
    set_word(&mut head, COMPRESSION, LZOP);
    replace_save_file(path, |out, tmp| {
        out.write_all(&head).map_err(io("writing", tmp))?;
        let mut input = std::fs::File::open(path).map_err(io("opening", path))?;
        input.seek(SeekFrom::Start(head.len() as u64)).map_err(io("reading", path))?;
        debug_assert!(head.len() as u64 >= HEADER_LEN);
        let status = Command::new("lzop")
            .args(["-1", "-c"])
            .stdin(Stdio::from(input))
            .stdout(Stdio::from(out.try_clone().map_err(io("writing", tmp))?))
            .stderr(Stdio::null())
            .status()
            .map_err(io("running lzop on", path))?;
        if !status.success() {
            return Err(VmError::Invalid(format!("lzop failed on {} ({status})", path.display())));
        }
        Ok(())
    })?;
    let compressed_bytes = std::fs::metadata(path).map_err(io("reading", path))?.len();
    Ok(Some(Compressed { raw_bytes, compressed_bytes }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A save file with `stream` as its "memory stream"; returns its header and XML area.
    fn fake_save(path: &Path, stream: &[u8]) -> Vec<u8> {
        let f = super::super::save_file::save_file_bytes(b"<domain/>\0\0\0\0\0\0\0", 0, stream);
        std::fs::write(path, &f).unwrap();
        f[..f.len() - stream.len()].to_vec()
    }

    #[test]
    fn the_stream_is_compressed_behind_the_same_header_and_decompresses_to_the_same_bytes() {
        if Command::new("lzop").arg("--version").output().is_err() {
            eprintln!("lzop is not installed (ops/setup-host.sh installs it): skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.save");
        let stream: Vec<u8> = (0..400_000u32).flat_map(|i| [(i % 7) as u8, 0, 0, (i / 1000) as u8]).collect();
        let head = fake_save(&path, &stream);
        let sizes = compress_save_file(&path).unwrap().expect("compressed");
        assert!(sizes.compressed_bytes < sizes.raw_bytes / 4, "{sizes:?}");
        let now = std::fs::read(&path).unwrap();
        assert_eq!(word(&now, 3), LZOP, "the header names lzop, libvirt restores through lzop -dc");
        let mut want = head.clone();
        want[16 + 12..16 + 16].copy_from_slice(&LZOP.to_ne_bytes());
        assert_eq!(&now[..head.len()], &want[..], "header and XML as they were, but for that word");
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("tail -c +{} {} | lzop -dc", head.len() + 1, path.display()))
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, stream, "lossless");
        assert!(compress_save_file(&path).unwrap().is_none(), "compressed once");
        assert!(compress_save_file(&dir.path().join("none.save")).unwrap().is_none(), "no file: nothing to do");
        assert!(!path.with_extension("save.vmw-tmp").exists());
    }
}
