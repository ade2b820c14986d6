//! Per-VM files: the qcow2 overlay on the base image, the NoCloud seed ISO, the console log.
use std::path::Path;

use tokio::process::Command;

use super::{ImageInfo, VmError, VmManager, VmSpec, io};

/// What the guest's first-boot agent (or cloud-init) sets up. See guest/README.md for the
/// seed layout both read.
#[derive(Clone, Debug)]
pub struct SeedSpec {
    pub hostname: String,
    pub user: String,
    pub authorized_keys: Vec<String>,
    pub index_html: String,
}

/// The folder must be readable by QEMU, which libvirt runs as an unprivileged user.
async fn ensure_dir(dir: &Path) -> Result<(), VmError> {
    tokio::fs::create_dir_all(dir).await.map_err(io("creating", dir))?;
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .await
        .map_err(io("chmod", dir))
}

/// Runs `cmd` (`program` names it in errors); a failure keeps what it wrote to stderr.
pub(super) async fn run(cmd: &mut Command, program: &'static str) -> Result<(), VmError> {
    let out = cmd.output().await.map_err(|source| VmError::Spawn { program, source })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(VmError::Command { program, status: out.status, stderr: String::from_utf8_lossy(&out.stderr).into_owned() })
    }
}

/// `qemu-img create -f qcow2 -F qcow2 -b BASE disk.qcow2 SIZE`. Already there: kept.
pub(super) async fn create_overlay(dir: &Path, base: &Path, disk_gib: u64) -> Result<(), VmError> {
    ensure_dir(dir).await?;
    let disk = dir.join("disk.qcow2");
    if disk.exists() {
        return Ok(());
    }
    let tmp = dir.join("disk.qcow2.tmp");
    run(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(base)
            .arg(&tmp)
            .arg(format!("{}G", disk_gib.max(1))),
        "qemu-img create",
    )
    .await?;
    tokio::fs::rename(&tmp, &disk).await.map_err(io("renaming", &disk))
}

fn cloud_config(s: &SeedSpec) -> String {
    // JSON is valid YAML: serde_json does the quoting, so no value can break out of its field.
    let user = serde_json::json!({
        "name": s.user,
        "sudo": "ALL=(ALL) NOPASSWD:ALL",
        "shell": "/bin/bash",
        "lock_passwd": true,
        "ssh_authorized_keys": s.authorized_keys,
    });
    let doc = serde_json::json!({
        "hostname": s.hostname,
        "ssh_pwauth": false,
        "users": [user],
        "write_files": [{
            "path": "/var/www/html/index.html",
            "content": s.index_html,
            "owner": format!("{}:{}", s.user, s.user),
            "permissions": "0644",
            "defer": true,
        }],
        // SFTP uploads go into the web root: it belongs to the login user.
        "runcmd": [["chown", format!("{}:{}", s.user, s.user), "/var/www/html"]],
    });
    format!("#cloud-config\n{doc}\n")
}

impl SeedSpec {
    /// Hostname and user are plain names and each key is one line: they go into files the
    /// guest reads line by line.
    pub fn validate(&self) -> Result<(), VmError> {
        for (what, v) in [("hostname", &self.hostname), ("user", &self.user)] {
            let ok = !v.is_empty()
                && v.len() <= 63
                && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
            if !ok {
                return Err(VmError::Invalid(format!("seed {what} '{v}' is not a safe name")));
            }
        }
        if self.authorized_keys.iter().any(|k| k.contains('\n') || k.contains('\r')) {
            return Err(VmError::Invalid("an SSH key line contains a line break".into()));
        }
        Ok(())
    }

    /// The guest files a warm spare gets rewritten on claim before its site goes live (paths
    /// in the guest, contents): what the user needs at once, their SSH keys and welcome page.
    /// All of them exist in a spare: its first boot made them, owned by the login user.
    pub(super) fn personal_files(&self) -> Vec<(String, Vec<u8>)> {
        let home = if self.user == "root" { "/root".to_owned() } else { format!("/home/{}", self.user) };
        let keys: String = self.authorized_keys.iter().map(|k| format!("{k}\n")).collect();
        vec![
            (format!("{home}/.ssh/authorized_keys"), keys.into_bytes()),
            ("/var/www/html/index.html".into(), self.index_html.clone().into_bytes()),
        ]
    }

    /// The hostname files, rewritten once the site is live (a shell prompt can wait a moment;
    /// the first visitor should not).
    pub(super) fn hostname_files(&self) -> Vec<(String, Vec<u8>)> {
        vec![
            ("/etc/hostname".into(), format!("{}\n", self.hostname).into_bytes()),
            ("/etc/hosts".into(), format!("127.0.0.1 localhost\n127.0.1.1 {}\n::1 localhost\n", self.hostname).into_bytes()),
        ]
    }
}

