//! Provisioning as undoable steps (the saga): each step does one thing and knows how to undo
//! it; a failing step undoes the finished ones in reverse order. Every undo is idempotent and
//! keyed on the hosting id, so reconciliation can also run them on a hosting whose progress is
//! unknown (after a crash).
use std::time::{Duration, Instant};

use sea_orm::Set;

use super::ports::{self, PortRange};
use super::{HostingService, HostingState, Step};
use crate::db::entity::hosting;
use crate::db::now_ms;
use crate::proxy::SiteRoute;
use crate::vm::{SeedSpec, VmError, VmSpec, VmState};
use crate::{Error, Result};

impl HostingService {
    /// Provisions in the background; `busy` (the hosting's in-flight mark) lives as long as
    /// the task.
    pub(super) fn spawn_create(&self, id: i32, busy: super::InflightGuard) {
        let this = self.clone();
        tokio::spawn(async move {
            let _busy = busy;
            if let Err(err) = this.run_create(id).await {
                tracing::error!(hosting_id = id, %err, "provisioning task failed");
            }
        });
    }

    async fn run_create(&self, id: i32) -> Result<()> {
        let permits = self.inner.permits.clone();
        let _permit = permits.acquire_owned().await.map_err(Error::internal)?;
        self.run_saga(id, false).await
    }

    /// A claimed warm VM: no boot, so no provisioning slot is needed.
    pub(super) fn spawn_claimed(&self, id: i32, busy: super::InflightGuard) {
        let this = self.clone();
        tokio::spawn(async move {
            let _busy = busy;
            if let Err(err) = this.run_saga(id, true).await {
                tracing::error!(hosting_id = id, %err, "provisioning a claimed warm VM failed");
            }
        });
    }

    /// Runs the steps of a create (cold, or `warm` from a spare), then marks the hosting
    /// running, or undoes what was done and marks it failed with the reason.
    async fn run_saga(&self, id: i32, warm: bool) -> Result<()> {
        let Some(row) = self
            .update_row(id, |am| am.state = Set(HostingState::Provisioning.as_str().into()))
            .await?
        else {
            return Ok(()); // deleted while queued
        };
        let how = if warm { "Provisioning from the warm pool (a VM booted ahead of time)" } else { "Provisioning started" };
        self.event(&row, "state", None, "provisioning", how.into(), None).await;
        let started = Instant::now();

        let mut done: Vec<Step> = Vec::new();
        let mut failure: Option<(Step, Error)> = None;
        let order: &[Step] = if warm { &super::pool::WARM_ORDER } else { &Step::ALL };
        for &step in order {
            self.event(&row, "step", Some(step), "started", step.label().into(), None).await;
            let t = Instant::now();
            let result = if self.inner.faults.take(step) {
                Err(Error::Internal(format!("injected failure at step {}", step.as_str())))
            } else if warm {
                self.do_warm_step(step, id).await
            } else {
                self.do_step(step, id).await
            };
            let ms = t.elapsed().as_millis() as i64;
            match result {
                Ok(()) => {
                    self.event(&row, "step", Some(step), "succeeded", step.label().into(), Some(ms)).await;
                    done.push(step);
                }
                Err(err) => {
                    self.event(&row, "step", Some(step), "failed", describe(&err), Some(ms)).await;
                    failure = Some((step, err));
                    break;
                }
            }
        }

        match failure {
            None => {
                let total = started.elapsed().as_millis() as i64;
                if let Some(row) = self
                    .update_row(id, |am| {
                        am.state = Set(HostingState::Running.as_str().into());
                        am.state_reason = Set(None);
                        am.operation = Set(None);
                        am.running_since = Set(Some(now_ms()));
                    })
                    .await?
                {
                    self.event(&row, "state", None, "running", format!("Site is live ({total} ms)"), Some(total))
                        .await;
                }
                if warm {
                    // The restored clock is behind; fix it now that the site is live.
                    let vm = self.inner.vm.clone();
                    tokio::spawn(async move {
                        if let Err(err) = vm.agent_sync_clock(id).await {
                            tracing::warn!(hosting_id = id, %err, "could not set the guest clock");
                        }
                    });
                }
            }
            Some((step, err)) => {
                let undo_errors = self.unwind(&row, &done).await;
                let mut reason = format!("{} failed: {}", step.label(), describe(&err));
                if undo_errors.is_empty() {
                    reason.push_str(". Everything created so far was removed.");
                } else {
                    reason.push_str(&format!(
                        ". Cleanup is incomplete ({}); it will be retried automatically.",
                        undo_errors.join("; ")
                    ));
                }
                if let Some(row) = self
                    .update_row(id, |am| {
                        am.state = Set(HostingState::Failed.as_str().into());
                        am.state_reason = Set(Some(reason.clone()));
                        am.operation = Set(None);
                        am.http_port = Set(None);
                        am.ssh_port = Set(None);
                        am.running_since = Set(None);
                    })
                    .await?
                {
                    self.event(&row, "state", None, "failed", reason, None).await;
                }
                // A younger site of this user may have been routed without `/{user_id}/`
                // while this one came first.
                self.reroute_user_path(row.user_id).await;
            }
        }
        Ok(())
    }

