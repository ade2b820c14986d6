//! One leader among the app replicas on one database: the replica that runs the background work
//! (reconciliation, the warm pool, idle sleep, the SSH wakers) while every replica serves.
//!
//! On PostgreSQL the leader is whoever holds a session-level advisory lock
//! (`pg_try_advisory_lock(key)`) on a connection of its own, taken out of the pool. The lock
//! lives as long as that connection: a replica that dies (even by SIGKILL) closes its socket and
//! PostgreSQL releases the lock at once; the others try every [`RETRY`] and one of them leads
//! within about that long. The leader checks its connection every [`HEARTBEAT`]: a connection
//! that fails means the lock may be gone, and it steps down before trying again.
//! On SQLite there is one process: it leads at once.
use std::time::Duration;

use sea_orm::{DatabaseConnection, DbBackend};
use sea_orm::sqlx::{self, Connection as _};
use tokio::sync::watch;

/// How often a follower tries to take the lock.
pub const RETRY: Duration = Duration::from_secs(1);
/// How often the leader checks the connection that holds its lock.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// The advisory lock key of the leader of node `node_id` (one leader per node: its background
/// work is per node). The high half spells "vmw\0".
pub fn node_key(node_id: i32) -> i64 {
    (0x766d_7700_i64 << 32) | i64::from(node_id as u32)
}

/// A campaign for one lock, running in the background until dropped (dropping it gives the
/// lock back: its connection closes).
pub struct Leadership {
    rx: watch::Receiver<Option<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Leadership {
    /// Starts campaigning for `key`. `who` names this replica in the logs.
    pub fn campaign(db: &DatabaseConnection, key: i64, who: &str) -> Self {
        let (tx, rx) = watch::channel(None);
        let task = match db.get_database_backend() {
            DbBackend::Postgres => {
                let pool = db.get_postgres_connection_pool().clone();
                tokio::spawn(campaign_pg(pool, key, who.to_owned(), tx))
            }
            _ => {
                let _ = tx.send(Some(true));
                tokio::spawn(async move {
                    // Keeps the sender (and so the answer) alive.
                    let _tx = tx;
                    std::future::pending::<()>().await
                })
            }
        };
        Self { rx, task }
    }

    /// Whether this replica leads now.
    pub fn is_leader(&self) -> bool {
        *self.rx.borrow() == Some(true)
    }

    /// Changes of leadership: None until the first attempt answered, then whether it leads.
    pub fn watch(&self) -> watch::Receiver<Option<bool>> {
        self.rx.clone()
    }

    /// Waits until the first attempt answered (at most `timeout`); returns whether it leads.
    pub async fn settled(&self, timeout: Duration) -> bool {
        let mut rx = self.rx.clone();
        let _ = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
        self.is_leader()
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        // The task owns the connection: aborting it drops the connection, and the lock with it.
        self.task.abort();
    }
}

async fn campaign_pg(pool: sqlx::PgPool, key: i64, who: String, tx: watch::Sender<Option<bool>>) {
    loop {
        // A connection of its own: the lock is held by this session, not by a pooled one that
        // other queries would share (and return to the pool, lock and all).
        let mut conn = match pool.acquire().await {
            Ok(c) => c.detach(),
            Err(err) => {
                tracing::warn!(%err, "leader campaign: no database connection");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let mut leads = false;
        loop {
            let got: Result<bool, _> =
                sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(key).fetch_one(&mut conn).await;
            match got {
                Ok(true) => {
                    leads = true;
                    break;
                }
                Ok(false) => {
                    tx.send_if_modified(|v| std::mem::replace(v, Some(false)) != Some(false));
                    tokio::time::sleep(RETRY).await;
                }
                Err(err) => {
                    // A broken connection: take a new one.
                    tracing::warn!(%err, "leader campaign: the lock could not be tried");
                    tx.send_if_modified(|v| std::mem::replace(v, Some(false)) != Some(false));
                    tokio::time::sleep(RETRY).await;
                    break;
                }
            }
        }
        if !leads {
            continue;
        }
        tracing::info!(replica = %who, key, "this replica leads: it runs the background work");
        let _ = tx.send(Some(true));
        loop {
            tokio::time::sleep(HEARTBEAT).await;
            let alive = tokio::time::timeout(HEARTBEAT * 2, conn.ping()).await;
            if !matches!(alive, Ok(Ok(()))) {
                break;
            }
        }
        tracing::warn!(replica = %who, "lost the leader's database connection: stepping down");
        let _ = tx.send(Some(false));
        drop(conn);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_differ_per_node() {
        assert_ne!(super::node_key(1), super::node_key(2));
        assert_eq!(super::node_key(1) >> 32, 0x766d_7700);
    }
}
