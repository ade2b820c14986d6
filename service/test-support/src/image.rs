use std::path::{Path, PathBuf};

/// A guest image dir at `data_dir/images/current` for libvirt's test driver, which never runs
/// it: a tiny qcow2 base image (made by `qemu-img`) and placeholder kernel and initrd files.
/// Returns the dir (what `guest_image_dir` / `--guest-image` want).
pub fn fake_guest_image(data_dir: &Path) -> PathBuf {
    let images = data_dir.join("images/current");
    std::fs::create_dir_all(&images).unwrap();
    let status = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(images.join("base.qcow2"))
        .arg("64M")
        .status()
        .expect("qemu-img (qemu-utils)");
    assert!(status.success(), "qemu-img create: {status}");
    std::fs::write(images.join("vmlinuz"), b"kernel").unwrap();
    std::fs::write(images.join("initrd.img"), b"initrd").unwrap();
    images
}