    /// Undoes `done` in reverse order. Returns the undo errors (empty = clean slate).
    pub(super) async fn unwind(&self, row: &hosting::Model, done: &[Step]) -> Vec<String> {
        let mut errors = Vec::new();
        for step in done.iter().rev() {
            let t = Instant::now();
            match self.undo_step(*step, row.id).await {
                Ok(()) => {
                    self.event(row, "undo", Some(*step), "undone", format!("Undid: {}", step.label()), Some(t.elapsed().as_millis() as i64))
                        .await
                }
                Err(err) => {
                    let msg = format!("could not undo {}: {}", step.as_str(), describe(&err));
                    self.event(row, "undo", Some(*step), "failed", msg.clone(), None).await;
                    errors.push(msg);
                }
            }
        }
        errors
    }

    pub(super) async fn load(&self, id: i32) -> Result<hosting::Model> {
        use sea_orm::EntityTrait;
        hosting::Entity::find_by_id(id)
            .one(&self.inner.db)
            .await?
            .ok_or(Error::NotFound("hosting"))
    }

    pub(super) fn vm_spec(&self, row: &hosting::Model) -> Result<VmSpec> {
        let plan = self
            .inner
            .cfg
            .plan(&row.plan)
            .ok_or_else(|| Error::internal(format!("plan '{}' is no longer configured", row.plan)))?;
        let (Some(http), Some(ssh)) = (row.http_port, row.ssh_port) else {
            return Err(Error::internal("ports are not allocated"));
        };
        Ok(VmSpec {
            hosting_id: row.id,
            vcpus: plan.vcpus,
            memory_mib: plan.memory_mib,
            disk_gib: plan.disk_gib,
            http_port: http as u16,
            ssh_port: ssh as u16,
        })
    }

