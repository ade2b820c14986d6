//! Provisioning as undoable steps (the saga): the units of an order run one by one, each
//! recorded as an event with its duration; a failing unit undoes the finished ones in reverse
//! order. Every undo is idempotent and keyed on the hosting id, so reconciliation can also run
//! them on a hosting whose progress is unknown (after a crash). See `units.rs` for the steps.
use std::time::{Duration, Instant};

use super::store::{HostingRow, Lease};
use super::units::{self, Cx, Unit};
use super::{EventKind, EventStatus, HostingService, HostingState};
use vmw_types::CreateKind;
use crate::proxy::SiteRoute;
use crate::vm::{CpuPriority, SeedSpec, VmSpec};
use crate::{Error, Result};

/// Where an order stopped: the step, its error, and the undos that failed (empty = clean).
pub(super) struct Failure {
    pub unit: &'static dyn Unit,
    pub error: Error,
    pub undo_errors: Vec<String>,
}

impl Failure {
    /// What the owner is told.
    pub fn reason(&self) -> String {
        let mut reason = format!("{} failed: {}", self.unit.step().label(), describe(&self.error));
        if self.undo_errors.is_empty() {
            reason.push_str(". Everything created so far was removed.");
        } else {
            reason.push_str(&format!(
                ". Cleanup is incomplete ({}); it will be retried automatically.",
                self.undo_errors.join("; ")
            ));
        }
        reason
    }
}

impl HostingService {
    /// A cold create, in the background once a provisioning slot is free; the lease lives as
    /// long as the task.
    pub(super) fn spawn_create(&self, lease: Lease) {
        let this = self.clone();
        tokio::spawn(async move {
            let permits = this.inner.permits.clone();
            let Ok(_permit) = permits.acquire_owned().await else { return };
            if let Err(err) = this.run_create(lease, CreateKind::Cold).await {
                tracing::error!(%err, "provisioning task failed");
            }
        });
    }

    /// A create that has no spare: a clone of the golden snapshot when there is one of the
    /// plan's size, else a cold boot.
    pub(super) fn spawn_fresh(&self, lease: Lease, plan: &str) {
        match self.inner.cfg.plan(plan) {
            Some(p) if self.can_clone(p) => self.spawn_clone(lease),
            _ => self.spawn_create(lease),
        }
    }

