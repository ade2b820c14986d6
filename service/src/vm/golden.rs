//! The golden snapshot of the guest image, and VMs cloned from it.
//!
//! A cold boot under TCG takes 30-50 s; restoring saved memory takes well under a second. So
//! one VM per guest image is booted once ("the golden"), brought to a quiet state (first boot
//! done, sshd stopped and its host keys removed, caches dropped) and saved to a file. Every new
//! VM is then a clone of it: its own qcow2 overlay on the golden's (now read-only) disk, its own
//! name, UUID, VM generation id and ports, restored from the golden memory state.
//!
//! Mechanism, and why: libvirt's own restore-with-new-XML (`virDomainRestoreFlags` with `dxml`,
//! `virsh save-image-define`) refuses a different name and UUID (ABI stability: it is meant
//! for the same domain). What libvirt does accept is a plain restore of a save file whose
//! embedded XML names the new domain, and it reserves 64 KiB of slack after that XML for
//! exactly such edits (`virQEMUSaveDataWrite`). So a clone rewrites the XML region of the
//! golden's save file in place (under a lock; the memory stream after it is never touched),
//! then asks libvirt to restore it. libvirt regenerates the `<genid>` on every restore
//! (`VIR_QEMU_PROCESS_START_GEN_VMID`), so each clone's kernel reseeds its CRNG ("crng reseeded
//! due to virtual machine fork"); [`VmManager::reidentify`] then gives it its own machine-id and
//! SSH host keys, and host randomness is mixed into its entropy pool as well.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::memory::{read_head, rewrite_save_xml, save_domain};
use super::{CpuPriority, Doing, ImageInfo, SeedSpec, VmError, VmManager, VmSpec, files, io};

/// Run once in the golden VM before it is saved: no identity of its own survives into the
/// clones (sshd stopped, host keys and machine-id removed), and as little memory as possible is
/// saved. A fixed command: nothing of a user's reaches it.
/// Then [`TRIM`]: its freed memory is saved as zero pages, flags in the save stream, and a
/// clone's QEMU never allocates those pages until the guest uses them.
const GOLDEN_PREP: &str = "systemctl stop ssh.service; rm -f /etc/ssh/ssh_host_*; : > /etc/machine-id; \
     echo 5 > /sys/module/page_reporting/parameters/page_reporting_order 2>/dev/null; true";

/// Run in the golden guest just before its memory is saved: the page
/// cache dropped and free memory compacted, then time for free page reporting (the balloon's
/// `freePageReporting`: the guest reports free blocks after 2 s, QEMU discards them) so they
/// read as zero. Only free pages are discarded: the guest's memory is otherwise saved as it is.
pub(super) const TRIM: &str = "sync; echo 3 > /proc/sys/vm/drop_caches; echo 1 > /proc/sys/vm/compact_memory; sleep 2.5";

/// Run in a site's guest just before it goes to sleep: the page cache dropped, nothing more. The
/// guest kernel zeroes what it frees (`init_on_free=1`, guest/build-image.sh), so the dropped
/// cache is saved as zero pages at once, without [`TRIM`]'s compaction and 2.5 s wait for free
/// page reporting. Measured on a clone (one `virsh managedsave` each): 112.2 MB saved as it was,
/// 104.7 MB after this, 105.3 MB after [`TRIM`].
pub(super) const SLEEP_TRIM: &str = "sync; echo 3 > /proc/sys/vm/drop_caches";

/// Goldens made before this layout (without free page reporting) are made again: a clone keeps
/// the devices of the golden it was restored from.
const GOLDEN_LAYOUT: u32 = 2;

/// Run in each clone (after host randomness was mixed in): a new machine-id and new SSH host
/// keys, then sshd. Until this ran, sshd is not running, so no clone ever offers another's key.
const REIDENTIFY: &str = "set -e; systemd-id128 new > /etc/machine-id; rm -f /etc/ssh/ssh_host_*; \
     ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key; \
     ssh-keygen -q -t ecdsa -N '' -f /etc/ssh/ssh_host_ecdsa_key; systemctl start ssh.service";

