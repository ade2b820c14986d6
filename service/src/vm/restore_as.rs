//! A backup's saved memory restored as another site's running VM (issue 31: restore as a new
//! site in seconds instead of a cold boot).
//!
//! The same mechanism as a clone of the golden (`golden`): libvirt refuses a restore under a
//! new name and UUID through its own XML override, but restores a save file whose embedded XML
//! names the new domain. So the saved XML of the backed-up site is made the new site's (its
//! name, UUID and generation id, every path in its old VM folder moved to the new one, its
//! forwards the new site's ports, this node's marker), written into the file's XML area (the
//! memory stream after it, plain or a delta to a golden, is never touched), the domain defined
//! with it, then restored running (`restore_memory_file`). The network is QEMU's user-mode one
//! (no libvirt `<interface>`, so no MAC of its own to change: each VM's network is private to
//! it). The guest keeps the source's machine-id and SSH host keys until the caller
//! re-identifies it (`reidentify`), which it must do at once.
use std::path::Path;

use super::memory::{read_head, rewrite_save_xml};
use super::{Doing, VmError, VmManager, VmSpec};

impl VmManager {
    /// Makes `spec`'s VM (its disk already at `{vm_dir}/disk.qcow2`) from `mem`, the saved memory
    /// of another site of this node's layout, running with `spec`'s forwards. `mem` is rewritten
    /// in place (the caller's copy). Refused, with nothing defined, when its XML is not one of
    /// ours; a failed restore leaves the domain defined (the caller's undo undefines it).
    pub async fn restore_memory_as(&self, spec: &VmSpec, mem: &Path) -> Result<(), VmError> {
        let vdir = self.vm_dir(spec.hosting_id);
        let name = self.domain_name(spec.hosting_id);
        let binds = (self.inner.cfg.http_forward_bind, self.inner.cfg.forward_bind);
        let node = self.inner.cfg.node_name.clone();
        let (m, s, n) = (mem.to_owned(), spec.clone(), name.clone());
        let xml = tokio::task::spawn_blocking(move || -> Result<String, VmError> {
            let head = read_head(&m)?;
            let saved = super::memory::head_xml(&head).map_err(|e| VmError::Invalid(format!("{}: {e}", m.display())))?;
            let xml = renamed_xml(saved, &vdir, &n, &s, binds)?;
            let xml = super::xml::with_node_marker(&xml, &node)?;
            rewrite_save_xml(&m, &head, &super::forwards::strip_hostfwds(&xml))?;
            Ok(xml)
        })
        .await??;
        self.blocking(move |c| c.define_domain_xml(&xml).doing("define domain", &name).map(|_| ())).await?;
        self.restore_memory_file(spec.hosting_id, mem.to_owned(), spec.http_port, spec.ssh_port).await
    }
}

