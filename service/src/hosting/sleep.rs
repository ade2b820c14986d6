//! Idle sites sleep on disk and wake on their first visit.
//!
//! - A running site with no visit for `idle_sleep_secs` (no request through nginx, no SSH
//!   session open) is saved to disk like a stop, but lands in `sleeping`.
//! - HTTP: the sleeping VM's port refuses connections, so nginx passes the request to its
//!   backup, the app's waker, which calls [`HostingService::visit`]: one wake (the store's lease
//!   lets one operation begin), every request held until the site runs, then passed on.
//! - SSH: while a site sleeps the app listens on its SSH port (`ssh_waker`); a connection whose
//!   client sends an SSH identification line wakes it and is spliced through to the guest once
//!   it runs. Bare connects and scans wake nothing.
//! - Each client address wakes at most `wakes_per_client_per_minute` distinct sites a minute
//!   (`wake_limit`), over HTTP and SSH together.
//! - The owner (or an admin) can also sleep and wake a site by hand, and mark it "always on".
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::provision::describe;
use super::store::{Lease, WakeRefusal};
use super::{EventKind, EventStatus, HostingService, HostingState, HostingView, Operation, activity, ssh_waker};
use crate::accounts::Actor;
use crate::db::now_ms;
use crate::{Error, Result};

/// What a sleeping site's state reason says (the dashboard's badge reads it too).
pub const ASLEEP: &str = "Asleep: wakes on the next visit";

/// What a visit to a site gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visit {
    /// The site runs: its VM's HTTP forward.
    Up(SocketAddr),
    /// Down for another reason (stopped, failed, gone, no room), or not up within the patience.
    Down,
    /// The site sleeps and the client's address woke too many distinct sites this minute
    /// (`wakes_per_client_per_minute`): not woken.
    TooManyWakes,
}

impl HostingService {
    /// Makes the VM run with its forwards, from whatever it is (saved, shut off, paused): the
    /// SSH waker gives its port back first (a boot binds the forwards at once, a restore only
    /// when `ensure_forwards` adds them), then waits until it answers. Once a restore has
    /// returned, held visitors go to the VM while the forwards are added and the probe waits
    /// (`restored`).
    pub(super) async fn bring_up(&self, id: i32) -> Result<()> {
        let _users_first = self.inner.foreground.enter();
        let t = Instant::now();
        let (restored, spec, row) = self.start_vm_only(id).await?;
        let started_ms = t.elapsed().as_millis() as u64;
        if restored {
            self.inner.restored.publish(id, SocketAddr::new(self.inner.cfg.http_forward_bind, spec.http_port));
        }
        // A boot binds both forwards at once; a restore serves HTTP before its SSH forward.
        let (f, a) = tokio::join!(self.add_forwards(id, &spec), self.wait_answers(&row, !restored));
        let up = f.and(a);
        self.inner.restored.clear(id);
        up?;
        tracing::debug!(hosting_id = id, restored, started_ms, answered_ms = t.elapsed().as_millis() as u64, "brought up");
        Ok(())
    }

    /// Starts (restores, boots or resumes) the VM and gives it its forwards, without waiting.
    /// Ok(true) when it was restored from a saved state.
    pub(super) async fn start_vm(&self, id: i32) -> Result<bool> {
        let (restored, spec, _) = self.start_vm_only(id).await?;
        self.add_forwards(id, &spec).await?;
        Ok(restored)
    }

    /// The forwards a restored VM lacks (libvirt's test driver has none).
    async fn add_forwards(&self, id: i32, spec: &crate::vm::VmSpec) -> Result<()> {
        if !self.inner.faults.skip_ready_probe() {
            self.inner.vm.ensure_forwards(id, spec.http_port, spec.ssh_port).await?;
        }
        Ok(())
    }

