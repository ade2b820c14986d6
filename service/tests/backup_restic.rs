//! The restic driver against real restic (Debian's 0.14) and three real repositories, each
//! started by the test on loopback and stopped when the test ends, even on failure:
//! - a local folder (a tempdir);
//! - REST: `rclone serve restic --addr 127.0.0.1:PORT DIR` (Debian's rclone);
//! - SFTP: an sshd of the test's own on 127.0.0.1:PORT (its own config, host key and authorised
//!   key, as ops/test-node2.sh does), reached through `-o sftp.command='ssh -p PORT -i KEY ...'`.
//!
//! Without restic (or rclone, sshd for their tests) every test says it is skipped, and fails
//! instead when REQUIRE_RESTIC=1 (as in CI).
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use service::backup::{BackupError, KeepPolicy, Progress, RepoSettings, Restic, SftpCommand, SnapshotFilter, SnapshotId, Tag, Timeouts};

const HOST: &str = "node-1";

fn installed(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| !Command::new("sh").args(["-c", &format!("command -v {t}")]).output().is_ok_and(|o| o.status.success()))
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(std::env::var("REQUIRE_RESTIC").is_err(), "REQUIRE_RESTIC is set but {missing:?} are not installed");
    eprintln!("SKIPPED {test}: {missing:?} not installed (apt-get install restic rclone openssh-server)");
    false
}

fn tag(s: &str) -> Tag {
    Tag::parse(s).unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what} exited before listening: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not listen on 127.0.0.1:{port}");
}

/// A server process of the test, killed on drop (also when the test panics).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A repository of one backend, with its driver. The tempdir holds the repository (or the
/// server's data), the password file, restic's cache and the test's files.
struct Repo {
    dir: tempfile::TempDir,
    restic: Restic,
    _server: Option<Server>,
}

impl Repo {
    fn settings(dir: &Path, url: String, password: &str) -> RepoSettings {
        let pw = dir.join(format!("password-{password}"));
        std::fs::write(&pw, format!("{password}\n")).unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut s = RepoSettings::new(url, pw, dir.join("cache"));
        s.timeouts = Timeouts { metadata: Duration::from_secs(60), data: Duration::from_secs(300) };
        s
    }

    fn local() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("repo").to_str().unwrap().to_string();
        let restic = Restic::new(Self::settings(dir.path(), url, "local-secret")).unwrap();
        Self { dir, restic, _server: None }
    }

    fn rest() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let data = dir.path().join("rest-data");
        std::fs::create_dir(&data).unwrap();
        let mut child = Command::new("rclone")
            .args(["serve", "restic", "--addr", &format!("127.0.0.1:{port}")])
            .arg(&data)
            .env("RCLONE_CONFIG", dir.path().join("rclone.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port, &mut child, "rclone serve restic");
        let server = Server(child);
        let restic = Restic::new(Self::settings(dir.path(), format!("rest:http://127.0.0.1:{port}/"), "rest-secret")).unwrap();
        Self { dir, restic, _server: Some(server) }
    }

    fn sftp() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let port = free_port();
        for key in ["host_ed25519", "id_ed25519"] {
            let ok = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "vmw-backup-test", "-f"]).arg(d.join(key)).status().unwrap();
            assert!(ok.success(), "ssh-keygen");
        }
        std::fs::copy(d.join("id_ed25519.pub"), d.join("authorized_keys")).unwrap();
        let host_pub = std::fs::read_to_string(d.join("host_ed25519.pub")).unwrap();
        let host_key: Vec<&str> = host_pub.split_whitespace().take(2).collect();
        std::fs::write(d.join("known_hosts"), format!("[127.0.0.1]:{port} {}\n", host_key.join(" "))).unwrap();
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {hk}\nPidFile {pid}\nAuthorizedKeysFile {ak}\n\
                 PermitRootLogin prohibit-password\nAllowUsers {user}\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nX11Forwarding no\n\
                 AllowTcpForwarding no\nSubsystem sftp internal-sftp\n",
                hk = d.join("host_ed25519").display(),
                pid = d.join("sshd.pid").display(),
                ak = d.join("authorized_keys").display(),
            ),
        )
        .unwrap();
        // sshd's privilege separation folder (Debian's unit makes it; no unit runs here).
        let _ = std::fs::create_dir_all("/run/sshd");
        let mut child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
            .spawn()
            .unwrap();
        wait_for_port(port, &mut child, "sshd");
        let server = Server(child);
        let path = d.join("sftp-repo");
        let mut settings = Self::settings(d, format!("sftp:{user}@127.0.0.1:{}", path.display()), "sftp-secret");
        let key = d.join("id_ed25519").display().to_string();
        let known = format!("UserKnownHostsFile={}", d.join("known_hosts").display());
        settings.sftp_command = Some(SftpCommand::new(
            "ssh",
            [
                "-F", "/dev/null", "-p", &port.to_string(), "-i", &key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=yes", "-o", &known, &format!("{user}@127.0.0.1"), "-s", "sftp",
            ],
        ));
        let restic = Restic::new(settings).unwrap();
        Self { dir, restic, _server: Some(server) }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The same repository opened with another password.
    fn with_password(&self, password: &str) -> Restic {
        let s = self.restic.settings();
        let mut other = Self::settings(self.dir.path(), s.url.clone(), password);
        other.sftp_command = s.sftp_command.clone();
        Restic::new(other).unwrap()
    }
}

