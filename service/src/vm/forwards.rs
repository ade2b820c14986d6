//! A restored VM's port forwards come up only once its guest runs.
//!
//! QEMU binds a user-mode `hostfwd` port when its process starts, and a restore spends the next
//! ~0.3-0.5 s loading the saved memory. A connection made in that window is accepted by QEMU,
//! whose SYN to the not-yet-running guest is lost: the visitor waited 6.3 s for slirp's
//! retransmit (measured: every request sent in the window took 6.2-6.5 s, the next ones 0.01 s).
//! So a restore starts from a save image whose netdev has no `hostfwd`, and the forwards are
//! added by QEMU's monitor (`hostfwd_add`) once the guest runs. Until then the port refuses
//! connections: nginx passes the request to its backup, the app's waker, which holds it until the
//! site is up. The persistent definition keeps its forwards, so a cold boot binds them as before.
//!
//! libvirt 9.0 has no API for user-mode forwards (hence `qemu:commandline` in the domain XML),
//! so this uses `virDomainManagedSaveDefineXML` (the save image's XML, ABI-checked by libvirt)
//! and the HMP `hostfwd_add`/`info usernet` commands through `virDomainQemuMonitorCommand`
//! (libvirt marks the domain "custom-monitor" tainted in its log; nothing else changes).
use std::ffi::{CStr, CString};
use std::net::IpAddr;

use virt::domain::Domain;

use super::VmError;
use super::cpu_check::with_cpu_check;
use super::priority::{CpuPriority, with_priority};
use super::xml::hostfwd_addr;