    /// [`Self::start_vm`] without the forwards a restore lacks; also its spec and row.
    async fn start_vm_only(&self, id: i32) -> Result<(bool, crate::vm::VmSpec, super::HostingRow)> {
        let row = self.inner.store.require(id).await?;
        let spec = self.vm_spec(&row)?;
        let restoring = self.inner.vm.has_managed_save(id).await.unwrap_or(false);
        if !restoring {
            self.release_ssh_waker(&row, true).await;
        }
        self.inner.vm.start(id, spec.priority, spec.http_port).await?;
        if restoring {
            self.release_ssh_waker(&row, true).await;
        }
        Ok((restoring, spec, row))
    }

    /// Saves the VM to disk; the site sleeps until its next visit.
    pub(super) async fn run_sleep(&self, lease: Lease, why: String) -> Result<()> {
        let t = Instant::now();
        let id = lease.hosting_id();
        match self.inner.vm.sleep_save(id).await {
            Ok(sizes) => {
                if let Some(c) = sizes {
                    tracing::debug!(hosting_id = id, raw = c.raw_bytes, compressed = c.compressed_bytes, "saved memory compressed");
                }
                self.finish(lease, HostingState::Sleeping, Some(ASLEEP.into()), why, t).await?;
                crate::telemetry::record_sleep(true, t.elapsed().as_secs_f64());
                self.open_ssh_waker(id).await;
                Ok(())
            }
            Err(err) => {
                crate::telemetry::record_sleep(false, t.elapsed().as_secs_f64());
                let reason = format!("Sleep failed: {}", describe(&err.into()));
                self.finish(lease, HostingState::Running, Some(reason.clone()), reason, t).await
            }
        }
    }

    /// Restores a sleeping site. A restore that fails leaves it stopped with the reason (its
    /// saved state is kept: start tries again), not asleep: visitors would only wake it again.
    pub(super) async fn run_wake(&self, lease: Lease, why: &str) -> Result<()> {
        let t = Instant::now();
        let id = lease.hosting_id();
        match self.bring_up(id).await {
            Ok(()) => {
                let _ = self.inner.store.mark_active(id, now_ms()).await;
                self.sync_clock_later(id);
                crate::telemetry::record_wake(true, t.elapsed().as_secs_f64());
                let msg = format!("Awake: {why} (restored from disk in {:.1} s)", t.elapsed().as_secs_f64());
                self.finish(lease, HostingState::Running, None, msg, t).await
            }
            Err(err) => {
                crate::telemetry::record_wake(false, t.elapsed().as_secs_f64());
                let _ = self.inner.vm.destroy(id).await;
                let reason = format!("Wake failed: {}; press start to try again", describe(&err));
                self.finish(lease, HostingState::Stopped, Some(reason.clone()), reason, t).await
            }
        }
    }

