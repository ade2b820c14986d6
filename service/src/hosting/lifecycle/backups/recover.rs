//! Disaster recovery of a node's sites (`vm-webhoster restore-node`, issue 31 item 5): once
//! the service's state is back (`crate::state_backup`), every site of this node that was
//! running, sleeping or stopped is rebuilt from its newest successful backup:
//! 1. its VM folder made anew (what was left of it removed), the backup materialised
//!    (`materialize`: its base restored from the repository when this node lacks it) and its
//!    disk put in as the VM's;
//! 2. an inert seed (the disk is already the site: its first-boot agent must not personalise it
//!    again and rewrite its page), the domain defined;
//! 3. started as it was: a backup with memory whose base is where it was resumes running, else
//!    the site boots cold; a stopped site stays stopped (and boots at its next start); a sleeping
//!    one comes back running (idle sleep puts it back to sleep later);
//! 4. its route given to nginx.
//! Its snapshots lived beside the lost VM: their rows go. A site without any backup ends
//! `failed`, saying so. One site's failure does not stop the others; the report lists both.
use std::time::Instant;

use super::materialize::materialize;
use super::restore::restore_dir;
use crate::hosting::cx::Cx;
use crate::hosting::lifecycle::snapshots::delete_snapshot_rows;
use crate::hosting::saga::site::{describe, site_route, vm_spec, wait_ready};
use crate::hosting::saga::start::bring_up;
use crate::store::{BackupRow, HostingRow, Lease};
use crate::vm::move_file;
use crate::{Error, Result};
use vmw_types::{EventKind, EventStatus, HostingState, Operation};

/// What [`recover_node`] did, site by site.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RecoveryReport {
    /// Sites rebuilt: (slug, backup id, the state they are in, seconds).
    pub restored: Vec<(String, i32, HostingState, f64)>,
    /// Sites that could not be: (slug, why).
    pub failed: Vec<(String, String)>,
}

impl std::fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "| site | backup | now | seconds |")?;
        writeln!(f, "|---|---|---|---|")?;
        for (slug, bid, state, secs) in &self.restored {
            writeln!(f, "| {slug} | {bid} | {state} | {secs:.1} |")?;
        }
        for (slug, why) in &self.failed {
            writeln!(f, "| {slug} | - | NOT RESTORED: {why} | - |")?;
        }
        write!(f, "{} site(s) restored, {} not", self.restored.len(), self.failed.len())
    }
}

/// Rebuilds every site of this node from its newest backup (see the module docs). Run with
/// the service's state freshly restored, before the service's own start-up reconciliation.
/// Sites are rebuilt `provision_concurrency` at a time (boots are what takes long).
pub(crate) async fn recover_node(cx: &Cx) -> Result<RecoveryReport> {
    use futures::StreamExt;
    let mut todo = Vec::new();
    for id in cx.store.ids_on_node().await? {
        // Any lease in a restored database is a dead process's.
        let Some((row, lease)) = cx.store.look(id).await? else {
            continue;
        };
        if !matches!(row.state, HostingState::Running | HostingState::Sleeping | HostingState::Stopped) || row.user_id.is_none() {
            // Creates, deletes, failures and spares: the service's start-up reconciliation.
            cx.store.release(&lease).await?;
            continue;
        }
        todo.push((row, lease));
    }
    let results: Vec<_> = futures::stream::iter(todo)
        .map(|(row, lease)| async move {
            let slug = row.slug.clone();
            (slug, recover_site(cx, row, lease).await)
        })
        .buffer_unordered(cx.cfg.provision_concurrency.max(1))
        .collect()
        .await;
    let mut report = RecoveryReport::default();
    for (slug, res) in results {
        match res {
            Ok((bid, state, secs)) => report.restored.push((slug, bid, state, secs)),
            Err(why) => report.failed.push((slug, why)),
        }
    }
    report.restored.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(report)
}

