//! Users' VMs before warm spares on the CPU.
//!
//! A spare is made in the background (a clone's restore and new host keys, or a cold boot), and
//! under TCG that takes a whole core for seconds. A user's create that arrives meanwhile (a spare
//! resumed and personalised, or a clone of its own) must not wait for it: measured in BENCHMARKS.md
//! Run E, resuming a paused spare took 0.2-1.1 s instead of 0.02 s while the pool refilled behind
//! it. So a VM being made as a spare runs with a small CPU weight (libvirt's `<cputune><shares>`,
//! the domain's cgroup `cpu.shares` / `cpu.weight`), and is given the normal weight the moment a
//! user claims it. The weight is only a share when the CPU is contended: an idle host gives the
//! spare all of it, so refills are no slower when nobody creates.
use virt::domain::Domain;

use super::VmError;

/// Who a VM runs for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CpuPriority {
    /// A user's VM: the normal weight.
    #[default]
    Foreground,
    /// A warm spare being made: it yields the CPU to every user's VM.
    Background,
}

/// libvirt's (and the kernel's) default `cpu.shares`.
pub(super) const FOREGROUND_SHARES: u64 = 1024;

/// `xml` (a domain XML) with the CPU weight of `priority`: a `<cputune><shares>` element of
/// `background_shares` (`ServiceConfig::spare_cpu_shares`) for a background VM, none
/// (libvirt's default) for a foreground one. Any other `<cputune>` setting is kept.
pub(super) fn with_priority(xml: &str, priority: CpuPriority, background_shares: u64) -> String {
    let mut out = remove_shares(xml);
    let shares = match priority {
        CpuPriority::Background if background_shares != FOREGROUND_SHARES => background_shares,
        _ => return out,
    };
    let line = format!("<shares>{shares}</shares>");
    if let Some(at) = out.find("<cputune>") {
        out.insert_str(at + "<cputune>".len(), &line);
    } else if let Some(at) = out.find("</vcpu>") {
        out.insert_str(at + "</vcpu>".len(), &format!("\n  <cputune>{line}</cputune>"));
    }
    out
}

/// Drops `<shares>` from the `<cputune>`, and the `<cputune>` itself when it held nothing else.
fn remove_shares(xml: &str) -> String {
    let (open, close) = ("<cputune>", "</cputune>");
    let (Some(a), Some(b)) = (xml.find(open), xml.find(close)) else { return xml.to_owned() };
    if b < a {
        return xml.to_owned();
    }
    let mut inner = xml[a + open.len()..b].to_owned();
    while let Some(s) = inner.find("<shares>") {
        let Some(e) = inner[s..].find("</shares>") else { break };
        // With the indentation before it, when it stood on a line of its own.
        let from = inner[..s].rfind('\n').filter(|&nl| inner[nl..s].trim().is_empty()).unwrap_or(s);
        inner.replace_range(from..s + e + "</shares>".len(), "");
    }
    if inner.trim().is_empty() {
        // The whole element goes, with its line when it stood alone on one.
        let from = xml[..a].rfind('\n').filter(|&nl| xml[nl..a].trim().is_empty()).unwrap_or(a);
        return format!("{}{}", &xml[..from], &xml[b + close.len()..]);
    }
    format!("{}{inner}{}", &xml[..a + open.len()], &xml[b..])
}

/// Gives a running (or paused) domain the normal CPU weight, now and in its definition (so its
/// next boot keeps it). Nothing to do for a domain that already has it.
pub(super) fn to_foreground(d: &Domain, name: &str) -> Result<(), VmError> {
    let fail = |action| move |source| VmError::Libvirt { action, domain: Some(name.to_owned()), source };
    let (live, config) = (virt::sys::VIR_DOMAIN_AFFECT_LIVE, virt::sys::VIR_DOMAIN_AFFECT_CONFIG);
    // libvirt's test driver has its own scheduler ("fair") and no cgroups.
    match d.scheduler_type() {
        Ok((kind, _)) if kind == "posix" => {}
        Ok(_) => return Ok(()),
        Err(e) => return Err(fail("read the CPU scheduler of domain")(e)),
    }
    let mut flags = 0;
    for which in [live, config] {
        match d.scheduler_parameters_flags(which) {
            // A definition without a weight reads 0: libvirt's default.
            Ok(info) if info.cpu_shares.is_some_and(|s| s != FOREGROUND_SHARES && s != 0) => flags |= which,
            Ok(_) => {}
            // No CPU controller (a per-user daemon, a host without cgroups): no weights here.
            Err(e) => {
                tracing::debug!(domain = name, err = %e, "no CPU weight to set");
                return Ok(());
            }
        }
    }
    if flags == 0 {
        return Ok(());
    }
    let info = virt::domain::SchedulerInfo { cpu_shares: Some(FOREGROUND_SHARES), ..Default::default() };
    d.set_scheduler_parameters_flags(&info, flags).map_err(|e| {
        crate::telemetry::libvirt_error("set CPU weight");
        fail("set the CPU weight of domain")(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = "<domain>\n  <name>x</name>\n  <vcpu placement='static'>1</vcpu>\n  <os/>\n</domain>";

    #[test]
    fn a_spare_gets_a_small_cpu_weight_and_a_claimed_one_loses_it() {
        let bg = with_priority(XML, CpuPriority::Background, 32);
        assert!(bg.contains("</vcpu>\n  <cputune><shares>32</shares></cputune>\n  <os/>"), "{bg}");
        assert_eq!(with_priority(&bg, CpuPriority::Background, 32), bg, "setting it twice changes nothing");
        assert_eq!(with_priority(&bg, CpuPriority::Foreground, 32), XML, "the foreground is libvirt's default");
        assert_eq!(with_priority(XML, CpuPriority::Foreground, 32), XML);
        assert_eq!(with_priority(XML, CpuPriority::Background, 1024), XML, "1024 is the default: no element");
    }

    #[test]
    fn libvirts_own_layout_is_read_too() {
        let dumped = "<domain>\n  <vcpu placement='static'>1</vcpu>\n  <cputune>\n    <shares>32</shares>\n  </cputune>\n  <os/>\n</domain>";
        assert_eq!(with_priority(dumped, CpuPriority::Foreground, 32), "<domain>\n  <vcpu placement='static'>1</vcpu>\n  <os/>\n</domain>");
    }

    #[test]
    fn other_cpu_tuning_is_kept() {
        let xml = "<domain><vcpu>1</vcpu><cputune><shares>1024</shares><period>100000</period></cputune></domain>";
        let bg = with_priority(xml, CpuPriority::Background, 32);
        assert_eq!(bg, "<domain><vcpu>1</vcpu><cputune><shares>32</shares><period>100000</period></cputune></domain>");
        assert_eq!(with_priority(&bg, CpuPriority::Foreground, 32), "<domain><vcpu>1</vcpu><cputune><period>100000</period></cputune></domain>");
    }
}
