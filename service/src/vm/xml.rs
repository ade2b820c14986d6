//! Libvirt domain XML for one VM. Every interpolated value is escaped, although all of them
//! come from ids, numbers, configuration and paths the service made.
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::VmError;
use crate::DomainType;
use crate::escape::markup as esc;

/// The guest image: a base disk and, for direct kernel boot, a kernel and initrd
/// (`guest/build-image.sh` writes these and `image.json`). An operator-supplied image with no
/// kernel beside it boots through firmware instead.
#[derive(Clone, Debug)]
pub struct ImageInfo {
    pub base: PathBuf,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
}

#[derive(serde::Deserialize, Default)]
struct ImageJson {
    cmdline: Option<String>,
}

impl ImageInfo {
    pub fn load(dir: &Path) -> Result<Self, VmError> {
        let dir = dir.canonicalize().map_err(|source| VmError::ImageDir { dir: dir.to_owned(), source })?;
        let base = dir.join("base.qcow2");
        if !base.is_file() {
            return Err(VmError::ImageMissing { path: base });
        }
        let kernel = Some(dir.join("vmlinuz")).filter(|p| p.is_file());
        let initrd = Some(dir.join("initrd.img")).filter(|p| p.is_file());
        let meta: ImageJson = std::fs::read_to_string(dir.join("image.json"))
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        Ok(Self {
            base,
            kernel,
            initrd,
            cmdline: meta.cmdline.unwrap_or_else(|| "root=/dev/vda rw console=ttyS0".into()),
        })
    }
}

pub struct DomainXml {
    pub name: String,
    pub domain_type: DomainType,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk: PathBuf,
    pub seed: PathBuf,
    pub console_log: PathBuf,
    pub image: ImageInfo,
    /// Where the SSH forward binds (users ssh there).
    pub forward_bind: IpAddr,
    /// Where the HTTP forward binds (only nginx, the waker and the probes connect there).
    pub http_bind: IpAddr,
    pub http_port: u16,
    pub ssh_port: u16,
    /// TCG translation-block cache cap: without it each QEMU grows to ~1 GiB (FACTS.md).
    pub tb_cache_mib: u32,
    /// libvirt checks the x86 CPU in two monitor calls, not ~400 (`super::cpu_check`).
    pub quick_cpu_check: bool,
    /// The node whose domain this is (its marker, [`node_marker`]).
    pub node: String,
}

/// The XML namespace of the element that marks a domain as made by this app for one node.
pub const NODE_NS: &str = "https://vm-webhoster.invalid/ns/node/1";

/// The `<metadata>` element marking a domain as made by this app for node `node` (its name):
/// reconciliation removes an orphan domain only when it carries its own node's mark.
pub fn node_marker(node: &str) -> String {
    format!("<metadata>\n    <vmw:node xmlns:vmw='{NODE_NS}' name='{}'/>\n  </metadata>", esc(node))
}

/// Whether `element` (libvirt's answer to a metadata query in [`NODE_NS`]) names `node`.
/// libvirt re-serialises the element, with either quote.
pub fn marks_node(element: &str, node: &str) -> bool {
    let name = esc(node);
    element.contains(&format!("name=\"{name}\"")) || element.contains(&format!("name='{name}'"))
}

/// `xml` with this node's marker: put after `<name>` when it has none, kept when it has one
/// (a golden's clone, a saved image). Any other node's marker is a foreign domain's: refused.
pub fn with_node_marker(xml: &str, node: &str) -> Result<String, VmError> {
    if xml.contains(NODE_NS) {
        let at = xml.find(NODE_NS).unwrap_or_default();
        let tail = &xml[at..xml.len().min(at + NODE_NS.len() + 120)];
        return if marks_node(tail, node) {
            Ok(xml.to_owned())
        } else {
            Err(VmError::Invalid("the domain XML carries another node's marker".into()))
        };
    }
    let Some(at) = xml.find("</name>") else { return Err(VmError::Invalid("the domain XML has no name".into())) };
    let at = at + "</name>".len();
    Ok(format!("{}\n  {}{}", &xml[..at], node_marker(node), &xml[at..]))
}