/// Back up a folder, change a file, restore the first snapshot: the old bytes come back.
async fn restore_gives_old_bytes(repo: Repo) {
    assert!(repo.restic.version().await.unwrap().starts_with("restic "));
    assert!(repo.restic.init_if_missing().await.unwrap(), "a new repository is created");
    assert!(!repo.restic.init_if_missing().await.unwrap(), "an existing repository is kept");
    let site = repo.path("site");
    std::fs::create_dir_all(site.join("www")).unwrap();
    std::fs::write(site.join("www/index.html"), "version 1").unwrap();
    let first = repo.restic.backup_files(std::slice::from_ref(&site), &[tag("site:1")], HOST, |_| {}).await.unwrap();
    assert_eq!(first.files_new, 1);
    std::fs::write(site.join("www/index.html"), "version 2, longer").unwrap();
    let second = repo.restic.backup_files(std::slice::from_ref(&site), &[tag("site:1")], HOST, |_| {}).await.unwrap();
    assert_eq!(second.files_changed, 1);

    let snaps = repo.restic.snapshots(&SnapshotFilter::tagged([tag("site:1")])).await.unwrap();
    assert_eq!(snaps.iter().map(|s| s.short_id.as_str()).collect::<Vec<_>>(), [first.snapshot_id.as_str(), second.snapshot_id.as_str()]);
    assert_eq!(snaps[0].hostname, HOST);
    assert_eq!(snaps[0].tags, ["site:1"]);
    assert_eq!(snaps[0].paths, [site.display().to_string()]);

    let target = repo.path("restored");
    let id = SnapshotId::parse(&first.snapshot_id).unwrap();
    repo.restic.restore(&id, &target, None).await.unwrap();
    let restored = target.join(site.strip_prefix("/").unwrap()).join("www/index.html");
    assert_eq!(std::fs::read_to_string(&restored).unwrap(), "version 1");
    // Only one file, into another folder.
    let only = repo.path("only");
    repo.restic.restore(&id, &only, Some(&site.join("www/index.html"))).await.unwrap();
    assert_eq!(std::fs::read_to_string(only.join(site.strip_prefix("/").unwrap()).join("www/index.html")).unwrap(), "version 1");
    repo.restic.check().await.unwrap();
}

#[tokio::test]
async fn local_folder_restores_old_bytes() {
    if installed("local_folder_restores_old_bytes", &["restic"]) {
        restore_gives_old_bytes(Repo::local()).await;
    }
}

#[tokio::test]
async fn rest_server_restores_old_bytes() {
    if installed("rest_server_restores_old_bytes", &["restic", "rclone"]) {
        restore_gives_old_bytes(Repo::rest()).await;
    }
}

#[tokio::test]
async fn sftp_server_restores_old_bytes() {
    if installed("sftp_server_restores_old_bytes", &["restic", "ssh", "ssh-keygen", "/usr/sbin/sshd"]) {
        restore_gives_old_bytes(Repo::sftp()).await;
    }
}

/// A pseudo-random (incompressible, not deduplicated against itself) buffer.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A 64 MiB disk image as a qcow2-like file: mostly holes, a few MiB of data here and there.
fn disk_image(path: &Path) -> Vec<u8> {
    let mut image = vec![0u8; 64 << 20];
    for (i, off) in [0usize, 3, 17, 40, 63].into_iter().enumerate() {
        let block = noise(1 << 20, 42 + i as u64);
        image[off << 20..(off + 1) << 20].copy_from_slice(&block);
    }
    std::fs::write(path, &image).unwrap();
    image
}

