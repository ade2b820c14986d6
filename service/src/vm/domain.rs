//! A VM's libvirt domain: its definition, start, shutdown, stop and removal, its state and
//! statistics, and the domains of this node that have no row.
use std::time::{Duration, Instant};

use virt::connect::Connect;
use virt::domain::Domain;
use virt::error::ErrorNumber;

use super::memory::{compress, delta, wake_feed};
use super::{CpuPriority, Doing, DomainXml, ImageInfo, VmError, VmManager, VmSpec, VmState, VmStats, forwards, map_state, priority, xml};

impl VmManager {
    /// The CPU weight spares are made at. A per-user daemon (`qemu:///session`) has no cgroups,
    /// and libvirt refuses a `<cputune>` there: its spares run at the default weight.
    pub(super) fn spare_cpu_shares(&self) -> u64 {
        if self.inner.cfg.libvirt_uri.contains("/session") { priority::FOREGROUND_SHARES } else { self.inner.cfg.spare_cpu_shares }
    }

    /// The domain XML of a VM named `name` whose disk, seed and console log are in `dir`.
    pub(super) fn domain_xml(&self, name: &str, dir: &std::path::Path, spec: &VmSpec) -> Result<String, VmError> {
        DomainXml {
            name: name.to_owned(),
            domain_type: self.inner.domain_type,
            vcpus: spec.vcpus,
            memory_mib: spec.memory_mib,
            disk: dir.join("disk.qcow2"),
            seed: dir.join("seed.iso"),
            console_log: dir.join("console.log"),
            image: ImageInfo::load(&self.inner.cfg.guest_image_dir)?,
            forward_bind: self.inner.cfg.forward_bind,
            http_bind: self.inner.cfg.http_forward_bind,
            http_port: spec.http_port,
            ssh_port: spec.ssh_port,
            tb_cache_mib: xml::tb_cache_mib(spec.memory_mib),
            quick_cpu_check: self.inner.cfg.quick_cpu_check,
            node: self.inner.cfg.node_name.clone(),
        }
        .render()
        .map(|xml| priority::with_priority(&xml, spec.priority, self.spare_cpu_shares()))
    }

    /// Defines the domain. Already defined under this name: left as it is.
    pub async fn define(&self, spec: &VmSpec) -> Result<(), VmError> {
        let name = self.domain_name(spec.hosting_id);
        let xml = self.domain_xml(&name, &self.vm_dir(spec.hosting_id), spec)?;
        self.blocking(move |c| {
            if Self::lookup(c, &name)?.is_none() {
                c.define_domain_xml(&xml).doing("define domain", &name)?;
            }
            Ok(())
        })
        .await
    }

    /// Starts the domain: restores its saved memory when there is some (else boots), or
    /// resumes it when paused. A restored VM listens on `http_port` (its HTTP forward) from
    /// its start but has no SSH forward yet (see `forwards`): call
    /// [`VmManager::ensure_forwards`] next.
    /// A foreground start also gives the VM the normal CPU weight (a claimed spare had a small
    /// one): a restore from its first instruction (the restore's XML), and the definition too,
    /// except after a restore from a delta (the definition's weight counts at a boot, and every
    /// boot here gives it).
    pub async fn start(&self, hosting_id: i32, priority: CpuPriority, http_port: u16) -> Result<(), VmError> {
        let name = self.domain_name(hosting_id);
        let spares = self.spare_cpu_shares();
        let http = (self.inner.cfg.http_forward_bind, http_port);
        let node = self.inner.cfg.node_name.clone();
        let quick = self.inner.cfg.quick_cpu_check;
        // Saved memory stored as a delta to the golden is served expanded, through a pipe that
        // libvirt restores from (libvirt cannot read the delta): the expansion starts now and
        // runs while libvirt and QEMU start.
        let t = Instant::now();
        let wake = self.vm_dir(hosting_id).join(delta::WAKE_FILE);
        let feed = {
            let saved = compress::managed_save_path(&name);
            tokio::task::spawn_blocking(move || if delta::is_delta(&saved) { wake_feed::Feed::start(&saved, &wake).map(Some) } else { Ok(None) })
                .await??
        };
        self.blocking(move |c| {
            let d = Self::existing(c, &name)?;
            if !d.is_active().doing("read the state of domain", &name)? {
                Self::update_definition(c, &d, &name, http.0, &node)?;
                if let Some(feed) = feed {
                    // The restore's XML gives the guest its CPU weight from its first
                    // instruction; the definition's follows at its next boot (below).
                    let xml = forwards::restore_xml(feed.xml(), (priority, spares), quick, http);
                    return Self::restore_fed(c, &d, &name, feed, &xml, t);
                }
                if d.has_managed_save(0).doing("look for a saved state of domain", &name)? {
                    forwards::prepare_saved_image(&d, &name, (priority, spares), quick, http)?;
                }
                d.create().doing("start domain", &name)?;
                tracing::debug!(domain = %name, started_ms = t.elapsed().as_millis() as u64, "domain started");
            } else if map_state(&d, &name)? == VmState::Paused {
                if priority == CpuPriority::Foreground {
                    priority::to_foreground(&d, &name)?;
                }
                d.resume().doing("resume domain", &name)?;
                return Ok(());
            }
            if priority == CpuPriority::Foreground {
                priority::to_foreground(&d, &name)?;
            }
            Ok(())
        })
        .await
    }

