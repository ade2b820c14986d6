//! Who runs the background work: every replica samples its node's VMs and listens to the other
//! replicas (PostgreSQL); the leader (one replica, under a PostgreSQL advisory lock; on SQLite
//! the only process) also reconciles, refills the warm pool, puts idle sites to sleep, listens
//! on sleeping sites' SSH ports, keeps house, and checks the nodes' health, on this node and on
//! every added node. When the leader dies another replica takes over (`succession`).
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::housekeeping::{refresh_routes, spawn_housekeeping};
use super::node::{node_tasks, start_added_node};
use super::reconcile::reconcile;
use super::sampler::spawn_sampler;
use crate::accounts::Accounts;
use crate::hosting::cluster::Cluster;
use crate::hosting::cluster::health::check_nodes;
use crate::hosting::fanout::Note;
use crate::hosting::lifecycle::visit::{open_all_ssh_wakers, open_ssh_waker};
use crate::Result;

type Tasks = Vec<tokio::task::JoinHandle<()>>;

/// Starts the background work. Every replica samples its node's VMs (its own charts) and
/// listens to the other replicas (PostgreSQL); the leader of the node (one replica, under a
/// PostgreSQL advisory lock; on SQLite the only process) also reconciles (once now, before
/// it serves, then periodically), refills the warm pool, puts idle sites to sleep, listens
/// on sleeping sites' SSH ports and rotates nginx's logs, on this node and on every added
/// node (each its own reconciliation, pool and sleep), and checks the nodes' health. When the leader dies another
/// replica takes over within [`crate::leader::RETRY`] or so, starting with a reconciliation.
/// The tasks stop when the returned handles are aborted (or the runtime ends).
pub(crate) async fn start_background(cluster: &Arc<Cluster>, accounts: &Accounts) -> Result<Tasks> {
    let home = cluster.home();
    let mut out = vec![spawn_sampler(home)];
    if let Some(mut notes) = home.events().fanout().listen().await? {
        let cluster = cluster.clone();
        out.push(tokio::spawn(async move {
            while let Some(note) = notes.recv().await {
                on_note(&cluster, note).await;
            }
        }));
    }
    let me = home.store.replica();
    let leadership = crate::leader::Leadership::campaign(home.store.db(), crate::leader::node_key(home.node_id()), &me);
    let leading = &home.shared.leading;
    // The first attempt answers at once: a replica that leads reconciles before it serves.
    let first = if leadership.settled(Duration::from_secs(5)).await {
        leading.store(true, Ordering::Relaxed);
        Some(lead(cluster, accounts).await?)
    } else {
        leading.store(false, Ordering::Relaxed);
        tracing::info!(replica = %me, "another replica leads: this one serves, and takes over if the leader goes");
        None
    };
    out.push(spawn_succession(cluster.clone(), accounts.clone(), leadership, first));
    Ok(out)
}

/// Follows the leadership: starts the leader's work when this replica comes to lead, stops
/// it (and gives back the SSH ports) when it no longer does.
fn spawn_succession(cluster: Arc<Cluster>, accounts: Accounts, leadership: crate::leader::Leadership, first: Option<Tasks>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let shared = cluster.home().shared.clone();
        let mut rx = leadership.watch();
        let _leadership = leadership;
        let mut work = AbortOnDrop(first.unwrap_or_default());
        loop {
            let leads = *rx.borrow_and_update() == Some(true);
            if leads && work.0.is_empty() {
                shared.leading.store(true, Ordering::Relaxed);
                match lead(&cluster, &accounts).await {
                    Ok(tasks) => work.0 = tasks,
                    Err(err) => {
                        tracing::warn!(%err, "could not start the leader's work; trying again in 5 s");
                        let _ = tokio::time::timeout(Duration::from_secs(5), rx.changed()).await;
                        continue;
                    }
                }
            } else if !leads && !work.0.is_empty() {
                shared.leading.store(false, Ordering::Relaxed);
                for t in work.0.drain(..) {
                    t.abort();
                }
                shared.ssh_wakers.release_all().await;
                tracing::warn!("no longer the leader: the background work stopped here");
            } else if !leads {
                shared.leading.store(false, Ordering::Relaxed);
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    })
}

/// The leader's work: a reconciliation now, then its periodic tasks.
async fn lead(cluster: &Arc<Cluster>, accounts: &Accounts) -> Result<Tasks> {
    let home = cluster.home();
    let report = reconcile(home).await?;
    tracing::info!(?report, "start-up reconciliation done");
    refresh_routes(home).await;
    open_all_ssh_wakers(home).await;
    let mut tasks = node_tasks(home);
    tasks.push(spawn_housekeeping(home, accounts));
    tasks.push(super::certs::spawn_certs(home));
    tasks.push(super::state_backup::spawn_state_backups(home));
    tasks.push(crate::hosting::lifecycle::backups::scheduler::spawn_scheduler(cluster));
    tasks.extend(start_nodes_background(cluster).await);
    Ok(tasks)
}

/// Starts the background work of every added node (reconciliation, pool, stats, sleep),
/// and the health checks of all nodes. Later additions start theirs when added.
async fn start_nodes_background(cluster: &Arc<Cluster>) -> Tasks {
    cluster.set_started();
    check_nodes(cluster).await;
    for cx in cluster.all() {
        if !cluster.is_home(cx.node_id()) {
            start_added_node(cluster, &cx).await;
        }
    }
    let cluster = cluster.clone();
    let every = Duration::from_secs(cluster.home().cfg.reconcile_interval_secs.clamp(1, 30));
    vec![tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            check_nodes(&cluster).await;
        }
    })]
}

/// Another replica's note.
async fn on_note(cluster: &Cluster, note: Note) {
    let home = cluster.home();
    match note {
        Note::Event { .. } | Note::EventId { .. } => home.events().deliver(&note).await,
        Note::OpenSshWaker { hosting_id } => {
            if !home.is_leader() {
                return;
            }
            // On the site's own node (its forward address, its wakes).
            let node = match home.store.get(hosting_id).await {
                Ok(Some(row)) => cluster.get(row.node_id).ok(),
                _ => None,
            };
            open_ssh_waker(node.as_ref().unwrap_or(home), hosting_id).await;
        }
        Note::ReleaseSshWaker { hosting_id } => home.shared.ssh_wakers.release(hosting_id).await,
    }
}

/// Background tasks that stop when their holder is dropped.
struct AbortOnDrop(Tasks);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}
