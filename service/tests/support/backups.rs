//! Sites to back up and what the backup tests share: restic present, a powered-off site with a
//! real qcow2 overlay on a base, waiting for a backup to end, the repository under the data dir.
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use service::accounts::Actor;
use service::backup::{RepoSettings, Restic};
use service::hosting::{BackupState, BackupView, HostingState, Operation};

use super::Env;

pub fn restic_installed(test: &str) -> bool {
    if Command::new("restic").arg("version").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    assert!(std::env::var("REQUIRE_RESTIC").is_err(), "REQUIRE_RESTIC is set but restic is not installed");
    eprintln!("SKIPPED {test}: restic not installed (apt-get install restic)");
    false
}

pub fn qemu_img(args: &[&str], paths: &[&Path]) {
    let st = Command::new("qemu-img").args(args).args(paths).status().expect("qemu-img (qemu-utils)");
    assert!(st.success(), "qemu-img {args:?}");
}

pub fn qemu_io_write(img: &Path, pattern: u8, offset: &str, len: &str) {
    let cmd = format!("write -P {pattern} {offset} {len}");
    let st = Command::new("qemu-io").args(["-f", "qcow2", "-c", &cmd]).arg(img).stdout(std::process::Stdio::null()).status().expect("qemu-io");
    assert!(st.success(), "qemu-io {cmd}");
}

/// A powered-off site whose disk is a real qcow2 overlay (8 MiB written) on a guest image's
/// base under the data dir.
pub async fn powered_off_site(e: &Env, data: &Path, a: &Actor, slug: &str) -> i32 {
    let h = e.running_site(a, slug).await;
    e.svc.action(a, h.id, Operation::PowerOff).await.unwrap();
    let v = e.settled(a, h.id).await;
    assert_eq!(v.state, HostingState::Stopped, "{:?}", v.state_reason);
    let base = data.join("images/test-build/base.qcow2");
    if !base.exists() {
        std::fs::create_dir_all(base.parent().unwrap()).unwrap();
        qemu_img(&["create", "-q", "-f", "qcow2"], &[&base, Path::new("64M")]);
        qemu_io_write(&base, 0x11, "0", "16M");
    }
    let disk = e.svc.vm().vm_dir(h.id).join("disk.qcow2");
    let _ = std::fs::remove_file(&disk);
    qemu_img(&["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"], &[&base, &disk, Path::new("64M")]);
    qemu_io_write(&disk, 0x5a, "1M", "8M");
    h.id
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