/// Writes the NoCloud seed ISO (volume label `cidata`). Rewritten every time (cheap).
pub(super) async fn write_seed(dir: &Path, instance_id: &str, s: &SeedSpec) -> Result<(), VmError> {
    s.validate()?;
    ensure_dir(dir).await?;
    let staging = dir.join("seed.d");
    let _ = tokio::fs::remove_dir_all(&staging).await;
    let wh = staging.join("webhoster");
    tokio::fs::create_dir_all(&wh).await.map_err(io("creating", &wh))?;
    let files: [(std::path::PathBuf, String); 6] = [
        (staging.join("meta-data"), format!("instance-id: {instance_id}\nlocal-hostname: {}\n", s.hostname)),
        (staging.join("user-data"), cloud_config(s)),
        (wh.join("hostname"), format!("{}\n", s.hostname)),
        (wh.join("user"), format!("{}\n", s.user)),
        (wh.join("authorized_keys"), s.authorized_keys.iter().map(|k| format!("{k}\n")).collect()),
        (wh.join("index.html"), s.index_html.clone()),
    ];
    for (p, content) in files {
        tokio::fs::write(&p, content).await.map_err(io("writing", &p))?;
    }
    let tmp = dir.join("seed.iso.tmp");
    run(
        Command::new("genisoimage")
            .arg("-quiet")
            .arg("-output")
            .arg(&tmp)
            .args(["-volid", "cidata", "-joliet", "-rock"])
            .arg(&staging),
        "genisoimage",
    )
    .await?;
    let _ = tokio::fs::remove_dir_all(&staging).await;
    let iso = dir.join("seed.iso");
    tokio::fs::rename(&tmp, &iso).await.map_err(io("renaming", &iso))
}

/// Writes a small file whole (through a temporary name, so a reader never sees half of it).
pub(super) async fn write_file(p: &Path, bytes: &[u8]) -> Result<(), VmError> {
    let tmp = p.with_extension("tmp");
    tokio::fs::write(&tmp, bytes).await.map_err(io("writing", &tmp))?;
    tokio::fs::rename(&tmp, p).await.map_err(io("renaming", p))
}

pub(super) async fn remove_dir(dir: &Path) -> Result<(), VmError> {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("removing", dir)(e)),
    }
}

/// The last `n` lines of a text file (a missing file has none). Reads at most the last 256 KiB.
pub(super) async fn tail(p: &Path, n: usize) -> Result<Vec<String>, VmError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut f = match tokio::fs::File::open(p).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("opening", p)(e)),
    };
    let len = f.metadata().await.map_err(io("reading", p))?.len();
    let start = len.saturating_sub(256 * 1024);
    f.seek(std::io::SeekFrom::Start(start)).await.map_err(io("reading", p))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).await.map_err(io("reading", p))?;
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<String> = text
        .lines()
        .skip(if start > 0 { 1 } else { 0 })
        .map(|l| l.trim_end_matches('\r').chars().filter(|c| !c.is_control() || *c == '\t').collect())
        .collect();
    Ok(lines[lines.len().saturating_sub(n)..].to_vec())
}

impl VmManager {
    pub async fn create_disk(&self, spec: &VmSpec) -> Result<(), VmError> {
        let image = ImageInfo::load(&self.inner.cfg.guest_image_dir)?;
        create_overlay(&self.vm_dir(spec.hosting_id), &image.base, spec.disk_gib).await
    }

    pub async fn write_seed(&self, hosting_id: i32, seed: &SeedSpec) -> Result<(), VmError> {
        let instance_id = self.domain_name(hosting_id);
        write_seed(&self.vm_dir(hosting_id), &instance_id, seed).await
    }

    /// A seed that personalises nothing, for a VM whose disk came back from a backup and is
    /// already itself (hostname, keys, host identity, web root): its volume is not labelled
    /// `cidata`, so the guest's first-boot agent finds no seed and changes nothing. (A NoCloud
    /// seed of another instance-id than the disk's stamp would rewrite the site's page.)
    pub async fn write_inert_seed(&self, hosting_id: i32) -> Result<(), VmError> {
        let dir = self.vm_dir(hosting_id);
        ensure_dir(&dir).await?;
        let staging = dir.join("seed.d");
        let _ = tokio::fs::remove_dir_all(&staging).await;
        tokio::fs::create_dir_all(&staging).await.map_err(io("creating", &staging))?;
        let readme = staging.join("README");
        tokio::fs::write(&readme, "This VM was restored from a backup: nothing to set up.\n").await.map_err(io("writing", &readme))?;
        let tmp = dir.join("seed.iso.tmp");
        run(
            Command::new("genisoimage").arg("-quiet").arg("-output").arg(&tmp).args(["-volid", "vmw-restored", "-joliet", "-rock"]).arg(&staging),
            "genisoimage",
        )
        .await?;
        let _ = tokio::fs::remove_dir_all(&staging).await;
        let iso = dir.join("seed.iso");
        tokio::fs::rename(&tmp, &iso).await.map_err(io("renaming", &iso))
    }

