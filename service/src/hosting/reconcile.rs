//! Reconciliation: make the database, libvirt, the VM disk folder and the nginx sites folder
//! agree. Run at start-up (a crash in the middle of an operation ends as a running site or a
//! clean failure) and periodically (orphans, VMs that stopped by themselves).
use std::collections::HashSet;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};

use super::{HostingService, HostingState, Operation, ports};
use crate::Result;
use crate::db::entity::{hosting, port_lease};
use crate::vm::VmState;

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ReconcileReport {
    /// Interrupted creates that were cleaned up and queued again.
    pub requeued: Vec<i32>,
    /// Interrupted deletes that were finished.
    pub deletes_finished: Vec<i32>,
    /// Interrupted start/stop/restart whose state was read back from libvirt.
    pub ops_settled: Vec<i32>,
    /// Running/stopped hostings whose recorded state was corrected from libvirt.
    pub states_corrected: Vec<i32>,
    /// Failed hostings that still held resources, now removed.
    pub failed_scrubbed: Vec<i32>,
    pub orphan_domains: Vec<i32>,
    pub orphan_dirs: Vec<i32>,
    pub orphan_routes: Vec<i32>,
    pub orphan_leases: Vec<i32>,
    pub routes_restored: Vec<i32>,
    /// Warm spares that were half-made or lost their saved state.
    pub spares_removed: Vec<i32>,
}

/// A periodic pass leaves alone hostings in the middle of something that changed this
/// recently (their work may have been started a moment ago by this process).
const PERIODIC_MIN_IDLE_MS: i64 = 10_000;

impl HostingService {
    /// Reconciles everything not in flight in this process: at start-up, nothing is.
    pub async fn reconcile(&self) -> Result<ReconcileReport> {
        self.reconcile_pass(0).await
    }

    /// The periodic pass (see `PERIODIC_MIN_IDLE_MS`).
    pub(super) async fn reconcile_periodic(&self) -> Result<ReconcileReport> {
        self.reconcile_pass(PERIODIC_MIN_IDLE_MS).await
    }