    /// Gives a site's SSH port back: this replica's listener, and (PostgreSQL) the leader's,
    /// which listens on sleeping sites' ports. With `wait`, and the site asleep, returns once
    /// the port is free (at most 3 s): its VM's forward is about to bind it.
    pub(super) async fn release_ssh_waker(&self, row: &super::HostingRow, wait: bool) {
        self.inner.ssh_wakers.release(row.id).await;
        let fanout = self.inner.events.fanout();
        if !fanout.enabled() || row.state != HostingState::Sleeping {
            return;
        }
        let Some(port) = row.ssh_port else { return };
        let addr = SocketAddr::new(self.inner.cfg.forward_bind, port as u16);
        let free = || std::net::TcpListener::bind(addr).is_ok();
        if wait && free() {
            return;
        }
        fanout.send(super::fanout::Note::ReleaseSshWaker { hosting_id: row.id }).await;
        let until = Instant::now() + Duration::from_secs(3);
        while wait && !free() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Listens on a sleeping site's SSH port; a connection that identifies itself as SSH wakes
    /// it (`ssh_waker`). Only the leader listens: another replica asks it to.
    pub(super) async fn open_ssh_waker(&self, id: i32) {
        if self.inner.events.fanout().enabled() && !self.is_leader() {
            self.inner.events.fanout().send(super::fanout::Note::OpenSshWaker { hosting_id: id }).await;
            return;
        }
        let Ok(Some(row)) = self.inner.store.get(id).await else { return };
        let Some(port) = row.ssh_port else { return };
        if row.state != HostingState::Sleeping || self.inner.faults.skip_ready_probe() {
            return;
        }
        let addr = SocketAddr::new(self.inner.cfg.forward_bind, port as u16);
        let bounds = ssh_waker::Bounds {
            per_site: self.inner.cfg.ssh_waker_held_per_site.max(1),
            per_source: self.inner.cfg.ssh_waker_held_per_source.max(1),
            ident_wait: ssh_waker::IDENT_WAIT,
        };
        let this = self.clone();
        // As a visit from the client's address: an operation running on the site (a snapshot of
        // it asleep) is waited out, and the per-client wake limit counts it.
        let wake: ssh_waker::Wake = std::sync::Arc::new(move |peer| {
            let this = this.clone();
            Box::pin(async move {
                matches!(this.visit_as(id, ssh_waker::HOLD_FOR, "an SSH connection", Some(peer)).await, Ok(Visit::Up(_)))
            })
        });
        let opened = self.inner.ssh_wakers.open(id, addr, bounds, wake);
        if let Err(err) = opened {
            tracing::warn!(hosting_id = id, %addr, %err, "cannot listen on a sleeping site's SSH port: SSH will not wake it");
        }
    }

    /// Takes a sleeping site's lease for a wake once its memory fits on the node. A sleeping
    /// site holds no memory (`store::holds_memory`), so a wake must find room: when the node's
    /// memory is committed, the awake site with the oldest visit (a user's, not always on, no
    /// operation running) is put to sleep first, up to `MAKE_ROOM_TRIES` of them. No such site:
    /// `NodeFull` with the reason, and the host is never overcommitted.
    pub(super) async fn begin_wake(&self, id: i32) -> Result<Lease> {
        const MAKE_ROOM_TRIES: usize = 4;
        let deadline = tokio::time::Instant::now() + super::ops::LOOK_PATIENCE;
        let mut slept = 0;
        loop {
            match self.inner.store.begin_wake(id, &self.inner.capacity).await? {
                Ok((_, lease)) => return Ok(lease),
                Err(WakeRefusal::Other(r)) => {
                    super::ops::refused(Operation::Wake, r, deadline)?;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(WakeRefusal::NoRoom { victim: Some(v), .. }) if slept < MAKE_ROOM_TRIES => {
                    slept += 1;
                    if let Ok(Ok((row, lease))) = self.inner.store.begin(v, Operation::Sleep).await {
                        let msg = "Going to sleep: another site is waking and the server's memory is full".to_owned();
                        self.event(&row, EventKind::Action, None, EventStatus::Started, msg, None).await;
                        let why = "Asleep: put to sleep to make room for a site being visited (it had the oldest visit); the next visit wakes it";
                        if let Err(err) = self.run_sleep(lease, why.into()).await {
                            tracing::warn!(hosting_id = v, %err, "putting a site to sleep to make room failed");
                        }
                    }
                }
                Err(WakeRefusal::NoRoom { why, .. }) => return Err(Error::NodeFull(why)),
            }
        }
    }

    /// [`Self::wake_for_visit`] as a named future type: a wake may put another site to sleep,
    /// which opens its SSH waker, which may wake: the cycle needs one type that is not inferred.
    fn wake_for_visit_boxed(&self, id: i32, who: &'static str) -> std::pin::Pin<Box<dyn Future<Output = Result<bool>> + Send>> {
        let this = self.clone();
        Box::pin(async move { this.wake_for_visit(id, who).await })
    }

    /// Starts a wake if the site sleeps and nothing else runs on it (one wake however many
    /// ask). Ok(true) once this call began it, Ok(false) when someone else did (or the site is
    /// not asleep); NodeFull when its memory does not fit (the owner is told why).
    async fn wake_for_visit(&self, id: i32, who: &'static str) -> Result<bool> {
        // The site's own node wakes it.
        let node = match self.inner.store.get(id).await {
            Ok(Some(row)) => row.node_id,
            _ => return Ok(false),
        };
        match self.on_live(node) {
            Ok(svc) if svc.node_id() != self.node_id() => return svc.wake_for_visit_boxed(id, who).await,
            Ok(_) => {}
            Err(_) => return Ok(false),
        }
        let lease = match self.begin_wake(id).await {
            Ok(lease) => lease,
            Err(Error::NodeFull(why)) => {
                if let Ok(row) = self.inner.store.require(id).await {
                    let msg = format!("Could not wake up for {who}: {why}");
                    self.event(&row, EventKind::Action, None, EventStatus::Failed, msg, None).await;
                }
                return Err(Error::NodeFull(why));
            }
            Err(_) => return Ok(false),
        };
        if let Ok(row) = self.inner.store.require(id).await {
            let msg = format!("Waking up: {who} is waiting");
            self.event(&row, EventKind::Action, None, EventStatus::Started, msg, None).await;
        }
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(err) = this.run_wake(lease, &format!("woken by {who}")).await {
                tracing::error!(hosting_id = id, %err, "wake failed");
            }
        });
        Ok(true)
    }