#[tokio::test]
async fn unchanged_data_adds_almost_nothing() {
    if !installed("unchanged_data_adds_almost_nothing", &["restic", "rclone"]) {
        return;
    }
    let repo = Repo::rest();
    repo.restic.init_if_missing().await.unwrap();
    let image = repo.path("disk.img");
    disk_image(&image);
    let first = repo.restic.backup_file_as_stdin("disk.qcow2", &image, &[tag("site:7")], HOST, |_| {}).await.unwrap();
    assert!(first.data_added > 4 << 20, "the first backup stores the data: {first:?}");
    let second = repo.restic.backup_file_as_stdin("disk.qcow2", &image, &[tag("site:7")], HOST, |_| {}).await.unwrap();
    assert!(second.data_added < 64 << 10, "an unchanged image adds almost nothing: {second:?}");
    assert_ne!(first.snapshot_id, second.snapshot_id);
    assert_eq!(second.total_bytes_processed, 64 << 20);

    // Quota accounting: the site's snapshots hold the image's data once.
    let stats = repo.restic.stats_raw(&SnapshotFilter::tagged([tag("site:7")])).await.unwrap();
    assert_eq!(stats.snapshots_count, 2);
    assert!(stats.total_size > 4 << 20 && stats.total_size < 8 << 20, "{stats:?}");
    let one = repo.restic.stats_raw(&SnapshotFilter::ids([SnapshotId::parse(&first.snapshot_id).unwrap()])).await.unwrap();
    assert_eq!(one.snapshots_count, 1);
}

#[tokio::test]
async fn large_stream_dumps_back_byte_identical() {
    if !installed("large_stream_dumps_back_byte_identical", &["restic", "ssh", "ssh-keygen", "/usr/sbin/sshd"]) {
        return;
    }
    let repo = Repo::sftp();
    repo.restic.init_if_missing().await.unwrap();
    let image_path = repo.path("disk.img");
    let image = disk_image(&image_path);
    let mut reader = tokio::fs::File::open(&image_path).await.unwrap();
    let summary = repo.restic.backup_stdin("disk.qcow2", &mut reader, &[tag("site:3"), tag("disk")], HOST, |_| {}).await.unwrap();
    assert_eq!(summary.total_bytes_processed, 64 << 20);
    let id = SnapshotId::parse(&summary.snapshot_id).unwrap();
    let mut out = Vec::new();
    let n = repo.restic.dump(&id, Path::new("/disk.qcow2"), &mut out).await.unwrap();
    assert_eq!(n, 64 << 20);
    assert!(out == image, "the dumped image differs from the one backed up");
    let snaps = repo.restic.snapshots(&SnapshotFilter::tagged([tag("disk")])).await.unwrap();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].paths, ["/disk.qcow2"]);
    // A path that is not in the snapshot: restic's error, typed, with its words.
    let err = repo.restic.dump(&id, Path::new("/nope"), &mut Vec::new()).await.unwrap_err();
    assert!(matches!(err, BackupError::Failed { verb: "dump", .. }), "{err:?}");
}

#[tokio::test]
async fn forget_keeps_what_the_policy_says() {
    if !installed("forget_keeps_what_the_policy_says", &["restic"]) {
        return;
    }
    let repo = Repo::local();
    repo.restic.init_if_missing().await.unwrap();
    let site = repo.path("site");
    std::fs::create_dir(&site).unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        std::fs::write(site.join("f"), noise(256 << 10, i)).unwrap();
        ids.push(repo.restic.backup_files(std::slice::from_ref(&site), &[tag("site:1")], HOST, |_| {}).await.unwrap().snapshot_id);
    }
    let other = repo.restic.backup_files(std::slice::from_ref(&site), &[tag("site:2")], HOST, |_| {}).await.unwrap().snapshot_id;

    // Three snapshots of today: one day kept, its newest snapshot. Another site is untouched.
    let before = repo.restic.stats_raw(&SnapshotFilter::default()).await.unwrap();
    let result = repo.restic.forget(&SnapshotFilter::tagged([tag("site:1")]), KeepPolicy::new(1, 0, 0).unwrap(), true).await.unwrap();
    assert_eq!(result.kept.iter().map(|s| s.short_id.clone()).collect::<Vec<_>>(), [ids[2].clone()]);
    let mut removed: Vec<String> = result.removed.iter().map(|s| s.short_id.clone()).collect();
    removed.sort();
    let mut expected = ids[..2].to_vec();
    expected.sort();
    assert_eq!(removed, expected);
    let left: Vec<String> = repo.restic.snapshots(&SnapshotFilter::default()).await.unwrap().into_iter().map(|s| s.short_id).collect();
    assert_eq!(left, [ids[2].clone(), other.clone()]);
    // The prune freed the data only the forgotten snapshots held.
    let after = repo.restic.stats_raw(&SnapshotFilter::default()).await.unwrap();
    assert!(after.total_size < before.total_size - (256 << 10), "before {before:?}, after {after:?}");

    // Deleting one backup by id.
    repo.restic.forget_ids(&[SnapshotId::parse(&other).unwrap()]).await.unwrap();
    assert!(repo.restic.snapshots(&SnapshotFilter::tagged([tag("site:2")])).await.unwrap().is_empty());
    repo.restic.check().await.unwrap();

    // A policy that keeps nothing never reaches restic.
    assert!(KeepPolicy::new(0, 0, 0).is_err());
    let err = repo.restic.forget(&SnapshotFilter::default(), KeepPolicy { daily: 0, weekly: 0, monthly: 0 }, true).await.unwrap_err();
    assert!(matches!(err, BackupError::InvalidArgument { .. }), "{err:?}");
}