/// The backed-up site's saved XML made the new site's: its name and UUID replaced (each must
/// stand exactly once), its generation id left to libvirt, every path in its VM folder (the
/// folder of its `disk.qcow2`, a sibling of `vdir`) moved to `vdir`, its forwards `spec`'s.
fn renamed_xml(saved: &str, vdir: &Path, name: &str, spec: &VmSpec, binds: (std::net::IpAddr, std::net::IpAddr)) -> Result<String, VmError> {
    let bad = |why: &str| VmError::Invalid(format!("the backup's saved domain XML {why}"));
    let between = |open: &str, close: &str| -> Option<String> {
        let a = saved.find(open)? + open.len();
        let b = saved[a..].find(close)? + a;
        Some(saved[a..b].to_owned())
    };
    let old_name = between("<name>", "</name>").ok_or_else(|| bad("has no name"))?;
    let uuid = between("<uuid>", "</uuid>").ok_or_else(|| bad("has no uuid"))?;
    // The old VM folder: where its disk is, beside this node's VM folders.
    let disk_at = saved.find("/disk.qcow2'").ok_or_else(|| bad("has no disk"))?;
    let open = saved[..disk_at].rfind("file='").ok_or_else(|| bad("has no disk"))? + "file='".len();
    let old_dir = &saved[open..disk_at];
    let esc = crate::escape::markup;
    let new_dir = esc(&vdir.display().to_string());
    let parent = |d: &str| d.rsplit_once('/').map(|(p, _)| p.to_owned());
    if old_dir.contains(['<', '>', '\'', '"']) || parent(old_dir).is_none() || parent(old_dir) != parent(&new_dir) {
        return Err(bad(&format!("names a disk in {old_dir}, not in a VM folder of this node's")));
    }
    let mut out = super::forwards::strip_hostfwds(saved);
    let mut swap = |from: String, to: String, once: bool| -> Result<(), VmError> {
        match out.matches(from.as_str()).count() {
            0 => Err(bad(&format!("has no '{from}'"))),
            n if once && n > 1 => Err(bad(&format!("has {n} places for '{from}', not one"))),
            _ => {
                out = out.replace(from.as_str(), &to);
                Ok(())
            }
        }
    };
    swap(format!("<name>{old_name}</name>"), format!("<name>{}</name>", esc(name)), true)?;
    swap(format!("<uuid>{uuid}</uuid>"), format!("<uuid>{}</uuid>", uuid::Uuid::new_v4()), true)?;
    swap(format!("{old_dir}/"), format!("{new_dir}/"), false)?;
    let netdev = "user,id=n0,restrict=on".to_owned();
    let fwd = |bind: std::net::IpAddr, port: u16, guest: u16| format!("hostfwd=tcp:{}:{port}-:{guest}", super::xml::hostfwd_addr(bind));
    let forwards = format!("{netdev},{},{}", fwd(binds.0, spec.http_port, 80), fwd(binds.1, spec.ssh_port, 22));
    swap(netdev, forwards, true)?;
    if let Some(genid) = between("<genid>", "</genid>") {
        swap(format!("<genid>{genid}</genid>"), "<genid/>".into(), true)?;
    }
    if out.contains(&format!("{old_dir}/")) || out.contains(&format!(">{old_name}<")) {
        return Err(bad("still names the backed-up site"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VmSpec {
        VmSpec { hosting_id: 12, vcpus: 1, memory_mib: 256, disk_gib: 4, http_port: 20005, ssh_port: 10006, priority: Default::default() }
    }

    const SAVED: &str = "<domain><name>vmw-7</name><uuid>0f0e</uuid><genid>1234</genid>\
        <source file='/d/vms/7/disk.qcow2'/><source file='/d/golden/k/g-1/seed.iso'/>\
        <log file='/d/vms/7/console.log'/><console><log file='/d/vms/7/console.log'/></console>\
        <qemu:arg value='user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:20000-:80,hostfwd=tcp:127.0.0.1:10001-:22'/></domain>";

    #[test]
    fn a_restored_sites_xml_names_only_the_new_site() {
        let bind = ("127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap());
        let x = renamed_xml(SAVED, Path::new("/d/vms/12"), "vmw-12", &spec(), bind).unwrap();
        assert!(x.contains("<name>vmw-12</name>") && !x.contains("vmw-7"));
        assert!(!x.contains("<uuid>0f0e</uuid>") && x.contains("<genid/>"));
        assert!(x.contains("/d/vms/12/disk.qcow2") && x.contains("/d/vms/12/console.log") && !x.contains("/d/vms/7/"));
        assert!(x.contains("/d/golden/k/g-1/seed.iso"), "the golden's read-only seed is shared");
        assert!(x.contains("hostfwd=tcp:127.0.0.2:20005-:80,hostfwd=tcp:127.0.0.1:10006-:22'"), "{x}");
        assert!(!x.contains(":20000-") && !x.contains(":10001-"));
    }

    #[test]
    fn a_disk_outside_this_nodes_vm_folders_is_refused() {
        let bind = ("127.0.0.1".parse().unwrap(), "127.0.0.1".parse().unwrap());
        let elsewhere = SAVED.replace("/d/vms/7/disk.qcow2", "/other/7/disk.qcow2");
        assert!(renamed_xml(&elsewhere, Path::new("/d/vms/12"), "vmw-12", &spec(), bind).is_err());
        let no_net = SAVED.replace("user,id=n0,restrict=on", "user,id=n0");
        assert!(renamed_xml(&no_net, Path::new("/d/vms/12"), "vmw-12", &spec(), bind).is_err());
    }
}
