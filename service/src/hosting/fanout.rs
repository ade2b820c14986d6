//! Between app replicas on one PostgreSQL: `NOTIFY vmw_events` after each stored event (so a
//! page served by one replica follows work done by another) and small notes about the SSH
//! wakers (only the leader listens on sleeping sites' SSH ports). On SQLite there is one
//! process and nothing to tell.
//!
//! A NOTIFY payload holds at most 8000 bytes: an event goes whole when its JSON fits in
//! [`INLINE_MAX`], else as its id (the receivers read it back). Every note names the replica
//! that sent it, which ignores its own (it already told its local subscribers). PostgreSQL
//! delivers notes to every listening session in the order of their commits; a listener that
//! loses its connection reconnects (sqlx's `PgListener`), and notes sent meanwhile are missed:
//! the event streams catch up from the database when they reconnect, and waits look at the row
//! again every second anyway.
use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::view::EventView;

/// The channel every replica listens on.
pub const CHANNEL: &str = "vmw_events";
/// The largest payload sent as it is (PostgreSQL's limit is 8000 bytes).
pub const INLINE_MAX: usize = 7000;

/// What one replica tells the others.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Note {
    /// An event that was stored, whole.
    Event { e: EventView },
    /// An event too big to send: its id.
    EventId { id: i32 },
    /// The leader should listen on this sleeping site's SSH port.
    OpenSshWaker { hosting_id: i32 },
    /// Whoever listens on this site's SSH port should give it back (its VM is starting).
    ReleaseSshWaker { hosting_id: i32 },
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    /// The sending replica (`{instance}:{boot}`).
    from: String,
    #[serde(flatten)]
    note: Note,
}

/// The sending half (every replica holds one; a no-op on SQLite).
#[derive(Clone)]
pub struct Fanout {
    db: DatabaseConnection,
    me: String,
    enabled: bool,
}

impl Fanout {
    pub fn new(db: DatabaseConnection, me: String) -> Self {
        let enabled = db.get_database_backend() == DbBackend::Postgres;
        Self { db, me, enabled }
    }

    /// Whether there are other replicas to tell (PostgreSQL).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Tells the other replicas; failures are logged (the work itself goes on).
    pub async fn send(&self, note: Note) {
        if !self.enabled {
            return;
        }
        let note = match note {
            Note::Event { e } => {
                let id = e.id;
                let whole = Note::Event { e };
                if self.payload(&whole).len() <= INLINE_MAX { whole } else { Note::EventId { id } }
            }
            other => other,
        };
        let payload = self.payload(&note);
        let stmt = Statement::from_sql_and_values(DbBackend::Postgres, "SELECT pg_notify($1, $2)", [CHANNEL.into(), payload.into()]);
        if let Err(err) = self.db.execute_raw(stmt).await {
            tracing::warn!(%err, "could not tell the other replicas");
        }
    }

    fn payload(&self, note: &Note) -> String {
        serde_json::to_string(&Envelope { from: self.me.clone(), note: note.clone() }).unwrap_or_default()
    }

    /// Listens for the other replicas' notes until the returned receiver is dropped (None on
    /// SQLite). The listener reconnects by itself when its connection drops.
    pub async fn listen(&self) -> crate::Result<Option<mpsc::UnboundedReceiver<Note>>> {
        if !self.enabled {
            return Ok(None);
        }
        let pool = self.db.get_postgres_connection_pool().clone();
        let mut listener = PgListener::connect_with(&pool).await.map_err(|e| crate::Error::internal(format!("LISTEN: {e}")))?;
        listener.listen(CHANNEL).await.map_err(|e| crate::Error::internal(format!("LISTEN: {e}")))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let me = self.me.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    got = listener.recv() => match got {
                        Ok(n) => match serde_json::from_str::<Envelope>(n.payload()) {
                            Ok(env) if env.from == me => {}
                            Ok(env) => {
                                if tx.send(env.note).is_err() {
                                    return;
                                }
                            }
                            Err(err) => tracing::warn!(%err, "an unreadable note from another replica"),
                        },
                        Err(err) => {
                            // recv() reconnects on the next call; do not spin on a dead server.
                            tracing::warn!(%err, "listening to the other replicas failed; reconnecting");
                            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        }
                    },
                }
            }
        });
        Ok(Some(rx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_round_trip_and_name_their_sender() {
        let env = Envelope { from: "a:1".into(), note: Note::ReleaseSshWaker { hosting_id: 7 } };
        let s = serde_json::to_string(&env).unwrap();
        assert_eq!(s, r#"{"from":"a:1","t":"release_ssh_waker","hosting_id":7}"#);
        let back: Envelope = serde_json::from_str(&s).unwrap();
        assert_eq!(back.note, Note::ReleaseSshWaker { hosting_id: 7 });
    }
}