    /// The route of a hosting; it also serves `/{user_id}/` when it is the user's first live one.
    pub(super) async fn site_route(&self, row: &hosting::Model) -> Result<SiteRoute> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        let first = hosting::Entity::find()
            .filter(hosting::Column::UserId.eq(row.user_id))
            .filter(hosting::Column::State.is_not_in([HostingState::Failed.as_str(), HostingState::Deleting.as_str()]))
            .order_by_asc(hosting::Column::Id)
            .one(&self.inner.db)
            .await?;
        let http = row.http_port.ok_or_else(|| Error::internal("ports are not allocated"))?;
        Ok(SiteRoute {
            hosting_id: row.id,
            slug: row.slug.clone(),
            user_id: row.user_id,
            serve_user_path: first.map(|f| f.id) == Some(row.id),
            http_port: http as u16,
        })
    }

    pub(super) fn seed(&self, row: &hosting::Model) -> Result<SeedSpec> {
        let keys: Vec<String> = serde_json::from_str(&row.ssh_keys).map_err(Error::internal)?;
        Ok(SeedSpec {
            hostname: row.slug.clone(),
            user: self.inner.cfg.guest_user.clone(),
            authorized_keys: keys,
            index_html: welcome_page(&row.slug, &self.inner.cfg.guest_user),
        })
    }

    pub(super) async fn do_step(&self, step: Step, id: i32) -> Result<()> {
        let vm = &self.inner.vm;
        match step {
            Step::AllocatePorts => {
                let cfg = &self.inner.cfg;
                let bind = cfg.forward_bind;
                let db = &self.inner.db;
                let node = self.inner.node_id;
                let http = ports::lease(db, node, id, "http", &PortRange { base: cfg.http_port_base, len: cfg.port_range_len }, bind).await?;
                let ssh = ports::lease(db, node, id, "ssh", &PortRange { base: cfg.ssh_port_base, len: cfg.port_range_len }, bind).await?;
                self.update_row(id, |am| {
                    am.http_port = Set(Some(http as i32));
                    am.ssh_port = Set(Some(ssh as i32));
                })
                .await?;
                Ok(())
            }
            Step::CreateDisk => {
                let row = self.load(id).await?;
                Ok(vm.create_disk(&self.vm_spec(&row)?).await?)
            }
            Step::WriteSeed => {
                let row = self.load(id).await?;
                Ok(vm.write_seed(id, &self.seed(&row)?).await?)
            }
            Step::DefineDomain => {
                let row = self.load(id).await?;
                Ok(vm.define(&self.vm_spec(&row)?).await?)
            }
            Step::StartVm => Ok(vm.start(id).await?),
            Step::WaitReady => {
                let row = self.load(id).await?;
                self.wait_ready(&row).await
            }
            Step::AddRoute => {
                let row = self.load(id).await?;
                let route = self.site_route(&row).await?;
                self.inner.proxy.add_route(&route).await?;
                if !self.inner.faults.skip_ready_probe() {
                    // The VM answered on its port; make sure it also answers through nginx.
                    self.inner.proxy.check_route(&row.slug, Duration::from_secs(15)).await?;
                }
                Ok(())
            }
        }
    }

    pub(super) async fn wait_ready(&self, row: &hosting::Model) -> Result<()> {
        let vm = &self.inner.vm;
        if self.inner.faults.skip_ready_probe() {
            return match vm.state(row.id).await? {
                VmState::Running => Ok(()),
                other => Err(VmError::NotRunning(other).into()),
            };
        }
        let spec = self.vm_spec(row)?;
        let timeout = Duration::from_secs(self.inner.cfg.ready_timeout_secs);
        Ok(vm.wait_ready(spec.http_port, spec.ssh_port, timeout).await?)
    }

    pub(super) async fn undo_step(&self, step: Step, id: i32) -> Result<()> {
        let vm = &self.inner.vm;
        match step {
            Step::AllocatePorts => {
                ports::release_all(&self.inner.db, id).await?;
                self.update_row(id, |am| {
                    am.http_port = Set(None);
                    am.ssh_port = Set(None);
                })
                .await?;
                Ok(())
            }
            Step::CreateDisk => Ok(vm.remove_files(id).await?),
            Step::WriteSeed => {
                let seed = vm.vm_dir(id).join("seed.iso");
                match tokio::fs::remove_file(&seed).await {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(source) => Err(VmError::Io { what: "removing", path: seed, source }.into()),
                }
            }
            Step::DefineDomain => Ok(vm.undefine(id).await?),
            Step::StartVm => Ok(vm.destroy(id).await?),
            Step::WaitReady => Ok(()),
            Step::AddRoute => {
                if self.inner.proxy.site_file(id).exists() {
                    self.inner.proxy.remove_route(id).await?;
                }
                Ok(())
            }
        }
    }

    /// Removes whatever a hosting may hold, whatever its progress: every undo, in reverse.
    pub(super) async fn scrub(&self, row: &hosting::Model) -> Vec<String> {
        let mut errors = Vec::new();
        for step in Step::ALL.iter().rev() {
            if let Err(err) = self.undo_step(*step, row.id).await {
                errors.push(format!("{}: {}", step.as_str(), describe(&err)));
            }
        }
        errors
    }
}

/// A user-facing description of an error (internal details are fine here: the owner sees
/// their own hosting's failure, and it names the step).
pub(super) fn describe(err: &Error) -> String {
    err.to_string()
}

/// The page a new site shows until its owner uploads their own. `slug` is validated
/// ([a-z0-9-]), `user` comes from configuration; both are escaped anyway.
fn welcome_page(slug: &str, user: &str) -> String {
    let slug = crate::escape::markup(slug);
    let user = crate::escape::markup(user);
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{slug} is live</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1e293b}}code{{background:#f1f5f9;padding:.1rem .3rem;border-radius:.25rem}}</style>
</head><body>
<h1>Welcome to {slug}</h1>
<p data-site="{slug}">This site runs in its own virtual machine, hosted by vm-webhoster.</p>
<p>Replace this page: upload files into <code>/var/www/html</code> over SFTP as <code>{user}</code>.</p>
</body></html>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welcome_page_names_the_site_and_escapes_markup() {
        let page = welcome_page("my-site", "ubuntu");
        assert!(page.contains("Welcome to my-site"));
        assert!(page.contains("data-site=\"my-site\""));
        let hostile = welcome_page("<script>", "a\"b");
        assert!(!hostile.contains("<script>"));
        assert!(hostile.contains("&lt;script&gt;"));
    }
}
