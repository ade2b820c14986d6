//! Idle sites sleep on disk and wake on their first visit. This module is above sleep and
//! wake: a visit wakes a site, and a wake that must first make room puts another site to sleep
//! from here; the SSH waker's wake is built here and handed down to `sleep` as data.
//!
//! - A running site with no visit for `idle_sleep_secs` (no request through nginx, no SSH
//!   session open) is saved to disk like a stop, but lands in `sleeping`.
//! - HTTP: the sleeping VM's port refuses connections, so nginx passes the request to its
//!   backup, the app's waker, which calls `HostingService::visit`: one wake (the store's lease
//!   lets one operation begin), every request held until the site runs, then passed on.
//! - SSH: while a site sleeps the app listens on its SSH port (`ssh_waker`); a connection whose
//!   client sends an SSH identification line wakes it and is spliced through to the guest once
//!   it runs. Bare connects and scans wake nothing.
//! - Each client address wakes at most `wakes_per_client_per_minute` distinct sites a minute
//!   (`wake_limit`), over HTTP and SSH together.
//! - The owner (or an admin) can also sleep and wake a site by hand, and mark it "always on".
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{LOOK_PATIENCE, refused, sleep, wake};
use crate::hosting::cx::Cx;
use crate::hosting::events::next_state_event;
use crate::hosting::ssh_waker::{self, Wake};
use crate::store::{Lease, WakeRefusal};
use vmw_types::{EventKind, EventStatus, HostingState, Operation};
use crate::{Error, Result};

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

/// A visit to hosting `id` of this node (`cx` is its node's). A sleeping site is woken; a
/// site that is waking, starting or going to sleep is waited for. `Up` once the site runs;
/// `Down` when it is down for another reason (stopped, failed, gone) or not up within
/// `patience`. `who` is named in the wake's event; with `client`, a wake counts against that
/// address's limit of distinct sites woken per minute.
pub(crate) async fn visit(cx: &Cx, id: i32, patience: Duration, who: &'static str, client: Option<IpAddr>) -> Result<Visit> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut rx = cx.events().subscribe();
    let held = &cx.shared.restored;
    let mut restored = held.subscribe();
    loop {
        let Some(row) = cx.store.get(id).await? else { return Ok(Visit::Down) };
        if row.user_id.is_none() {
            return Ok(Visit::Down); // a spare is nobody's site
        }
        match (row.state, row.operation) {
            (HostingState::Running, None) => {
                let port = row.http_port.map(|p| SocketAddr::new(cx.cfg.http_forward_bind, p as u16));
                return Ok(port.map_or(Visit::Down, Visit::Up));
            }
            (HostingState::Sleeping, None) => {
                if let Some(c) = client
                    && !cx.shared.wake_limit.admit(c, id)
                {
                    crate::telemetry::record_wake_refused("client_limit");
                    tracing::info!(hosting_id = id, client = %c, "wake refused: this address woke too many sites this minute");
                    return Ok(Visit::TooManyWakes);
                }
                // In a task of its own: a visitor who gives up does not cancel the wake.
                let began = tokio::spawn(wake_for_visit(cx.clone(), id, who));
                match tokio::time::timeout_at(deadline, began).await {
                    Ok(Ok(Err(Error::NodeFull(_)))) | Err(_) => return Ok(Visit::Down),
                    _ => {}
                }
            }
            (_, Some(Operation::Wake | Operation::Start | Operation::Restart)) => {
                if let Some(vm) = held.get(id) {
                    return Ok(Visit::Up(vm));
                }
            }
            // Over in seconds, and the site runs (or sleeps: woken next) afterwards.
            (_, Some(Operation::Create | Operation::Sleep | Operation::Snapshot | Operation::RestoreSnapshot | Operation::Backup)) => {}
            _ => return Ok(Visit::Down),
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Ok(Visit::Down);
        }
        // The next state event of this hosting, a restore, or a look again in 100 ms.
        let next = async {
            tokio::select! {
                _ = next_state_event(&mut rx, id) => {}
                _ = restored.changed() => {}
            }
        };
        let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), next).await;
    }
}