/// What a golden snapshot was made with; the clone rewrites exactly these strings.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct GoldenMeta {
    pub name: String,
    pub http_port: u16,
    pub ssh_port: u16,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub made_in_ms: u64,
    /// [`GOLDEN_LAYOUT`] when it was made (0: before there was one).
    #[serde(default)]
    pub layout: u32,
}

/// The VM a golden is made of (its size is the plan clones can be made for).
#[derive(Clone, Debug)]
pub struct GoldenSpec {
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub http_port: u16,
    pub ssh_port: u16,
}

impl VmManager {
    /// `{data_dir}/golden/{image}`: the goldens of one guest image build (its folder's name).
    /// Each attempt gets a folder of its own in there, and `current` names the complete one.
    /// A folder is never removed once complete: clones' disks back onto its disk.
    fn golden_base(&self) -> Result<PathBuf, VmError> {
        let dir = &self.inner.cfg.guest_image_dir;
        let real = dir.canonicalize().map_err(|source| VmError::ImageDir { dir: dir.clone(), source })?;
        let key = real.file_name().and_then(|n| n.to_str()).unwrap_or("image");
        let key: String = key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect();
        Ok(self.inner.cfg.data_dir.join("golden").join(key))
    }

    /// The folder of the current image's complete golden, if there is one.
    pub fn golden_dir(&self) -> Option<PathBuf> {
        let base = self.golden_base().ok()?;
        let name = std::fs::read_to_string(base.join("current")).ok()?;
        let name = name.trim();
        let ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        ok.then(|| base.join(name))
    }

    fn golden_domain(&self) -> String {
        format!("{}golden", self.inner.cfg.domain_prefix)
    }

    /// The golden of the current image, when one is complete.
    pub fn golden(&self) -> Option<GoldenMeta> {
        let dir = self.golden_dir()?;
        let meta = std::fs::read_to_string(dir.join("golden.json")).ok()?;
        let files = ["state.save", "golden.xml", "golden.head"];
        files.iter().all(|f| dir.join(f).is_file()).then_some(())?;
        serde_json::from_str(&meta).ok().filter(|m: &GoldenMeta| m.layout == GOLDEN_LAYOUT)
    }