    /// Removes the NoCloud seed. Missing: fine.
    pub async fn remove_seed(&self, hosting_id: i32) -> Result<(), VmError> {
        let seed = self.vm_dir(hosting_id).join("seed.iso");
        match tokio::fs::remove_file(&seed).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("removing", &seed)(e)),
        }
    }

    pub async fn remove_files(&self, hosting_id: i32) -> Result<(), VmError> {
        remove_dir(&self.vm_dir(hosting_id)).await
    }

    /// The last `max_lines` lines of the VM's serial console log.
    pub async fn console_tail(&self, hosting_id: i32, max_lines: usize) -> Result<Vec<String>, VmError> {
        tail(&self.vm_dir(hosting_id).join("console.log"), max_lines).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_config_quotes_every_value() {
        let s = SeedSpec {
            hostname: "site".into(),
            user: "ubuntu".into(),
            authorized_keys: vec!["ssh-ed25519 AAAA x: y".into()],
            index_html: "<h1>\"hi\"\nthere: yes</h1>".into(),
        };
        let c = cloud_config(&s);
        assert!(c.starts_with("#cloud-config\n"));
        let v: serde_json::Value = serde_json::from_str(c.trim_start_matches("#cloud-config\n")).unwrap();
        assert_eq!(v["users"][0]["ssh_authorized_keys"][0], "ssh-ed25519 AAAA x: y");
        assert_eq!(v["write_files"][0]["content"], s.index_html);
    }

    #[tokio::test]
    async fn seed_refuses_unsafe_names_and_writes_an_iso() {
        let dir = tempfile::tempdir().unwrap();
        let bad = SeedSpec { hostname: "a b".into(), user: "ubuntu".into(), authorized_keys: vec![], index_html: String::new() };
        assert!(write_seed(dir.path(), "vmw-1", &bad).await.is_err());
        let ok = SeedSpec { hostname: "site".into(), user: "ubuntu".into(), authorized_keys: vec!["ssh-ed25519 AAAA c".into()], index_html: "hi".into() };
        write_seed(dir.path(), "vmw-1", &ok).await.unwrap();
        let iso = std::fs::read(dir.path().join("seed.iso")).unwrap();
        // ISO 9660 primary volume descriptor at 32 KiB: volume id "cidata".
        assert_eq!(&iso[32768 + 40..32768 + 46], b"cidata");
        assert!(!dir.path().join("seed.d").exists());
    }

    #[tokio::test]
    async fn tail_returns_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("console.log");
        assert!(tail(&p, 5).await.unwrap().is_empty());
        std::fs::write(&p, "a\nb\r\nc\x1b[0m\nd\n").unwrap();
        assert_eq!(tail(&p, 2).await.unwrap(), vec!["c[0m".to_string(), "d".to_string()]);
    }

    #[test]
    fn a_claimed_spare_gets_the_users_keys_page_and_hostname_in_their_own_files() {
        let s = SeedSpec {
            hostname: "wendy".into(),
            user: "ubuntu".into(),
            authorized_keys: vec!["ssh-ed25519 AAAA a".into(), "ssh-ed25519 BBBB b".into()],
            index_html: "<h1>hi</h1>".into(),
        };
        let files = [s.personal_files(), s.hostname_files()].concat();
        let get = |p: &str| files.iter().find(|(path, _)| path == p).map(|(_, b)| String::from_utf8(b.clone()).unwrap());
        assert!(!s.personal_files().iter().any(|(p, _)| p.starts_with("/etc/")), "only what the user needs at once comes first");
        assert_eq!(get("/home/ubuntu/.ssh/authorized_keys").as_deref(), Some("ssh-ed25519 AAAA a\nssh-ed25519 BBBB b\n"));
        assert_eq!(get("/var/www/html/index.html").as_deref(), Some("<h1>hi</h1>"));
        assert_eq!(get("/etc/hostname").as_deref(), Some("wendy\n"));
        assert!(get("/etc/hosts").unwrap().contains("127.0.1.1 wendy\n"));
        let root = SeedSpec { user: "root".into(), ..s };
        assert!(root.personal_files().iter().any(|(p, _)| p == "/root/.ssh/authorized_keys"));
    }
}
