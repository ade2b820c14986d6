//! The VM side of restoring a backup (issue 31; the repository side is
//! `hosting::lifecycle::backups::materialize`): where a base disk lives on this node, what a
//! restored overlay backs onto, a restored disk staged beside the VM's own (swapped in with
//! `snapshots`' swap, so a failure puts the VM's disk back), a restored memory file restored,
//! and a disk flattened into one standalone qcow2 for a download.
//!
//! Where bases live: a guest image's `base.qcow2` in its build folder beside the current
//! image's (`{guest image dir, resolved}/../{build}/`), a golden's `disk.qcow2` in
//! `{data_dir}/golden/{image key}/{golden folder}/` (`golden`'s layout). Folder names come from
//! a backup's files: only plain names (letters, digits, `-`, `.`, `_`, not `.` or `..`) are
//! taken, so nothing restored lands outside those folders.
use std::path::{Path, PathBuf};

use super::memory::delta;
use super::{BaseKind, VmError, VmManager, io};

/// A folder name safe to join to a path: 1-100 of `[A-Za-z0-9._-]`, not `.` or `..`.
pub fn plain_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 100 && n != "." && n != ".." && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

/// What an overlay's header says it backs onto: the base's kind (by its file name) and the
/// names of its folder and the folder above (a golden's image key). None: not an overlay on a
/// base disk of ours, or names that are not plain.
pub fn backing_of(disk: &Path) -> Option<(PathBuf, BaseKind, String, String)> {
    let backing = delta::qcow2_backing_file(disk)?;
    let kind = match backing.file_name()?.to_str()? {
        "base.qcow2" => BaseKind::Image,
        "disk.qcow2" => BaseKind::Golden,
        _ => return None,
    };
    let dir = backing.parent()?;
    let folder = dir.file_name()?.to_str()?.to_owned();
    let above = dir.parent()?.file_name()?.to_str()?.to_owned();
    (backing.is_absolute() && plain_name(&folder) && plain_name(&above)).then_some((backing, kind, folder, above))
}

impl VmManager {
    /// The folder a guest image build named `build` has on this node (beside the current one).
    pub fn image_build_dir(&self, build: &str) -> Result<PathBuf, VmError> {
        if !plain_name(build) {
            return Err(VmError::Invalid(format!("'{build}' is not an image folder name")));
        }
        let dir = &self.inner.cfg.guest_image_dir;
        let real = dir.canonicalize().map_err(|source| VmError::ImageDir { dir: dir.clone(), source })?;
        let root = real.parent().ok_or_else(|| VmError::Invalid(format!("{} has no parent folder", real.display())))?;
        Ok(root.join(build))
    }

    /// The folder golden `folder` of image key `key` has on this node.
    pub fn golden_folder(&self, key: &str, folder: &str) -> Result<PathBuf, VmError> {
        if !plain_name(key) || !plain_name(folder) {
            return Err(VmError::Invalid(format!("'{key}/{folder}' is not a golden folder name")));
        }
        Ok(self.inner.cfg.data_dir.join("golden").join(key).join(folder))
    }

    /// The restored overlay `disk` moved beside the VM's own disk as the one to swap in
    /// (`swap_in_staged_disk`); nothing of the VM changes yet.
    pub async fn stage_restored_disk(&self, hosting_id: i32, disk: &Path) -> Result<(), VmError> {
        let to = self.vm_dir(hosting_id).join(super::snapshots::STAGED);
        move_file(disk, &to).await
    }

    /// Restores the VM (its disk swapped in first) from a restored memory file, running, with
    /// its forwards: a backup with memory brings back the running site.
    pub async fn restore_from_memory_file(&self, hosting_id: i32, mem: &Path, http_port: u16, ssh_port: u16) -> Result<(), VmError> {
        self.restore_memory_file(hosting_id, mem.to_owned(), http_port, ssh_port).await
    }
}

/// Moves a file: a rename, or a copy (synced, through `{to}.part`) and a removal across
/// filesystems.
pub async fn move_file(from: &Path, to: &Path) -> Result<(), VmError> {
    if let Some(dir) = to.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io("creating", dir))?;
    }
    if tokio::fs::rename(from, to).await.is_ok() {
        return Ok(());
    }
    let part = to.with_extension("part");
    tokio::fs::copy(from, &part).await.map_err(io("copying", from))?;
    let f = tokio::fs::File::open(&part).await.map_err(io("opening", &part))?;
    f.sync_all().await.map_err(io("syncing", &part))?;
    tokio::fs::rename(&part, to).await.map_err(io("renaming", &part))?;
    let _ = tokio::fs::remove_file(from).await;
    Ok(())
}

/// `disk` and its backing chain flattened into `out`, one standalone qcow2 (`qemu-img convert
/// -O qcow2`, compressed clusters not used: a download is read once). `-U`: the VM may hold
/// its base open.
pub async fn flatten_qcow2(disk: &Path, out: &Path) -> Result<(), VmError> {
    let mut cmd = tokio::process::Command::new("qemu-img");
    cmd.args(["convert", "-U", "-f", "qcow2", "-O", "qcow2"]).arg(disk).arg(out);
    super::files::run(&mut cmd, "qemu-img convert").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_folder_names_are_taken() {
        for ok in ["current-2026", "g-0123abcd", "lean_x.1"] {
            assert!(plain_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "x\0", &"a".repeat(101)] {
            assert!(!plain_name(bad), "{bad:?}");
        }
    }
}