    /// Boots the golden VM of the current image, waits until it serves, quiets it and saves it,
    /// in a folder of its own; then makes it the current one. A golden VM an interrupted attempt
    /// left running is removed first (its folder never became current). Takes a cold boot.
    pub async fn make_golden(&self, spec: &GoldenSpec, seed: &SeedSpec, ready_timeout: Duration) -> Result<GoldenMeta, VmError> {
        seed.validate()?;
        let _g = self.inner.golden_lock.lock().await;
        let base = self.golden_base()?;
        let folder = format!("g-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let dir = base.join(&folder);
        let name = self.golden_domain();
        self.remove_golden_domain().await?;
        let t = Instant::now();
        let image = ImageInfo::load(&self.inner.cfg.guest_image_dir)?;
        files::create_overlay(&dir, &image.base, spec.disk_gib).await?;
        files::write_seed(&dir, &name, seed).await?;
        let vm = VmSpec {
            hosting_id: 0,
            vcpus: spec.vcpus,
            memory_mib: spec.memory_mib,
            disk_gib: spec.disk_gib,
            http_port: spec.http_port,
            ssh_port: spec.ssh_port,
            priority: CpuPriority::Foreground,
        };
        let xml = self.domain_xml(&name, &dir, &vm)?;
        let made = async {
            let n = name.clone();
            tracing::info!("golden snapshot 1/3: booting the golden VM (a cold boot, ~30 s under TCG)");
            self.blocking(move |c| {
                let d = c.define_domain_xml(&xml).doing("define domain", &n)?;
                d.create().doing("start domain", &n)?;
                Ok(())
            })
            .await?;
            tracing::info!(elapsed_s = t.elapsed().as_secs(), "golden snapshot 2/3: waiting until the guest serves HTTP and SSH");
            let ready = self.wait_ready(spec.http_port, Some(spec.ssh_port), ready_timeout);
            tokio::pin!(ready);
            let every = Duration::from_secs(10);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tokio::select! {
                    r = &mut ready => break r?,
                    _ = tick.tick() => tracing::info!(elapsed_s = t.elapsed().as_secs(), "golden snapshot: the guest is still booting"),
                }
            }
            tracing::info!(elapsed_s = t.elapsed().as_secs(), "golden snapshot 3/3: preparing the guest and saving its memory");
            let (n, save) = (name.clone(), dir.join("state.save"));
            self.blocking(move |c| {
                let d = Self::existing(c, &n)?;
                Self::agent_wait(&d, &n, Instant::now() + Duration::from_secs(60))?;
                Self::agent_run(&d, &n, "/bin/sh", vec!["-c".into(), GOLDEN_PREP.into()], Instant::now() + Duration::from_secs(120))?;
                Self::agent_run(&d, &n, "/bin/sh", vec!["-c".into(), TRIM.into()], Instant::now() + Duration::from_secs(60))?;
                save_domain(&d, &n, &save)?;
                d.undefine().doing("undefine domain", &n)?;
                // Every clone rewrites the file's XML: keep the golden's own as it was saved.
                c.save_image_xml_desc(&save.display().to_string(), 0).doing_host("read the golden snapshot's XML")
            })
            .await
        }
        .await;
        let saved_xml = match made {
            Ok(xml) => xml,
            Err(e) => {
                let _ = self.remove_golden_domain().await;
                let _ = files::remove_dir(&dir).await;
                return Err(e);
            }
        };
        files::write_file(&dir.join("golden.xml"), saved_xml.as_bytes()).await?;
        // And the file's header and XML area as saved: every clone starts from these bytes, so
        // one interrupted rewrite cannot spoil the next clone.
        let save = dir.join("state.save");
        let head = tokio::task::spawn_blocking(move || read_head(&save)).await??;
        files::write_file(&dir.join("golden.head"), &head).await?;
        let meta = GoldenMeta {
            name,
            http_port: spec.http_port,
            ssh_port: spec.ssh_port,
            vcpus: spec.vcpus,
            memory_mib: spec.memory_mib,
            disk_gib: spec.disk_gib,
            made_in_ms: t.elapsed().as_millis() as u64,
            layout: GOLDEN_LAYOUT,
        };
        let json = serde_json::to_string_pretty(&meta).map_err(|e| VmError::Invalid(e.to_string()))?;
        files::write_file(&dir.join("golden.json"), json.as_bytes()).await?;
        // Made current last: until then, this folder is an attempt nobody uses.
        files::write_file(&base.join("current"), folder.as_bytes()).await?;
        tracing::info!(dir = %dir.display(), ms = meta.made_in_ms, "golden snapshot ready: new VMs are its clones from now on");
        Ok(meta)
    }

    /// Destroys and undefines a golden VM an interrupted attempt left behind.
    async fn remove_golden_domain(&self) -> Result<(), VmError> {
        let name = self.golden_domain();
        self.blocking(move |c| {
            if let Some(d) = Self::lookup(c, &name)? {
                Self::stop_active(&d, &name)?;
                let _ = d.undefine();
            }
            Ok(())
        })
        .await
    }