    /// Before a start (a boot or a restore): a definition from before the HTTP forwards moved
    /// to their own address gets its HTTP forward there, and one from before the node markers this node's
    /// marker (it is this node's VM: its row is). Unchanged definitions are left alone.
    fn update_definition(c: &Connect, d: &Domain, name: &str, http_bind: std::net::IpAddr, node: &str) -> Result<(), VmError> {
        let xml = d.xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE | virt::sys::VIR_DOMAIN_XML_SECURE).doing("read the definition of domain", name)?;
        let moved = forwards::rebind_http_forward(&xml, http_bind);
        let marked = xml::with_node_marker(&moved, node).unwrap_or(moved);
        if marked != xml {
            c.define_domain_xml(&marked).doing("update the definition of domain", name)?;
            tracing::info!(domain = %name, "updated the definition (HTTP forward address, node marker)");
        }
        Ok(())
    }

    /// Gives the running VM the forwards of its HTTP and SSH ports that it lacks.
    pub async fn ensure_forwards(&self, hosting_id: i32, http_port: u16, ssh_port: u16) -> Result<(), VmError> {
        let name = self.domain_name(hosting_id);
        let (http, ssh) = ((self.inner.cfg.http_forward_bind, http_port), (self.inner.cfg.forward_bind, ssh_port));
        self.blocking(move |c| forwards::ensure(&Self::existing(c, &name)?, &name, http, ssh)).await
    }

    /// ACPI shutdown, then a hard stop if the guest has not powered off within `timeout`.
    pub async fn shutdown(&self, hosting_id: i32, timeout: Duration) -> Result<(), VmError> {
        let name = self.domain_name(hosting_id);
        let asked = {
            let name = name.clone();
            self.blocking(move |c| match Self::lookup(c, &name)? {
                Some(d) if d.is_active().doing("read the state of domain", &name)? => {
                    d.shutdown().doing("shut down domain", &name)?;
                    Ok(true)
                }
                _ => Ok(false),
            })
            .await?
        };
        if !asked {
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.state(hosting_id).await? {
                VmState::ShutOff | VmState::Missing | VmState::Crashed => return Ok(()),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        tracing::warn!(hosting_id, "guest did not power off in {timeout:?}; forcing it off");
        self.destroy(hosting_id).await
    }

    pub async fn destroy(&self, hosting_id: i32) -> Result<(), VmError> {
        let name = self.domain_name(hosting_id);
        self.blocking(move |c| match Self::lookup(c, &name)? {
            Some(d) => Self::stop_active(&d, &name),
            None => Ok(()),
        })
        .await
    }

    /// Stops domain `d` (a hard stop) if it runs.
    pub(super) fn stop_active(d: &Domain, name: &str) -> Result<(), VmError> {
        if d.is_active().doing("read the state of domain", name)? {
            d.destroy().doing("stop domain", name)?;
        }
        Ok(())
    }

    /// Stops and removes the domain definition (and any managed save). Missing: fine.
    pub async fn undefine(&self, hosting_id: i32) -> Result<(), VmError> {
        let name = self.domain_name(hosting_id);
        self.blocking(move |c| {
            if let Some(d) = Self::lookup(c, &name)? {
                Self::stop_active(&d, &name)?;
                // A transient domain (a clone restored but not yet defined) is gone once stopped.
                if let Some(d) = Self::lookup(c, &name)? {
                    let flags = virt::sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                        | virt::sys::VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA;
                    d.undefine_flags(flags).doing("undefine domain", &name)?;
                }
            }
            Ok(())
        })
        .await
    }

    pub async fn state(&self, hosting_id: i32) -> Result<VmState, VmError> {
        let name = self.domain_name(hosting_id);
        self.blocking(move |c| match Self::lookup(c, &name)? {
            Some(d) => map_state(&d, &name),
            None => Ok(VmState::Missing),
        })
        .await
    }

    pub async fn stats(&self, hosting_id: i32) -> Result<VmStats, VmError> {
        let name = self.domain_name(hosting_id);
        self.blocking(move |c| {
            let d = Self::existing(c, &name)?;
            let info = d.info().doing("read the statistics of domain", &name)?;
            let mut s = VmStats {
                cpu_time_ns: info.cpu_time,
                vcpus: info.nr_virt_cpu,
                memory_max_kib: info.max_mem,
                sampled_at_ms: crate::db::now_ms(),
                ..Default::default()
            };
            if let Ok(mem) = d.memory_stats(0) {
                for m in mem {
                    if m.tag == virt::sys::VIR_DOMAIN_MEMORY_STAT_RSS as u32 {
                        s.memory_rss_kib = m.val;
                    }
                }
            }
            if let Ok(b) = d.block_stats("vda") {
                s.disk_rd_bytes = b.rd_bytes.max(0) as u64;
                s.disk_wr_bytes = b.wr_bytes.max(0) as u64;
            }
            Ok(s)
        })
        .await
    }

    /// Our domains (by prefix) with their hosting ids and states.
    pub async fn list_domains(&self) -> Result<Vec<(i32, VmState)>, VmError> {
        let prefix = self.inner.cfg.domain_prefix.clone();
        self.blocking(move |c| {
            let mut out = Vec::new();
            for d in c.list_all_domains(0).doing_host("list domains")? {
                let name = d.name().doing_host("read a domain's name")?;
                // Only digits after the prefix: `vmw-n2-5` is node 2's, not this prefix's.
                let id = name.strip_prefix(&prefix).filter(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()));
                if let Some(id) = id.and_then(|r| r.parse::<i32>().ok()) {
                    out.push((id, map_state(&d, &name)?));
                }
            }
            out.sort_by_key(|(id, _)| *id);
            Ok(out)
        })
        .await
    }

    /// Removes the domain of `hosting_id` (reconciliation found no row for it) only when it
    /// carries this node's marker ([`xml::node_marker`]): a domain this node did not make (another
    /// app's, another node's of the same daemon, one from before the markers) is left alone.
    /// True when it was removed.
    pub async fn undefine_orphan(&self, hosting_id: i32) -> Result<bool, VmError> {
        let name = self.domain_name(hosting_id);
        let node = self.inner.cfg.node_name.clone();
        let ours = self
            .blocking(move |c| {
                let Some(d) = Self::lookup(c, &name)? else { return Ok(false) };
                match d.metadata(virt::sys::VIR_DOMAIN_METADATA_ELEMENT as i32, Some(xml::NODE_NS), 0) {
                    Ok(el) => Ok(xml::marks_node(&el, &node)),
                    Err(e) if e.code() == ErrorNumber::NoDomainMetadata.into() => Ok(false),
                    Err(e) => Err(e).doing("read the metadata of domain", &name),
                }
            })
            .await?;
        if !ours {
            tracing::warn!(domain = %self.domain_name(hosting_id), node = %self.inner.cfg.node_name, "a domain with this node's prefix but not its marker has no row: left alone");
            return Ok(false);
        }
        self.undefine(hosting_id).await?;
        Ok(true)
    }

    /// Pauses a running VM (it keeps its RAM, uses no CPU; resuming takes ~0.02 s).
    pub async fn suspend(&self, hosting_id: i32) -> Result<(), VmError> {
        let name = self.domain_name(hosting_id);
        self.blocking(move |c| Self::existing(c, &name)?.suspend().doing("pause domain", &name)).await
    }
}