#[tokio::test]
async fn wrong_password_and_missing_repository_are_typed() {
    if !installed("wrong_password_and_missing_repository_are_typed", &["restic", "rclone"]) {
        return;
    }
    for repo in [Repo::local(), Repo::rest()] {
        let url = repo.restic.settings().redacted_url();
        let err = repo.restic.snapshots(&SnapshotFilter::default()).await.unwrap_err();
        assert!(matches!(err, BackupError::NotInitialised { .. }), "{url}: {err:?}");
        repo.restic.init_if_missing().await.unwrap();
        let wrong = repo.with_password("not-the-password");
        let err = wrong.snapshots(&SnapshotFilter::default()).await.unwrap_err();
        assert!(matches!(err, BackupError::WrongPassword), "{url}: {err:?}");
        // Never a reason to initialise again over the existing repository.
        let err = wrong.init_if_missing().await.unwrap_err();
        assert!(matches!(err, BackupError::WrongPassword), "{url}: {err:?}");
        assert!(!err.to_string().contains("not-the-password"));
        assert!(repo.restic.snapshots(&SnapshotFilter::default()).await.unwrap().is_empty());
    }
    let mut settings = Repo::local().restic.settings().clone();
    settings.program = "/nonexistent/restic".into();
    let missing = Restic::new(settings).unwrap();
    let err = missing.snapshots(&SnapshotFilter::default()).await.unwrap_err();
    assert!(matches!(err, BackupError::ResticMissing { .. }), "{err:?}");
    assert!(matches!(missing.version().await, Err(BackupError::ResticMissing { .. })));
}

/// An endless incompressible stream, as a disk image that takes long to read.
struct Endless(u64);