/// Starts a wake if the site sleeps and nothing else runs on it (one wake however many
/// ask). Ok(true) once this call began it, Ok(false) when someone else did (or the site is
/// not asleep, or its node does not answer); NodeFull when its memory does not fit (the owner
/// is told why).
async fn wake_for_visit(cx: Cx, id: i32, who: &'static str) -> Result<bool> {
    // The site's own node wakes it, while it answers.
    if !matches!(cx.store.get(id).await, Ok(Some(_))) || !cx.up() {
        return Ok(false);
    }
    let lease = match begin_wake(&cx, id).await {
        Ok(lease) => lease,
        Err(Error::NodeFull(why)) => {
            if let Ok(row) = cx.store.require(id).await {
                let msg = format!("Could not wake up for {who}: {why}");
                cx.event(&row, EventKind::Action, None, EventStatus::Failed, msg, None).await;
            }
            return Err(Error::NodeFull(why));
        }
        Err(_) => return Ok(false),
    };
    if let Ok(row) = cx.store.require(id).await {
        let msg = format!("Waking up: {who} is waiting");
        cx.event(&row, EventKind::Action, None, EventStatus::Started, msg, None).await;
    }
    tokio::spawn(async move {
        if let Err(err) = wake::run_wake(&cx, lease, &format!("woken by {who}")).await {
            tracing::error!(hosting_id = id, %err, "wake failed");
        }
    });
    Ok(true)
}

/// Takes a sleeping site's lease for a wake once its memory fits on the node. A sleeping
/// site holds no memory (`store::holds_memory`), so a wake must find room: when the node's
/// memory is committed, the awake site with the oldest visit (a user's, not always on, no
/// operation running) is put to sleep first, up to `MAKE_ROOM_TRIES` of them. No such site:
/// `NodeFull` with the reason, and the host is never overcommitted.
pub(crate) async fn begin_wake(cx: &Cx, id: i32) -> Result<Lease> {
    const MAKE_ROOM_TRIES: usize = 4;
    let deadline = tokio::time::Instant::now() + LOOK_PATIENCE;
    let mut slept = 0;
    loop {
        match cx.store.begin_wake(id, &cx.capacity).await? {
            Ok((_, lease)) => return Ok(lease),
            Err(WakeRefusal::Other(r)) => {
                refused(Operation::Wake, r, deadline)?;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(WakeRefusal::NoRoom { victim: Some(v), .. }) if slept < MAKE_ROOM_TRIES => {
                slept += 1;
                if let Ok(Ok((row, lease))) = cx.store.begin(v, Operation::Sleep).await {
                    let msg = "Going to sleep: another site is waking and the server's memory is full".to_owned();
                    cx.event(&row, EventKind::Action, None, EventStatus::Started, msg, None).await;
                    let why = "Asleep: put to sleep to make room for a site being visited (it had the oldest visit); the next visit wakes it";
                    if let Err(err) = sleep_site(cx, lease, why.into()).await {
                        tracing::warn!(hosting_id = v, %err, "putting a site to sleep to make room failed");
                    }
                }
            }
            Err(WakeRefusal::NoRoom { why, .. }) => return Err(Error::NodeFull(why)),
        }
    }
}

/// Puts a site to sleep (`sleep::run_sleep`); once it sleeps, its SSH port wakes it.
pub(crate) async fn sleep_site(cx: &Cx, lease: Lease, why: String) -> Result<()> {
    let id = lease.hosting_id();
    if sleep::run_sleep(cx, lease, why).await? {
        open_ssh_waker(cx, id).await;
    }
    Ok(())
}

/// Listens on sleeping site `id`'s SSH port (this node's): an SSH client wakes it.
pub(crate) async fn open_ssh_waker(cx: &Cx, id: i32) {
    sleep::open_ssh_waker(cx, id, ssh_wake(cx.clone(), id)).await;
}

/// After a restart: every sleeping site's SSH port is ours again.
pub(crate) async fn open_all_ssh_wakers(cx: &Cx) {
    if let Ok(rows) = cx.store.on_node_in(&[HostingState::Sleeping]).await {
        for row in rows.into_iter().filter(|r| r.operation.is_none()) {
            open_ssh_waker(cx, row.id).await;
        }
    }
}

/// What an identified SSH connection to sleeping site `id` does: a visit from the client's
/// address (an operation running on the site, a snapshot of it asleep, is waited out, and the
/// per-client wake limit counts it). True once the site runs.
fn ssh_wake(cx: Cx, id: i32) -> Wake {
    std::sync::Arc::new(move |peer| {
        let cx = cx.clone();
        Box::pin(async move { matches!(visit(&cx, id, ssh_waker::HOLD_FOR, "an SSH connection", Some(peer)).await, Ok(Visit::Up(_))) })
    })
}