    /// A request nginx could not pass to the site's VM (its port refused it) asks here. A
    /// sleeping site is woken; a site that is waking, starting or going to sleep is waited for.
    /// Some(the VM's HTTP forward) once the site runs; None when it is down for another reason
    /// (stopped, failed, gone) or not up within `patience`: the visitor gets the site-down page.
    /// No per-client wake limit: see [`Self::visit_from`].
    pub async fn visit(&self, id: i32, patience: Duration) -> Result<Option<SocketAddr>> {
        Ok(match self.visit_as(id, patience, "a visitor", None).await? {
            Visit::Up(vm) => Some(vm),
            Visit::Down | Visit::TooManyWakes => None,
        })
    }

    /// [`Self::visit`] by a visitor from `client`: a wake counts against the address's limit of
    /// distinct sites woken per minute, and over it the site is not woken.
    pub async fn visit_from(&self, id: i32, patience: Duration, client: IpAddr) -> Result<Visit> {
        self.visit_as(id, patience, "a visitor", Some(client)).await
    }

    /// [`Self::visit`], with who is waiting named in the wake's event, and the client's address
    /// when its wakes are limited.
    pub(super) async fn visit_as(&self, id: i32, patience: Duration, who: &'static str, client: Option<IpAddr>) -> Result<Visit> {
        let deadline = tokio::time::Instant::now() + patience;
        let mut rx = self.inner.events.subscribe();
        let mut restored = self.inner.restored.subscribe();
        loop {
            let Some(row) = self.inner.store.get(id).await? else { return Ok(Visit::Down) };
            if row.user_id.is_none() {
                return Ok(Visit::Down); // a spare is nobody's site
            }
            match (row.state, row.operation) {
                (HostingState::Running, None) => {
                    let Ok(node) = self.on(row.node_id) else { return Ok(Visit::Down) };
                    let port = row.http_port.map(|p| SocketAddr::new(node.inner.cfg.http_forward_bind, p as u16));
                    return Ok(port.map_or(Visit::Down, Visit::Up));
                }
                (HostingState::Sleeping, None) => {
                    if let Some(c) = client
                        && !self.inner.wake_limit.admit(c, id)
                    {
                        crate::telemetry::record_wake_refused("client_limit");
                        tracing::info!(hosting_id = id, client = %c, "wake refused: this address woke too many sites this minute");
                        return Ok(Visit::TooManyWakes);
                    }
                    // In a task of its own: a visitor who gives up does not cancel the wake.
                    let this = self.clone();
                    let began = tokio::spawn(this.wake_for_visit_boxed(id, who));
                    match tokio::time::timeout_at(deadline, began).await {
                        Ok(Ok(Err(Error::NodeFull(_)))) | Err(_) => return Ok(Visit::Down),
                        _ => {}
                    }
                }
                (_, Some(Operation::Wake | Operation::Start | Operation::Restart)) => {
                    if let Some(vm) = self.inner.restored.get(id) {
                        return Ok(Visit::Up(vm));
                    }
                }
                // Over in seconds, and the site runs (or sleeps: woken next) afterwards.
                (_, Some(Operation::Create | Operation::Sleep | Operation::Snapshot | Operation::RestoreSnapshot)) => {}
                _ => return Ok(Visit::Down),
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(Visit::Down);
            }
            // The next state event of this hosting, a restore, or a look again in 100 ms.
            let next = async {
                tokio::select! {
                    _ = super::next_state_event(&mut rx, id) => {}
                    _ = restored.changed() => {}
                }
            };
            let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), next).await;
        }
    }

    /// The owner's "always on": the site never goes to sleep by itself. At most
    /// `always_on_per_user` of a user's sites (admins: no limit).
    pub async fn set_always_on(&self, actor: &Actor, id: i32, on: bool) -> Result<HostingView> {
        let row = self.inner.store.owned(actor, id).await?;
        if on && !row.always_on && !actor.is_admin {
            let limit = self.inner.cfg.always_on_per_user;
            let row = self.inner.store.set_always_on_within(id, row.user_id.unwrap_or(actor.user_id), limit).await?;
            let Some(row) = row else {
                return Err(Error::conflict(
                    Some("always_on"),
                    format!("at most {limit} of your sites may be always on; turn it off on another one first"),
                ));
            };
            return self.view(&row).await;
        }
        let row = self.inner.store.set_always_on(id, on).await?;
        self.view(&row).await
    }

    /// Puts running sites with no visit for the idle time to sleep (and notes visits seen);
    /// the background task calls it every `idle_check_secs`. Returns how many went to sleep.
    pub async fn sleep_idle_sites(&self) -> Result<usize> {
        let idle_ms = (self.inner.cfg.idle_sleep_secs as i64).saturating_mul(1000);
        if idle_ms == 0 {
            return Ok(0);
        }
        let now = now_ms();
        let ssh_open = activity::ssh_session_ports(self.inner.cfg.forward_bind).await;
        let mut slept = 0;
        for row in self.inner.store.on_node_in(&[HostingState::Running]).await? {
            if row.user_id.is_none() || row.operation.is_some() || row.always_on {
                continue;
            }
            let http = activity::modified_ms(&self.inner.proxy.visits_file(row.id)).await;
            let ssh = row.ssh_port.filter(|p| ssh_open.contains(&(*p as u16))).map(|_| now);
            let seen = http.max(ssh);
            if seen > row.last_active_at {
                let _ = self.inner.store.mark_active(row.id, seen.unwrap_or(now)).await;
            }
            let last = seen.max(row.last_active_at).max(row.running_since).unwrap_or(now);
            if now - last < idle_ms {
                continue;
            }
            let Ok(Ok((_, lease))) = self.inner.store.begin(row.id, Operation::Sleep).await else { continue };
            let mins = self.inner.cfg.idle_sleep_secs.div_ceil(60);
            let why = format!("Asleep after {mins} min without visits: the next visit wakes it");
            if let Err(err) = self.run_sleep(lease, why).await {
                tracing::warn!(hosting_id = row.id, %err, "putting an idle site to sleep failed");
            } else {
                slept += 1;
            }
        }
        Ok(slept)
    }

    /// The periodic idle check (a background task).
    pub(super) fn spawn_idle_sleeper(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let every = Duration::from_secs(self.inner.cfg.idle_check_secs.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                match this.sleep_idle_sites().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(sites = n, "idle sites went to sleep"),
                    Err(err) => tracing::warn!(%err, "the idle check failed"),
                }
            }
        })
    }

    /// After a restart: every sleeping site's SSH port is ours again.
    pub(super) async fn open_all_ssh_wakers(&self) {
        if let Ok(rows) = self.inner.store.on_node_in(&[HostingState::Sleeping]).await {
            for row in rows.into_iter().filter(|r| r.operation.is_none()) {
                self.open_ssh_waker(row.id).await;
            }
        }
    }
}