/// `xml` (a domain XML with our `-netdev user,...` argument) without its `hostfwd=` options.
pub(super) fn strip_hostfwds(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(at) = rest.find(",hostfwd=") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        // The option ends at the next option or at the end of the attribute value.
        let end = tail.find([',', '\'', '"', '<']).unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Adds the HTTP forward `bind:port` -> guest port 80 to the user-mode netdev (`user,id=n0,...`)
/// of a domain XML whose forwards were stripped.
fn with_http_forward(xml: &str, bind: IpAddr, port: u16) -> String {
    let netdev = "user,id=n0,restrict=on";
    xml.replacen(netdev, &format!("{netdev},hostfwd=tcp:{}:{port}-:80", hostfwd_addr(bind)), 1)
}

/// The HMP rules for the two forwards of a VM: HTTP on its own address (nginx's), SSH on the
/// users' one.
fn rules((http_bind, http_port): (IpAddr, u16), (ssh_bind, ssh_port): (IpAddr, u16)) -> [String; 2] {
    [format!("tcp:{}:{http_port}-:80", hostfwd_addr(http_bind)), format!("tcp:{}:{ssh_port}-:22", hostfwd_addr(ssh_bind))]
}

/// `xml` (a domain definition) with its HTTP forward (`hostfwd=tcp:ADDR:PORT-:80`) on `bind`:
/// a VM defined before the HTTP forwards moved to their own address gets it at its next boot.
pub(super) fn rebind_http_forward(xml: &str, bind: IpAddr) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(at) = rest.find(",hostfwd=tcp:") {
        let start = at + ",hostfwd=tcp:".len();
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail.find([',', '\'', '"', '<']).unwrap_or(tail.len());
        let rule = &tail[..end];
        match rule.strip_suffix("-:80").and_then(|hp| hp.rsplit_once(':')) {
            Some((_, port)) if port.bytes().all(|b| b.is_ascii_digit()) => out.push_str(&format!("{}:{port}-:80", hostfwd_addr(bind))),
            _ => out.push_str(rule),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// The XML a saved image is restored with: it binds only the HTTP forward `http` (the VM's
/// current address and port, so QEMU listens from its start and the site answers the moment
/// the guest runs) and no other (the SSH port may still be held by the sleeping site's waker:
/// [`ensure`] adds it after the restore), runs with the CPU weight of `priority` from its first
/// instruction, and has its CPU checked the `quick` way or not (a VM saved before the setting
/// changed gets the current one).
pub(super) fn restore_xml(xml: &str, (priority, spare_shares): (CpuPriority, u64), quick: bool, (bind, http_port): (IpAddr, u16)) -> String {
    let forwards = with_http_forward(&strip_hostfwds(xml), bind, http_port);
    with_cpu_check(&with_priority(&forwards, priority, spare_shares), quick)
}

/// Rewrites the domain's managed save image's XML for its restore ([`restore_xml`]).
pub(super) fn prepare_saved_image(d: &Domain, name: &str, weight: (CpuPriority, u64), quick: bool, http: (IpAddr, u16)) -> Result<(), VmError> {
    let xml = match saved_image_xml(d, name) {
        // libvirt's test driver keeps no save images (and its VMs no ports).
        Err(e) if unsupported(&e) => return Ok(()),
        r => r?,
    };
    let stripped = restore_xml(&xml, weight, quick, http);
    if stripped == xml {
        return Ok(());
    }
    let c = CString::new(stripped).map_err(|_| VmError::Invalid("a save image's XML holds a NUL byte".into()))?;
    // SAFETY: a live domain pointer and a NUL-terminated string that outlives the call.
    let rc = unsafe { virt::sys::virDomainManagedSaveDefineXML(d.as_ptr(), c.as_ptr(), 0) };
    if rc < 0 {
        return Err(VmError::Libvirt {
            action: "rewrite the saved state of domain",
            domain: Some(name.to_owned()),
            source: virt::error::Error::last_error(),
        });
    }
    Ok(())
}

/// The connection's driver has no such call (libvirt's test driver).
fn unsupported(e: &VmError) -> bool {
    matches!(e, VmError::Libvirt { source, .. } if source.code() == virt::error::ErrorNumber::NoSupport.into())
}

fn saved_image_xml(d: &Domain, name: &str) -> Result<String, VmError> {
    // SAFETY: a live domain pointer; the returned string is ours to free.
    let p = unsafe { virt::sys::virDomainManagedSaveGetXMLDesc(d.as_ptr(), virt::sys::VIR_DOMAIN_SAVE_IMAGE_XML_SECURE) };
    if p.is_null() {
        return Err(VmError::Libvirt {
            action: "read the saved state of domain",
            domain: Some(name.to_owned()),
            source: virt::error::Error::last_error(),
        });
    }
    // SAFETY: libvirt returns a NUL-terminated string allocated with malloc.
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    // SAFETY: freed once, with the allocator libvirt used.
    unsafe { libc::free(p.cast()) };
    Ok(s)
}

fn hmp(d: &Domain, name: &str, cmd: &str) -> Result<String, VmError> {
    d.qemu_monitor_command(cmd, virt::sys::VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP).map_err(|source| VmError::Libvirt {
        action: "talk to the QEMU monitor of domain",
        domain: Some(name.to_owned()),
        source,
    })
}

/// Adds whichever of the VM's two forwards QEMU does not have (a booted VM has both; a
/// restored one none; a process that died in between left it with one or none), and moves a
/// forward that listens on another address than its own (a VM started before the HTTP
/// forwards moved off the dashboard's host).
pub(super) fn ensure(d: &Domain, name: &str, http: (IpAddr, u16), ssh: (IpAddr, u16)) -> Result<(), VmError> {
    let have = match hmp(d, name, "info usernet") {
        // libvirt's test driver: no QEMU, no ports.
        Err(e) if unsupported(&e) => return Ok(()),
        r => r?,
    };
    for (rule, (bind, port)) in rules(http, ssh).iter().zip([http, ssh]) {
        match forward_address(&have, port) {
            Some(addr) if addr == bind.to_string() || format!("[{addr}]") == hostfwd_addr(bind) => continue,
            Some(addr) => {
                let old = if addr.contains(':') { format!("[{addr}]") } else { addr };
                let said = hmp(d, name, &format!("hostfwd_remove n0 tcp:{old}:{port}"))?;
                tracing::info!(domain = %name, port, from = %old, to = %bind, said = said.trim(), "moved a forward to its address");
            }
            None => {}
        }
        let said = hmp(d, name, &format!("hostfwd_add n0 {rule}"))?;
        // hostfwd_add prints nothing when it worked, and why not when it did not.
        if !said.trim().is_empty() {
            return Err(VmError::Forward { port, problem: said.trim().chars().take(200).collect() });
        }
    }
    Ok(())
}

/// The host address of the forward from `port` that `info usernet` lists, if any. Its lines
/// look like `  TCP[HOST_FORWARD]  12       127.0.0.1 27001       10.0.2.15    80     0     0`.
fn forward_address(info: &str, port: u16) -> Option<String> {
    info.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let forward = f.first().is_some_and(|kind| kind.ends_with("[HOST_FORWARD]")) && f.get(3).and_then(|p| p.parse::<u16>().ok()) == Some(port);
        forward.then(|| f[2].to_owned())
    })
}

/// Whether `info usernet` output lists a host forward from `port`.
#[cfg(test)]
fn lists_forward(info: &str, port: u16) -> bool {
    forward_address(info, port).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restore_binds_the_current_http_port_and_no_ssh_forward() {
        let saved = "<qemu:arg value='user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:20000-:80,hostfwd=tcp:127.0.0.1:20500-:22'/>";
        let x = with_http_forward(&strip_hostfwds(saved), "127.0.0.1".parse().unwrap(), 27001);
        assert_eq!(x, "<qemu:arg value='user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:27001-:80'/>");
        let v6 = with_http_forward(&strip_hostfwds(saved), "::1".parse().unwrap(), 27002);
        assert!(v6.contains(",hostfwd=tcp:[::1]:27002-:80'") && !v6.contains(":22"), "{v6}");
    }

    #[test]
    fn a_save_images_netdev_loses_its_forwards_and_nothing_else() {
        let xml = "<qemu:arg value='-netdev'/>\n<qemu:arg value='user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:27001-:80,hostfwd=tcp:[::1]:27501-:22'/>\n<x a=\"b,c\"/>";
        let s = strip_hostfwds(xml);
        assert_eq!(s, "<qemu:arg value='-netdev'/>\n<qemu:arg value='user,id=n0,restrict=on'/>\n<x a=\"b,c\"/>");
        assert_eq!(strip_hostfwds(&s), s, "stripping twice changes nothing");
    }

    #[test]
    fn info_usernet_is_read_for_host_forwards_only() {
        let info = "Hub -1 (n0):\n  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\n  TCP[HOST_FORWARD]  13       127.0.0.1 27501       10.0.2.15    22     0     0\n  TCP[ESTABLISHED]   25       127.0.0.1 27001       10.0.2.15    80     0     0\n";
        assert!(lists_forward(info, 27501));
        assert!(!lists_forward(info, 27001), "an established connection is not a forward");
        assert!(!lists_forward(info, 80));
        assert_eq!(forward_address(info, 27501).as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn a_definitions_http_forward_moves_to_its_address_and_ssh_stays() {
        let xml = "<qemu:arg value='user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:20001-:80,hostfwd=tcp:127.0.0.1:10001-:22'/>";
        let x = rebind_http_forward(xml, "127.0.0.2".parse().unwrap());
        assert_eq!(x, "<qemu:arg value='user,id=n0,restrict=on,hostfwd=tcp:127.0.0.2:20001-:80,hostfwd=tcp:127.0.0.1:10001-:22'/>");
        assert_eq!(rebind_http_forward(&x, "127.0.0.2".parse().unwrap()), x, "twice changes nothing");
        let v6 = rebind_http_forward(xml, "::1".parse().unwrap());
        assert!(v6.contains("hostfwd=tcp:[::1]:20001-:80,hostfwd=tcp:127.0.0.1:10001-:22"), "{v6}");
        let http = ("127.0.0.2".parse().unwrap(), 20001);
        let ssh = ("127.0.0.1".parse().unwrap(), 10001);
        assert_eq!(rules(http, ssh), ["tcp:127.0.0.2:20001-:80".to_owned(), "tcp:127.0.0.1:10001-:22".to_owned()]);
    }
}