impl tokio::io::AsyncRead for Endless {
    fn poll_read(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> std::task::Poll<std::io::Result<()>> {
        self.0 += 1;
        let chunk = noise(buf.remaining().min(64 << 10), self.0);
        buf.put_slice(&chunk);
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_killed_backup_leaves_the_repository_usable() {
    if !installed("a_killed_backup_leaves_the_repository_usable", &["restic"]) {
        return;
    }
    let repo = Repo::local();
    repo.restic.init_if_missing().await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::<Progress>::new()));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let mut tx = Some(tx);
    let progress = seen.clone();
    let mut stream = Endless(7);
    let tags = [tag("site:9")];
    let backup = repo.restic.backup_stdin("disk.qcow2", &mut stream, &tags, HOST, move |p| {
        let started = p.bytes_done > 8 << 20;
        progress.lock().unwrap().push(p);
        if let Some(tx) = tx.take_if(|_| started) {
            let _ = tx.send(());
        }
    });
    // Cancel the backup (drop its future) once restic has stored some data.
    tokio::select! {
        r = backup => panic!("an endless backup ended: {r:?}"),
        _ = rx => {}
        _ = tokio::time::sleep(Duration::from_secs(60)) => panic!("no progress within 60 s: {:?}", seen.lock().unwrap()),
    }
    assert!(seen.lock().unwrap().iter().any(|p| p.bytes_done > 0 && p.total_bytes.is_none()));

    // The dead restic's lock stays (an exclusive operation is refused) until unlocked; unlock
    // removes it once the process is gone.
    let err = repo.restic.check().await.unwrap_err();
    assert!(matches!(err, BackupError::Locked { .. }), "{err:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        repo.restic.unlock().await.unwrap();
        match repo.restic.check().await {
            Ok(()) => break,
            Err(BackupError::Locked { .. }) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => panic!("check after unlock: {e:?}"),
        }
    }
    assert!(repo.restic.snapshots(&SnapshotFilter::default()).await.unwrap().is_empty(), "no snapshot from a killed backup");
    // And the next backup works.
    let site = repo.path("f");
    std::fs::write(&site, "after").unwrap();
    repo.restic.backup_files(&[site], &[tag("site:9")], HOST, |_| {}).await.unwrap();
    repo.restic.check().await.unwrap();
}

#[tokio::test]
async fn progress_arrives_during_a_big_backup() {
    if !installed("progress_arrives_during_a_big_backup", &["restic"]) {
        return;
    }
    let repo = Repo::local();
    repo.restic.init_if_missing().await.unwrap();
    let site = repo.path("site");
    std::fs::create_dir(&site).unwrap();
    for i in 0..12 {
        std::fs::write(site.join(format!("part-{i}")), noise(16 << 20, 100 + i)).unwrap();
    }
    let mut events = Vec::new();
    let summary = repo.restic.backup_files(&[site], &[tag("site:5")], HOST, |p| events.push(p)).await.unwrap();
    assert_eq!(summary.total_bytes_processed, 192 << 20);
    assert!(!events.is_empty(), "no progress");
    assert!(events.iter().any(|p| p.total_bytes == Some(192 << 20)), "the total is known once scanned: {events:?}");
    assert!(events.windows(2).all(|w| w[0].bytes_done <= w[1].bytes_done), "bytes_done goes up: {events:?}");
    assert!(events.iter().all(|p| (0.0..=1.0).contains(&p.percent_done)));
}

#[tokio::test]
async fn invalid_arguments_never_reach_restic() {
    // No restic needed: refused before anything runs.
    let repo = Repo::local();
    let err = repo.restic.backup_files(&[PathBuf::from("relative")], &[], HOST, |_| {}).await.unwrap_err();
    assert!(matches!(err, BackupError::InvalidArgument { what: "paths", .. }), "{err:?}");
    let err = repo.restic.backup_files(&[repo.path("x")], &[], "-rf", |_| {}).await.unwrap_err();
    assert!(matches!(err, BackupError::InvalidArgument { what: "host", .. }), "{err:?}");
    let err = repo.restic.backup_stdin("../etc", &mut tokio::io::empty(), &[], HOST, |_| {}).await.unwrap_err();
    assert!(matches!(err, BackupError::InvalidArgument { .. }), "{err:?}");
    assert!(Restic::new(RepoSettings::new("relative/repo", "/pw", "/cache")).is_err());
}

#[tokio::test]
async fn hung_or_killed_restic_is_typed_and_stopped() {
    // Stand-ins for a restic that hangs and one the OS kills: no restic needed.
    let dir = tempfile::tempdir().unwrap();
    let script = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    };
    let pid_file = dir.path().join("pid");
    let mut settings = RepoSettings::new(dir.path().join("repo").display().to_string(), dir.path().join("pw"), dir.path().join("cache"));
    settings.timeouts = Timeouts { metadata: Duration::from_millis(500), data: Duration::from_millis(500) };
    settings.program = script("hang", &format!("echo $$ > {}\nexec sleep 60", pid_file.display()));
    let started = Instant::now();
    let err = Restic::new(settings.clone()).unwrap().snapshots(&SnapshotFilter::default()).await.unwrap_err();
    assert!(matches!(err, BackupError::TimedOut { verb: "snapshots", .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "the hung process was not stopped");

    settings.program = script("killed", "kill -9 $$");
    let err = Restic::new(settings.clone()).unwrap().unlock().await.unwrap_err();
    assert!(matches!(err, BackupError::Killed { verb: "unlock", signal: 9 }), "{err:?}");

    settings.program = script("garbage", "echo '{\"message_type\": \"summary\", \"snapshot_id\": 5}'");
    let err = Restic::new(settings).unwrap().backup_files(&[dir.path().to_path_buf()], &[], HOST, |_| {}).await.unwrap_err();
    assert!(matches!(&err, BackupError::Parse { verb: "backup", line, .. } if line.contains("snapshot_id")), "{err:?}");
}