/// The TCG translation cache for a guest of `memory_mib`, sized with its plan: a quarter of the
/// guest's memory, 32 to 256 MiB (a 256 MiB guest gets 64 MiB: FACTS.md measured 64 MiB at
/// ~320 MiB RSS where 128 MiB gave ~400 MiB; a small cache retranslates more code).
pub fn tb_cache_mib(memory_mib: u64) -> u32 {
    (memory_mib / 4).clamp(32, 256) as u32
}

fn path(p: &Path) -> String {
    esc(&p.display().to_string())
}

/// The address as QEMU's hostfwd wants it: an IPv6 one in brackets (hostfwd's own ':'
/// separate the fields).
pub(super) fn hostfwd_addr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    }
}

impl DomainXml {
    pub fn render(&self) -> Result<String, VmError> {
        let bind = hostfwd_addr(self.forward_bind);
        let http_bind = hostfwd_addr(self.http_bind);
        if self.http_port == 0 || self.ssh_port == 0 || self.http_port == self.ssh_port {
            return Err(VmError::Invalid("HTTP and SSH need two distinct ports".into()));
        }
        let boot = match (&self.image.kernel, &self.image.initrd) {
            (Some(k), Some(i)) => format!(
                "    <kernel>{}</kernel>\n    <initrd>{}</initrd>\n    <cmdline>{}</cmdline>\n",
                path(k),
                path(i),
                esc(&self.image.cmdline)
            ),
            _ => "    <boot dev='hd'/>\n".to_owned(),
        };
        let tcg = if self.domain_type == DomainType::Qemu {
            format!("    <tcg>\n      <tb-cache unit='MiB'>{}</tb-cache>\n    </tcg>\n", self.tb_cache_mib)
        } else {
            String::new()
        };
        // libvirt 9.0 has no XML for user-mode forwards: pass them to QEMU directly.
        let netdev = format!(
            "user,id=n0,restrict=on,hostfwd=tcp:{http_bind}:{}-:80,hostfwd=tcp:{bind}:{}-:22",
            self.http_port, self.ssh_port
        );
        Ok(format!(
            r#"<domain type='{dtype}' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
  {marker}
  <genid/>
  <memory unit='MiB'>{mem}</memory>
  <currentMemory unit='MiB'>{mem}</currentMemory>
  <vcpu placement='static'>{vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
{boot}  </os>
  <features>
    <acpi/>
{tcg}  </features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' discard='unmap'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{seed}'/>
      <target dev='vdb' bus='virtio'/>
      <readonly/>
    </disk>
    <serial type='pty'>
      <log file='{log}' append='on'/>
      <target port='0'/>
    </serial>
    <console type='pty'>
      <target type='serial' port='0'/>
    </console>
    <channel type='unix'>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <rng model='virtio'>
      <backend model='random'>/dev/urandom</backend>
    </rng>
    <memballoon model='virtio' freePageReporting='on'>
      <stats period='5'/>
    </memballoon>
    <video>
      <model type='none'/>
    </video>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-netdev'/>
    <qemu:arg value='{netdev}'/>
    <qemu:arg value='-device'/>
    <qemu:arg value='virtio-net-pci,netdev=n0,bus=pci.0,addr=0x1e'/>
  </qemu:commandline>
{caps}</domain>
"#,
            dtype = self.domain_type,
            name = esc(&self.name),
            marker = node_marker(&self.node),
            mem = self.memory_mib,
            vcpus = self.vcpus.max(1),
            disk = path(&self.disk),
            seed = path(&self.seed),
            log = path(&self.console_log),
            netdev = esc(&netdev),
            caps = if self.quick_cpu_check { super::cpu_check::QUICK } else { "" },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DomainXml {
        DomainXml {
            name: "vmw-7".into(),
            domain_type: DomainType::Qemu,
            vcpus: 1,
            memory_mib: 256,
            disk: "/d/vms/7/disk.qcow2".into(),
            seed: "/d/vms/7/seed.iso".into(),
            console_log: "/d/vms/7/console.log".into(),
            image: ImageInfo {
                base: "/d/images/base.qcow2".into(),
                kernel: Some("/d/images/vmlinuz".into()),
                initrd: Some("/d/images/initrd.img".into()),
                cmdline: "root=/dev/vda rw console=ttyS0".into(),
            },
            forward_bind: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            http_bind: IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2)),
            http_port: 20001,
            ssh_port: 10001,
            tb_cache_mib: 64,
            quick_cpu_check: true,
            node: "local".into(),
        }
    }

    #[test]
    fn forwards_are_bound_to_loopback_and_the_guest_network_is_restricted() {
        let x = sample().render().unwrap();
        assert!(x.contains("restrict=on"));
        assert!(x.contains("hostfwd=tcp:127.0.0.2:20001-:80"), "HTTP for nginx, not on the dashboard's host");
        assert!(x.contains("hostfwd=tcp:127.0.0.1:10001-:22"), "SSH for users");
        assert!(!x.contains("127.0.0.1:20001"));
        assert!(!x.contains("<interface"), "no libvirt network, so no NAT network either");
    }

    #[test]
    fn tcg_guests_get_a_capped_translation_cache_and_kvm_guests_do_not() {
        let x = sample().render().unwrap();
        assert!(x.contains("<tb-cache unit='MiB'>64</tb-cache>"));
        assert!(x.starts_with("<domain type='qemu'"));
        assert_eq!([128, 256, 512, 1024, 4096].map(tb_cache_mib), [32, 64, 128, 256, 256], "sized with the plan");
        assert!(x.contains("<memballoon model='virtio' freePageReporting='on'>"), "free memory goes back to the host");
        let mut k = sample();
        k.domain_type = DomainType::Kvm;
        let x = k.render().unwrap();
        assert!(!x.contains("tb-cache"));
        assert!(x.starts_with("<domain type='kvm'"));
    }

    #[test]
    fn the_cpu_is_checked_the_quick_way_unless_the_full_check_is_set() {
        let x = sample().render().unwrap();
        assert!(x.ends_with("</qemu:commandline>\n  <qemu:capabilities>\n    <qemu:del capability='cpu-unavailable-features'/>\n  </qemu:capabilities>\n</domain>\n"), "{x}");
        let mut full = sample();
        full.quick_cpu_check = false;
        let x = full.render().unwrap();
        assert!(!x.contains("qemu:capabilities"), "{x}");
        assert_eq!(super::super::cpu_check::with_cpu_check(&x, true), sample().render().unwrap(), "one element, wherever it was added");
    }

    #[test]
    fn direct_kernel_boot_when_the_image_has_a_kernel_and_firmware_otherwise() {
        let x = sample().render().unwrap();
        assert!(x.contains("<kernel>/d/images/vmlinuz</kernel>"));
        let mut fw = sample();
        fw.image.kernel = None;
        let x = fw.render().unwrap();
        assert!(!x.contains("<kernel>"));
        assert!(x.contains("<boot dev='hd'/>"));
    }

    #[test]
    fn values_are_escaped_and_bad_settings_refused() {
        let mut s = sample();
        s.disk = "/d/<x>&'/disk.qcow2".into();
        let x = s.render().unwrap();
        assert!(x.contains("/d/&lt;x&gt;&amp;&#39;/disk.qcow2"));
        // The bind address and the domain type are typed (IpAddr, DomainType): a value like
        // "127.0.0.1,hostfwd=tcp::1-:22" or "xen" is refused where the settings are parsed
        // (server::config tests).
        let mut s = sample();
        s.http_bind = "::1".parse().unwrap();
        assert!(s.render().unwrap().contains("hostfwd=tcp:[::1]:20001-:80"));
        let mut s = sample();
        s.ssh_port = s.http_port;
        assert!(s.render().is_err());
    }

    #[test]
    fn a_domain_carries_its_nodes_marker_and_no_other() {
        let x = sample().render().unwrap();
        assert!(x.contains(&format!("<vmw:node xmlns:vmw='{NODE_NS}' name='local'/>")), "{x}");
        assert_eq!(with_node_marker(&x, "local").unwrap(), x, "marked once");
        assert!(with_node_marker(&x, "n2").is_err(), "another node's domain is not made ours");
        let bare = "<domain><name>vmw-3</name><uuid>u</uuid></domain>";
        let m = with_node_marker(bare, "n2").unwrap();
        assert!(m.starts_with("<domain><name>vmw-3</name>\n  <metadata>") && m.contains("name='n2'"), "{m}");
        assert!(marks_node(&format!("<vmw:node xmlns:vmw=\"{NODE_NS}\" name=\"n2\"/>"), "n2"));
        assert!(!marks_node(&format!("<vmw:node xmlns:vmw=\"{NODE_NS}\" name=\"n22\"/>"), "n2"));
    }
}