    /// A clone of the golden snapshot: no boot, so no provisioning slot is needed.
    pub(super) fn spawn_clone(&self, lease: Lease) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(err) = this.run_create(lease, CreateKind::Clone).await {
                tracing::error!(%err, "provisioning a clone of the golden snapshot failed");
            }
        });
    }

    /// A claimed warm spare: no boot, so no provisioning slot is needed.
    pub(super) fn spawn_claimed(&self, lease: Lease) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(err) = this.run_create(lease, CreateKind::Warm).await {
                tracing::error!(%err, "provisioning a claimed warm VM failed");
            }
        });
    }

    /// Runs a create's units, then marks the hosting running, or undoes what was done and
    /// marks it failed with the reason.
    async fn run_create(&self, lease: Lease, kind: CreateKind) -> Result<()> {
        let store = &self.inner.store;
        let order = units::order_of(kind);
        let restored = kind != CreateKind::Cold;
        let row = store.begin_provisioning(&lease, kind).await?;
        let how = match kind {
            CreateKind::Warm => "Provisioning from the warm pool (a VM made ahead of time)",
            CreateKind::Clone => "Provisioning a clone of the golden snapshot (no boot)",
            CreateKind::Cold => "Provisioning started (a full boot)",
        };
        self.event(&row, EventKind::State, None, EventStatus::Provisioning, how.into(), None).await;
        let started = Instant::now();
        match self.run_units(&row, &lease, order, true).await {
            Ok(()) => {
                crate::telemetry::record_create(kind, true, started.elapsed());
                let total = started.elapsed().as_millis() as i64;
                let row = store.finish(&lease, HostingState::Running, None).await?;
                let msg = format!("Site is live ({total} ms)");
                self.event(&row, EventKind::State, None, EventStatus::Running, msg, Some(total)).await;
                if restored {
                    self.sync_clock_later(row.id);
                }
            }
            Err(failure) => {
                crate::telemetry::record_create(kind, false, started.elapsed());
                let reason = failure.reason();
                let row = store.finish(&lease, HostingState::Failed, Some(reason.clone())).await?;
                self.event(&row, EventKind::State, None, EventStatus::Failed, reason, None).await;
                // A younger site of this user may have been routed without `/{user_id}/`
                // while this one came first.
                if let Some(user_id) = row.user_id {
                    self.reroute_user_path(user_id).await;
                }
            }
        }
        Ok(())
    }

    /// A restored VM's clock is behind by as long as it was saved: set it, off the path to a
    /// live site (slow under TCG).
    pub(super) fn sync_clock_later(&self, id: i32) {
        if self.inner.faults.skip_ready_probe() {
            return; // libvirt's test driver: no guest agent
        }
        let vm = self.inner.vm.clone();
        tokio::spawn(async move {
            // Not while the guest serves its first requests: under TCG the agent's clock write
            // (it sets the hardware clock too) takes the guest's only CPU for a moment.
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            if let Err(err) = vm.agent_sync_clock(id).await {
                tracing::warn!(hosting_id = id, %err, "could not set the guest clock");
            }
        });
    }

    /// Runs `order` on the leased hosting (with a step event each when `events`). On failure,
    /// undoes the finished units in reverse and says where it stopped.
    pub(super) async fn run_units(
        &self,
        row: &HostingRow,
        lease: &Lease,
        order: &'static [&'static dyn Unit],
        events: bool,
    ) -> std::result::Result<(), Failure> {
        let cx = Cx { svc: self, lease };
        let mut done: Vec<&'static dyn Unit> = Vec::new();
        // A user's create counts as users' work; a spare (no user yet) waits for it before each step.
        let spare = row.user_id.is_none();
        let _users_first = (!spare).then(|| self.inner.foreground.enter());
        for (i, &unit) in order.iter().enumerate() {
            let step = unit.step();
            if spare {
                let waited = self.inner.foreground.wait_idle(super::foreground::MAX_WAIT).await;
                if waited >= std::time::Duration::from_millis(50) {
                    tracing::debug!(hosting_id = row.id, step = step.as_str(), ms = waited.as_millis() as u64, "a spare's step waited for users' work");
                }
            }
            if lease.is_lost() {
                // Someone else holds the hosting now: no further step, and no rollback of ours.
                return Err(Failure { unit, error: Error::LeaseLost { hosting_id: lease.hosting_id() }, undo_errors: vec![] });
            }
            if events {
                self.event(row, EventKind::Step, Some(step), EventStatus::Started, step.label().into(), None).await;
            }
            let delay = self.inner.faults.step_delay();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let t = Instant::now();
            let result = if self.inner.faults.take(step) {
                Err(Error::Internal(format!("injected failure at step {step}")))
            } else {
                unit.run(&cx).await
            };
            let took = t.elapsed();
            crate::telemetry::record_step(step, result.is_ok(), took);
            let ms = Some(took.as_millis() as i64);
            match result {
                Ok(()) => {
                    if events {
                        self.event(row, EventKind::Step, Some(step), EventStatus::Succeeded, step.label().into(), ms).await;
                    }
                    done.push(unit);
                }
                Err(error) if matches!(error, Error::LeaseLost { .. }) || lease.is_lost() => {
                    return Err(Failure { unit, error, undo_errors: vec![] });
                }
                Err(error) => {
                    if events {
                        self.event(row, EventKind::Step, Some(step), EventStatus::Failed, describe(&error), ms).await;
                    }
                    // The failed unit may have made part of its thing: undo that too (it
                    // is no finished step, so no event), then the finished ones.
                    // Inherited units after this one were done too (with the spare).
                    let first = self.unwind(row, lease, &[unit], false, Vec::new()).await;
                    done.extend(order[i + 1..].iter().filter(|u| u.inherited()));
                    let undo_errors = self.unwind(row, lease, &done, events, first).await;
                    return Err(Failure { unit, error, undo_errors });
                }
            }
        }
        Ok(())
    }

    /// Undoes `done` in reverse order, after the undo errors `errors` so far. Returns all the
    /// undo errors (empty = clean slate).
    async fn unwind(
        &self,
        row: &HostingRow,
        lease: &Lease,
        done: &[&'static dyn Unit],
        events: bool,
        mut errors: Vec<String>,
    ) -> Vec<String> {
        let cx = Cx { svc: self, lease };
        let times = if self.inner.faults.undo_twice() { 2 } else { 1 };
        for unit in done.iter().rev() {
            let step = unit.step();
            if lease.is_lost() {
                errors.push("the hosting's lease passed to another process, which cleans up".to_owned());
                break;
            }
            if step == vmw_types::Step::AllocatePorts && !errors.is_empty() {
                // Something that uses the ports (a route, a VM) may still be there: keep them
                // leased until a later, clean scrub, so no one else is given them meanwhile.
                errors.push("the ports stay reserved until the rest is removed".to_owned());
                continue;
            }
            let t = Instant::now();
            let mut result = Ok(());
            for _ in 0..times {
                result = unit.undo(&cx).await;
                if result.is_err() {
                    break;
                }
            }
            match result {
                Ok(()) if events => {
                    let ms = Some(t.elapsed().as_millis() as i64);
                    let msg = format!("Undid: {}", step.label());
                    self.event(row, EventKind::Undo, Some(step), EventStatus::Undone, msg, ms).await;
                }
                Ok(()) => {}
                Err(err) => {
                    let msg = format!("could not undo {step}: {}", describe(&err));
                    if events {
                        self.event(row, EventKind::Undo, Some(step), EventStatus::Failed, msg.clone(), None).await;
                    }
                    errors.push(msg);
                }
            }
        }
        errors
    }

    /// The steps of a create of `kind`, in order, as its progress view lists them.
    pub fn create_steps(kind: CreateKind) -> Vec<vmw_types::Step> {
        units::order_of(kind).iter().map(|u| u.step()).collect()
    }

    /// Removes whatever a hosting may hold, whatever its progress: every undo, in reverse.
    pub(super) async fn scrub(&self, lease: &Lease) -> Vec<String> {
        let cx = Cx { svc: self, lease };
        let mut errors = Vec::new();
        // A sleeping site's SSH port is the app's own listener: it goes first.
        self.inner.ssh_wakers.release(lease.hosting_id()).await;
        if self.inner.events.fanout().enabled() {
            // The leader's listener, if it has one (the port may go to another site next).
            self.inner.events.fanout().send(super::fanout::Note::ReleaseSshWaker { hosting_id: lease.hosting_id() }).await;
        }
        for unit in units::EVERYTHING.iter().rev() {
            if lease.is_lost() {
                errors.push("the hosting's lease passed to another process".to_owned());
                break;
            }
            if unit.step() == vmw_types::Step::AllocatePorts && !errors.is_empty() {
                continue; // the ports stay reserved while something may still use them
            }
            if let Err(err) = unit.undo(&cx).await {
                errors.push(format!("{}: {}", unit.step(), describe(&err)));
            }
        }
        errors
    }

    pub(super) fn vm_spec(&self, row: &HostingRow) -> Result<VmSpec> {
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
            // A spare (no owner yet) is made in the background; a user's VM comes first.
            priority: if row.user_id.is_some() { CpuPriority::Foreground } else { CpuPriority::Background },
        })
    }

    /// The route of a hosting; it also serves `/{user_id}/` when it is the user's first live one.
    pub(super) async fn site_route(&self, row: &HostingRow) -> Result<SiteRoute> {
        let user_id = row.user_id.ok_or_else(|| Error::internal("a spare has no route"))?;
        let first = self
            .inner
            .store
            .first_for_user_in(
                user_id,
                &[
                    HostingState::Queued,
                    HostingState::Provisioning,
                    HostingState::Running,
                    HostingState::Stopped,
                    HostingState::Sleeping,
                ],
            )
            .await?;
        let http = row.http_port.ok_or_else(|| Error::internal("ports are not allocated"))?;
        Ok(SiteRoute {
            backend: self.on(row.node_id)?.inner.cfg.http_forward_bind,
            hosting_id: row.id,
            slug: row.slug.clone(),
            user_id,
            serve_user_path: first.map(|f| f.id) == Some(row.id),
            http_port: http as u16,
        })
    }

    pub(super) fn seed(&self, row: &HostingRow) -> Result<SeedSpec> {
        let keys: Vec<String> = serde_json::from_str(&row.ssh_keys).map_err(Error::internal)?;
        Ok(SeedSpec {
            hostname: row.slug.clone(),
            user: self.inner.cfg.guest_user.clone(),
            authorized_keys: keys,
            index_html: welcome_page(&row.slug, &self.inner.cfg.guest_user),
        })
    }

    pub(super) async fn wait_ready(&self, row: &HostingRow) -> Result<()> {
        self.wait_answers(row, true).await
    }

    /// The VM answers HTTP (any status: a redirect or a 404 at `/` is the tenant's page) and,
    /// with `ssh`, sends its SSH banner. A VM restored from its own saved state needs no SSH
    /// check: its sshd is the one that was saved running, and under TCG the check (sshd forks
    /// and re-executes itself per connection) took about half of a start's second.
    pub(super) async fn wait_answers(&self, row: &HostingRow, ssh: bool) -> Result<()> {
        if self.inner.faults.skip_ready_probe() {
            return units::running_is_ready(self, row.id).await;
        }
        let spec = self.vm_spec(row)?;
        let timeout = Duration::from_secs(self.inner.cfg.ready_timeout_secs);
        Ok(self.inner.vm.wait_ready(spec.http_port, ssh.then_some(spec.ssh_port), timeout).await?)
    }
}

/// A user-facing description of an error (the owner sees their own hosting's failure, and it
/// names the step). nginx's own words are not shown: its configuration and its reports are
/// shared by every site (a `[emerg]` line may quote another tenant's file), so they go to the
/// log and the owner reads a plain sentence. Its "not serving" hint is already this site's own.
pub(super) fn describe(err: &Error) -> String {
    use crate::proxy::ProxyError as P;
    match err {
        Error::Proxy(p @ (P::Rejected { .. } | P::Command { .. } | P::Spawn { .. } | P::DidNotStop { .. } | P::Io { .. })) => {
            tracing::error!(error = %p, detail = ?p, "nginx failed; the owner is shown a plain message");
            match p {
                P::Rejected { .. } => "the web server (nginx) refused the new configuration; the details are in the server's log".into(),
                _ => "the web server (nginx) could not apply the change; the details are in the server's log".into(),
            }
        }
        other => other.to_string(),
    }
}

/// The page a new site shows until its owner uploads their own. `slug` is validated
/// ([a-z0-9-]), `user` comes from configuration; both are escaped anyway.
pub(super) fn welcome_page(slug: &str, user: &str) -> String {
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