    /// Makes `spec`'s VM a clone of the golden: its own overlay on the golden's disk, then the
    /// golden memory state restored under its own name, UUID, generation id and ports, running.
    /// The domain is defined (persistent) afterwards.
    pub async fn clone_golden(&self, spec: &VmSpec) -> Result<(), VmError> {
        let golden = self.golden().ok_or_else(|| VmError::Invalid("no golden snapshot of this image yet".into()))?;
        if (spec.vcpus, spec.memory_mib, spec.disk_gib) != (golden.vcpus, golden.memory_mib, golden.disk_gib) {
            return Err(VmError::Invalid("the golden snapshot is of another size than this plan".into()));
        }
        let gdir = self.golden_dir().ok_or_else(|| VmError::Invalid("no golden snapshot of this image yet".into()))?;
        let vdir = self.vm_dir(spec.hosting_id);
        files::create_overlay(&vdir, &gdir.join("disk.qcow2"), golden.disk_gib).await?;
        let name = self.domain_name(spec.hosting_id);
        let binds = (self.inner.cfg.http_forward_bind, self.inner.cfg.forward_bind);
        let save = gdir.join("state.save");
        // One clone at a time rewrites the golden's header and restores from it.
        let _g = self.inner.golden_lock.lock().await;
        let golden_xml = gdir.join("golden.xml");
        let saved_xml = tokio::fs::read_to_string(&golden_xml)
            .await
            .map_err(io("reading", &golden_xml))?;
        // A spare's clone yields the CPU to users' VMs from its restore on.
        let xml = super::priority::with_priority(&clone_xml(&saved_xml, &golden, &gdir, &vdir, &name, spec, binds)?, spec.priority, self.spare_cpu_shares());
        // The golden may have been saved under the other CPU-check setting.
        let xml = super::cpu_check::with_cpu_check(&xml, self.inner.cfg.quick_cpu_check);
        // A golden made before the node markers has none: its clones get this node's (one made
        // under another node name keeps that one: reconciliation then leaves such a clone alone).
        let xml = super::xml::with_node_marker(&xml, &self.inner.cfg.node_name).unwrap_or(xml);
        let head_path = gdir.join("golden.head");
        let head = tokio::fs::read(&head_path).await.map_err(io("reading", &head_path))?;
        // The restore binds no forward: they are added once the guest runs (see `forwards`), so
        // no probe or visitor meets a port whose guest is still being loaded.
        let (xml_for_header, save_for_header) = (super::forwards::strip_hostfwds(&xml), save.clone());
        tokio::task::spawn_blocking(move || rewrite_save_xml(&save_for_header, &head, &xml_for_header)).await??;
        let (http, ssh) = (spec.http_port, spec.ssh_port);
        self.blocking(move |c| {
            c.restore_domain(&save.display().to_string()).doing("restore the golden snapshot as domain", &name)?;
            c.define_domain_xml(&xml).doing("define domain", &name)?;
            super::forwards::ensure(&Self::existing(c, &name)?, &name, (binds.0, http), (binds.1, ssh))
        })
        .await
    }

    /// A clone's own identity: host randomness into its entropy pool, a new machine-id and new
    /// SSH host keys, then sshd starts.
    pub async fn reidentify(&self, hosting_id: i32, timeout: Duration) -> Result<(), VmError> {
        let name = self.domain_name(hosting_id);
        self.blocking(move |c| {
            let d = Self::existing(c, &name)?;
            let deadline = Instant::now() + timeout;
            Self::agent_wait(&d, &name, deadline)?;
            let mut noise = [0u8; 64];
            rand::fill(&mut noise);
            Self::agent_write_existing(&d, &name, "/dev/urandom", &noise)?;
            Self::agent_run(&d, &name, "/bin/sh", vec!["-c".into(), REIDENTIFY.into()], deadline)
        })
        .await
    }
}

