//! What the backup tests share: restic present, sites whose disk is a real qcow2 overlay on a
//! base (the test driver's own disks are not) and how they read what a disk holds, waiting for a
//! backup to end, the repository under the data dir.
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use service::accounts::Actor;
use service::backup::{RepoSettings, Restic};
use service::hosting::{BackupState, BackupView, HostingState, Operation};

use super::Env;

pub fn qemu_img(args: &[&str], paths: &[&Path]) -> String {
    let out = Command::new("qemu-img").args(args).args(paths).output().expect("qemu-img (qemu-utils)");
    assert!(out.status.success(), "qemu-img {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn qemu_io(img: &Path, cmd: &str) -> String {
    let out = Command::new("qemu-io").args(["-f", "qcow2", "-c", cmd]).arg(img).output().expect("qemu-io");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Whether `img` holds `pattern` over `len` bytes at `offset`.
pub fn holds(img: &Path, pattern: u8, offset: &str, len: &str) -> bool {
    let r = qemu_io(img, &format!("read -P {pattern} {offset} {len}"));
    r.contains("read ") && !r.contains("verification failed") && !r.contains("Pattern verification")
}

/// A powered-off site whose disk is a real qcow2 overlay (`0x5a` at 1M..9M) on a guest image's
/// base (`0x11` at 0..16M) under the data dir's `images/test-build/`.
pub async fn powered_off_site(e: &Env, data: &Path, a: &Actor, slug: &str) -> i32 {
    let h = e.running_site(a, slug).await;
    e.svc.action(a, h.id, Operation::PowerOff).await.unwrap();
    let v = e.settled(a, h.id).await;
    assert_eq!(v.state, HostingState::Stopped, "{:?}", v.state_reason);
    let base = data.join("images/test-build/base.qcow2");
    if !base.exists() {
        std::fs::create_dir_all(base.parent().unwrap()).unwrap();
        qemu_img(&["create", "-q", "-f", "qcow2"], &[&base, Path::new("64M")]);
        assert!(qemu_io(&base, "write -P 0x11 0 16M").contains("wrote"));
    }
    let disk = e.svc.vm().vm_dir(h.id).join("disk.qcow2");
    let _ = std::fs::remove_file(&disk);
    qemu_img(&["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"], &[&base, &disk, Path::new("64M")]);
    assert!(qemu_io(&disk, "write -P 0x5a 1M 8M").contains("wrote"));
    h.id
}

/// Whether restic is installed; without it a test says it is skipped (and fails when
/// REQUIRE_RESTIC=1).
pub fn restic_installed(test: &str) -> bool {
    if Command::new("restic").arg("version").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    assert!(std::env::var("REQUIRE_RESTIC").is_err(), "REQUIRE_RESTIC is set but restic is not installed");
    eprintln!("SKIPPED {test}: restic not installed (apt-get install restic)");
    false
}

pub fn qemu_io_write(img: &Path, pattern: u8, offset: &str, len: &str) {
    let out = qemu_io(img, &format!("write -P {pattern} {offset} {len}"));
    assert!(out.contains("wrote"), "qemu-io write: {out}");
}

pub async fn finished(e: &Env, a: &Actor, id: i32, b: &BackupView) -> BackupView {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let now = e.svc.get_backup(a, id, b.id).await.unwrap();
        if now.state != BackupState::Running {
            // The operation ends just after the row.
            e.settled(a, id).await;
            return now;
        }
        assert!(tokio::time::Instant::now() < deadline, "backup {} still running", b.id);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn repo(data: &Path) -> Restic {
    let s = RepoSettings::new(
        data.join("backups/repository").display().to_string(),
        data.join("backups/password"),
        data.join("backups/test-cache"),
    );
    Restic::new(s).unwrap()
}

/// Backs up site `id` now and waits until the backup succeeded (and the site settled).
pub async fn backed_up(e: &Env, a: &Actor, id: i32) -> BackupView {
    let b = finished(e, a, id, &e.svc.back_up(a, id, false).await.unwrap()).await;
    assert_eq!(b.state, BackupState::Succeeded, "{:?}", b.error);
    b
}