/// One site, under its look lease (turned into a `RestoreBackup`). Ok: the backup, the state
/// and the seconds it took; Err: why not (the row ends failed, saying so).
async fn recover_site(cx: &Cx, row: HostingRow, lease: Lease) -> std::result::Result<(i32, HostingState, f64), String> {
    let t = Instant::now();
    let id = row.id;
    let lease_ok = cx.store.set_operation(&lease, Operation::RestoreBackup).await;
    if let Err(e) = lease_ok {
        return Err(describe(&e));
    }
    let _ = cx.store.fail_running_backups_of(id, "the node was lost while it ran").await;
    let _ = delete_snapshot_rows(cx, id).await;
    let backup = match cx.store.last_successful_backup(id).await {
        Ok(Some(b)) => b,
        Ok(None) => {
            let why = "it has no backup in the repository: it was lost with its node".to_owned();
            let _ = cx.finish(lease, HostingState::Failed, Some(why.clone()), format!("Not restored: {why}"), t).await;
            return Err(why);
        }
        Err(e) => return Err(describe(&e)),
    };
    let bid = backup.id;
    let msg = format!("Rebuilding the site from backup {bid} (the node is being restored from the backup repository)");
    cx.event(&row, EventKind::Action, None, EventStatus::Started, msg, None).await;
    match rebuild(cx, &row, &backup).await {
        Ok(state) => {
            let secs = t.elapsed().as_secs_f64();
            let msg = format!("Rebuilt from backup {bid} in {secs:.1} s; the site is {state}");
            tracing::info!(hosting_id = id, backup_id = bid, secs, %state, "site rebuilt from its backup");
            cx.finish(lease, state, None, msg, t).await.map_err(|e| describe(&e))?;
            Ok((bid, state, secs))
        }
        Err(e) => {
            let why = describe(&e);
            tracing::error!(hosting_id = id, backup_id = bid, %why, "could not rebuild a site from its backup");
            let _ = cx.vm.destroy(id).await;
            let _ = cx.vm.undefine(id).await;
            let _ = cx.vm.remove_files(id).await;
            let reason = format!("Could not be restored from backup {bid}: {why}");
            let _ = cx.finish(lease, HostingState::Failed, Some(reason.clone()), reason, t).await;
            Err(why)
        }
    }
}

/// Steps 1 to 4; the state the site ends in.
async fn rebuild(cx: &Cx, row: &HostingRow, b: &BackupRow) -> Result<HostingState> {
    let (id, vm) = (row.id, &cx.vm);
    let spec = vm_spec(cx, row)?;
    // 1. What was left of the VM goes; the backup's files come.
    let _ = vm.destroy(id).await;
    let _ = vm.undefine(id).await;
    vm.remove_files(id).await?;
    let dir = restore_dir(cx, b.id, id);
    let _ = tokio::fs::remove_dir_all(&dir).await;
    tokio::fs::create_dir_all(&dir).await.map_err(|e| Error::internal(format!("creating {}: {e}", dir.display())))?;
    let m = materialize(cx, b, &dir, |msg| tracing::info!(hosting_id = id, "{msg}")).await;
    let placed = async {
        let m = m?;
        move_file(&m.disk, &vm.vm_dir(id).join("disk.qcow2")).await?;
        Ok::<_, Error>(m)
    }
    .await;
    let memory = match placed {
        Ok(m) => m.memory.map(|mem| (mem, dir.clone())),
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return Err(e);
        }
    };
    // 2.
    vm.write_inert_seed(id).await?;
    vm.define(&spec).await?;
    // 3.
    let end = if row.state == HostingState::Stopped { HostingState::Stopped } else { HostingState::Running };
    let res = match (memory, end) {
        (Some((mem, _)), _) => async {
            vm.restore_from_memory_file(id, &mem, spec.http_port, spec.ssh_port).await?;
            wait_ready(cx, row).await?;
            cx.guest().sync_clock_later(&cx.vm, id);
            if end == HostingState::Stopped {
                vm.managed_save(id).await?;
            }
            Ok(())
        }
        .await,
        (None, HostingState::Stopped) => Ok(()),
        (None, _) => bring_up(cx, id).await,
    };
    let _ = tokio::fs::remove_dir_all(&dir).await;
    res?;
    // 4.
    let route = site_route(cx, row).await?;
    cx.proxy().add_route(&route).await?;
    Ok(end)
}