/// The golden's saved XML made the clone's: every string that names the golden (its name, UUID,
/// generation id, disk, console log, forwarded ports) replaced; each must be there exactly once.
/// The forwards are the clone's own, HTTP on `binds.0` and SSH on `binds.1` (whatever address
/// the golden was saved with).
fn clone_xml(
    saved: &str,
    golden: &GoldenMeta,
    gdir: &Path,
    vdir: &Path,
    name: &str,
    spec: &VmSpec,
    binds: (std::net::IpAddr, std::net::IpAddr),
) -> Result<String, VmError> {
    let between = |open: &str, close: &str| -> Option<String> {
        let a = saved.find(open)? + open.len();
        let b = saved[a..].find(close)? + a;
        Some(saved[a..b].to_owned())
    };
    let uuid = between("<uuid>", "</uuid>").ok_or_else(|| VmError::Invalid("the golden XML has no uuid".into()))?;
    let esc = crate::escape::markup;
    let path = |p: PathBuf| esc(&p.display().to_string());
    let fwd = |bind: std::net::IpAddr, port: u16, guest: u16| format!("hostfwd=tcp:{}:{port}-:{guest}", super::xml::hostfwd_addr(bind));
    let has = |port: u16, guest: u16| saved.contains(&format!(":{port}-:{guest}"));
    if !has(golden.http_port, 80) || !has(golden.ssh_port, 22) {
        return Err(VmError::Invalid("the golden XML lacks its forwards".into()));
    }
    let mut out = super::forwards::strip_hostfwds(saved);
    // `once`: the name and UUID must stand exactly once; a path may stand more than once (the
    // serial console's log also shows under <console>), but at least once.
    let mut swap = |from: String, to: String, once: bool| -> Result<(), VmError> {
        match out.matches(from.as_str()).count() {
            0 => Err(VmError::Invalid(format!("the golden XML has no '{from}'"))),
            n if once && n > 1 => Err(VmError::Invalid(format!("the golden XML has {n} places for '{from}', not one"))),
            _ => {
                out = out.replace(from.as_str(), &to);
                Ok(())
            }
        }
    };
    swap(format!("<name>{}</name>", esc(&golden.name)), format!("<name>{}</name>", esc(name)), true)?;
    swap(format!("<uuid>{uuid}</uuid>"), format!("<uuid>{}</uuid>", uuid::Uuid::new_v4()), true)?;
    swap(path(gdir.join("disk.qcow2")), path(vdir.join("disk.qcow2")), false)?;
    swap(path(gdir.join("console.log")), path(vdir.join("console.log")), false)?;
    let netdev = "user,id=n0,restrict=on".to_owned();
    let forwards = format!("{netdev},{},{}", fwd(binds.0, spec.http_port, 80), fwd(binds.1, spec.ssh_port, 22));
    swap(netdev, forwards, true)?;
    if let Some(genid) = between("<genid>", "</genid>") {
        swap(format!("<genid>{genid}</genid>"), "<genid/>".into(), true)?;
    }
    // Nothing of the golden's may be left but its read-only seed and disk (as a backing file).
    if out.contains(&esc(&golden.name)) {
        return Err(VmError::Invalid("the golden's name is still in the clone's XML".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_xml_names_only_the_clone() {
        let gdir = Path::new("/d/golden/lean-1");
        let vdir = Path::new("/d/vms/12");
        let golden = GoldenMeta { name: "vmw-golden".into(), http_port: 20000, ssh_port: 10001, vcpus: 1, memory_mib: 256, disk_gib: 4, made_in_ms: 1, layout: GOLDEN_LAYOUT };
        let saved = "<domain><name>vmw-golden</name><uuid>0f0e</uuid><genid>1234</genid>\
            <source file='/d/golden/lean-1/disk.qcow2'/><source file='/d/golden/lean-1/seed.iso'/>\
            <log file='/d/golden/lean-1/console.log'/><console><log file='/d/golden/lean-1/console.log'/></console>\
            <qemu:arg value='user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:20000-:80,hostfwd=tcp:127.0.0.1:10001-:22'/></domain>";
        let spec = VmSpec { hosting_id: 12, vcpus: 1, memory_mib: 256, disk_gib: 4, http_port: 20005, ssh_port: 10006, priority: Default::default() };
        let bind = ("127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap());
        let x = clone_xml(saved, &golden, gdir, vdir, "vmw-12", &spec, bind).unwrap();
        assert!(x.contains("<name>vmw-12</name>") && !x.contains("vmw-golden"));
        assert!(!x.contains("<uuid>0f0e</uuid>") && x.contains("<uuid>"));
        assert!(x.contains("<genid/>"), "libvirt makes a new generation id");
        assert!(x.contains("/d/vms/12/disk.qcow2") && x.contains("/d/vms/12/console.log"));
        assert!(!x.contains("/d/golden/lean-1/console.log"), "both console log mentions moved");
        assert!(x.contains("/d/golden/lean-1/seed.iso"), "the read-only seed is shared");
        assert!(x.contains("hostfwd=tcp:127.0.0.2:20005-:80,hostfwd=tcp:127.0.0.1:10006-:22'"), "HTTP on its own address: {x}");
        assert!(!x.contains(":20000-") && !x.contains(":10001-"));
        // A golden XML that does not look as expected is refused, not half-rewritten.
        let odd = saved.replace("hostfwd=tcp:127.0.0.1:10001-:22", "");
        assert!(clone_xml(&odd, &golden, gdir, vdir, "vmw-12", &spec, bind).is_err());
    }
}