    async fn reconcile_pass(&self, min_idle_ms: i64) -> Result<ReconcileReport> {
        let mut rep = ReconcileReport::default();
        let db = &self.inner.db;
        let ids: Vec<i32> = hosting::Entity::find()
            .filter(hosting::Column::NodeId.eq(self.inner.node_id))
            .all(db)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        let domains: Vec<(i32, VmState)> = self.inner.vm.list_domains().await?;
        let routes: HashSet<i32> = self.inner.proxy.list_routes().await?.into_iter().collect();

        for id in ids {
            // Held while this row is looked at: operations wait for it, claims skip it.
            let Some(busy) = self.try_mark_inflight(id) else {
                continue;
            };
            // Read again under the mark: the list above may be seconds old by now.
            let Some(row) = hosting::Entity::find_by_id(id).one(db).await? else {
                continue;
            };
            let row = &row;
            let state = HostingState::parse(&row.state);
            let settled = matches!(state, Some(HostingState::Running | HostingState::Stopped | HostingState::Failed))
                && row.operation.is_none()
                || state == Some(HostingState::Spare) && row.operation.is_none();
            if !settled && crate::db::now_ms() - row.updated_at < min_idle_ms {
                continue;
            }
            let op = row.operation.as_deref();
            match (state, op) {
                (Some(HostingState::Queued | HostingState::Provisioning), _) => {
                    // A create that this process is not running: start it over from a clean slate.
                    let errors = self.scrub(row).await;
                    if errors.is_empty() {
                        if let Some(r) = self
                            .update_row(row.id, |am| {
                                am.state = Set(HostingState::Queued.as_str().into());
                                am.operation = Set(Some(Operation::Create.as_str().into()));
                                am.http_port = Set(None);
                                am.ssh_port = Set(None);
                            })
                            .await?
                        {
                            self.event(&r, "state", None, "queued", "Provisioning was interrupted (service restart); cleaned up and starting over".into(), None)
                                .await;
                        }
                        self.spawn_create(row.id, busy);
                        rep.requeued.push(row.id);
                    } else {
                        tracing::warn!(hosting_id = row.id, ?errors, "could not clean an interrupted create");
                    }
                }
                (Some(HostingState::Deleting), _) => {
                    let this = self.clone();
                    let id = row.id;
                    let _ = self.update_row(id, |am| am.operation = Set(Some(Operation::Delete.as_str().into()))).await?;
                    tokio::spawn(async move {
                        let _busy = busy;
                        if let Err(err) = this.run_delete(id).await {
                            tracing::warn!(hosting_id = id, %err, "could not finish an interrupted delete");
                        }
                    });
                    rep.deletes_finished.push(row.id);
                }
                (Some(HostingState::Failed), _) => {
                    let holds = domains.iter().any(|(id, _)| *id == row.id)
                        || self.inner.vm.vm_dir(row.id).exists()
                        || routes.contains(&row.id)
                        || !ports::leased_by(db, row.id).await?.is_empty();
                    if holds {
                        let errors = self.scrub(row).await;
                        if errors.is_empty() {
                            rep.failed_scrubbed.push(row.id);
                        }
                    }
                    if row.operation.is_some() {
                        self.update_row(row.id, |am| am.operation = Set(None)).await?;
                    }
                }
                (Some(HostingState::Running | HostingState::Stopped), _) => {
                    let actual = domains.iter().find(|(id, _)| *id == row.id).map(|(_, s)| *s);
                    let want = match actual {
                        Some(VmState::Running) => HostingState::Running,
                        Some(VmState::Paused) => HostingState::Running,
                        _ => HostingState::Stopped,
                    };
                    let mut changed = state != Some(want);
                    if op.is_some() {
                        rep.ops_settled.push(row.id);
                        changed = true;
                    } else if changed {
                        rep.states_corrected.push(row.id);
                    }
                    if changed {
                        if let Some(r) = self
                            .update_row(row.id, |am| {
                                am.state = Set(want.as_str().into());
                                am.operation = Set(None);
                                if want != HostingState::Running {
                                    am.running_since = Set(None);
                                }
                            })
                            .await?
                        {
                            self.event(&r, "state", None, want.as_str(), format!("State read back from the hypervisor: {}", want.as_str()), None)
                                .await;
                        }
                    }
                    if !routes.contains(&row.id) && row.http_port.is_some() {
                        let route = self.site_route(row).await?;
                        if self.inner.proxy.add_route(&route).await.is_ok() {
                            rep.routes_restored.push(row.id);
                        }
                    }
                }
                (Some(HostingState::Spare), op) => {
                    // A spare is either being made (by a process that died: remove it) or saved
                    // and waiting (its domain must exist with its saved state).
                    let saved = op.is_none() && self.inner.vm.has_managed_save(row.id).await.unwrap_or(false);
                    if !saved {
                        let errors = self.scrub(row).await;
                        if errors.is_empty() {
                            hosting::Entity::delete_by_id(row.id).exec(db).await?;
                            rep.spares_removed.push(row.id);
                        }
                    }
                }
                (None, _) => tracing::warn!(hosting_id = row.id, state = row.state, "unknown hosting state"),
            }
        }

        // Orphans: things named after a hosting id that has no row. List them first, then the
        // rows: a hosting's row is made before anything named after it and removed after it.
        let domains: Vec<(i32, VmState)> = self.inner.vm.list_domains().await?;
        let dirs = self.vm_dirs().await;
        let routes: HashSet<i32> = self.inner.proxy.list_routes().await?.into_iter().collect();
        let leases = port_lease::Entity::find()
            .filter(port_lease::Column::NodeId.eq(self.inner.node_id))
            .all(db)
            .await?;
        let mut known: HashSet<i32> = hosting::Entity::find()
            .filter(hosting::Column::NodeId.eq(self.inner.node_id))
            .all(db)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        known.extend(self.inner.inflight.lock().unwrap().keys().copied());
        for (id, _) in &domains {
            if !known.contains(id) {
                let _ = self.inner.vm.undefine(*id).await;
                let _ = self.inner.vm.remove_files(*id).await;
                rep.orphan_domains.push(*id);
            }
        }
        for id in dirs {
            if !known.contains(&id) {
                if self.inner.vm.remove_files(id).await.is_ok() {
                    rep.orphan_dirs.push(id);
                }
            }
        }
        for id in &routes {
            if !known.contains(id) {
                if self.inner.proxy.remove_route(*id).await.is_ok() {
                    rep.orphan_routes.push(*id);
                }
            }
        }
        for l in leases {
            if !known.contains(&l.hosting_id) && !rep.orphan_leases.contains(&l.hosting_id) {
                ports::release_all(db, l.hosting_id).await?;
                rep.orphan_leases.push(l.hosting_id);
            }
        }
        Ok(rep)
    }

    /// Hosting ids that have a folder under `{data_dir}/vms/`.
    async fn vm_dirs(&self) -> Vec<i32> {
        let root = self.inner.cfg.data_dir.join("vms");
        let mut out = Vec::new();
        let Ok(mut rd) = tokio::fs::read_dir(&root).await else {
            return out;
        };
        while let Ok(Some(entry)) = rd.next_entry().await {
            if let Some(id) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
                if self.inner.vm.vm_dir(id) == entry.path() {
                    out.push(id);
                }
            }
        }
        out
    }
}
