//! How libvirt checks a starting VM's x86 CPU.
//!
//! After QEMU starts, and before a saved VM's memory is loaded, libvirt reads back which CPU
//! features the guest got. With a QEMU that has the CPU's `unavailable-features` property
//! (4.1 and later), libvirt 9.0 lists the CPU object's properties and reads every one with its
//! own `qom-get` call: ~400 monitor round trips, 0.2-0.4 s of every start, restore and wake on
//! this machine (libvirtd's debug log; FACTS.md). Without that capability it reads the same
//! answer from the CPU's `feature-words` and `filtered-features` in two calls: the x86 path
//! libvirt used before QEMU 4.1, still in 9.0 and still checking `check='full'`.
//!
//! The quick check removes that one capability from the VM's QEMU with the `qemu:capabilities`
//! override of the domain XML (libvirt 5.5+; libvirt marks the domain tainted
//! "custom-hypervisor-feature" in its log, as the TCG cache setting already does). Measured on a
//! saved 256 MiB guest: `virsh start` 0.48-0.50 s with the per-property probe, 0.27-0.32 s
//! without it (BENCHMARKS.md). `--full-cpu-check` keeps libvirt's default.

/// The domain XML element that makes libvirt check the CPU in two calls.
pub(super) const QUICK: &str =
    "  <qemu:capabilities>\n    <qemu:del capability='cpu-unavailable-features'/>\n  </qemu:capabilities>\n";

const OPEN: &str = "<qemu:capabilities>";
const CLOSE: &str = "</qemu:capabilities>";

/// `xml` (a domain XML in the qemu namespace) with the quick CPU check when `quick`, and
/// without any capability override when not. Idempotent; other elements are kept as they are.
pub(super) fn with_cpu_check(xml: &str, quick: bool) -> String {
    let mut out = without_override(xml);
    if quick {
        if let Some(at) = out.rfind("</domain>") {
            // Keep the line's indentation: the element goes on a line of its own.
            let line_start = out[..at].rfind('\n').map_or(at, |n| n + 1);
            let at = if out[line_start..at].trim().is_empty() { line_start } else { at };
            out.insert_str(at, QUICK);
        }
    }
    out
}

/// `xml` without its `<qemu:capabilities>` element (and the line it stood on).
fn without_override(xml: &str) -> String {
    let (Some(a), Some(b)) = (xml.find(OPEN), xml.find(CLOSE)) else {
        return xml.to_owned();
    };
    if b < a {
        return xml.to_owned();
    }
    let mut end = b + CLOSE.len();
    let mut start = a;
    let before = &xml[..a];
    let line_start = before.rfind('\n').map_or(0, |n| n + 1);
    if before[line_start..].trim().is_empty() && xml[end..].starts_with('\n') {
        start = line_start;
        end += 1;
    }
    format!("{}{}", &xml[..start], &xml[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMPED: &str = "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n  <name>vmw-7</name>\n  <qemu:commandline>\n    <qemu:arg value='-netdev'/>\n  </qemu:commandline>\n</domain>\n";

    #[test]
    fn the_quick_check_drops_one_capability_once_and_goes_away_again() {
        let quick = with_cpu_check(DUMPED, true);
        assert!(quick.ends_with("  </qemu:commandline>\n  <qemu:capabilities>\n    <qemu:del capability='cpu-unavailable-features'/>\n  </qemu:capabilities>\n</domain>\n"), "{quick}");
        assert_eq!(with_cpu_check(&quick, true), quick, "applied twice: one element");
        assert_eq!(with_cpu_check(&quick, false), DUMPED, "the full check: libvirt's default XML again");
        assert_eq!(with_cpu_check(DUMPED, false), DUMPED);
    }

    #[test]
    fn an_xml_on_one_line_gets_the_element_before_its_end() {
        let x = with_cpu_check("<domain><name>a</name></domain>", true);
        assert!(x.starts_with("<domain><name>a</name>  <qemu:capabilities>"), "{x}");
        assert!(x.ends_with("</qemu:capabilities>\n</domain>"), "{x}");
        assert!(!with_cpu_check(&x, false).contains("qemu:"), "the full check: no override left");
    }
}
