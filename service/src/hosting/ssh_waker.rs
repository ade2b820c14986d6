//! Wake on SSH: while a site sleeps, its SSH port is ours. The first connection wakes the site,
//! and every connection made while it wakes is held, then spliced through to the guest's sshd
//! once the VM has its forwards back: the same connection logs in.
//!
//! The listener is handed back (closed) right before QEMU takes the port: a restore binds no
//! forward at start (see `vm::forwards`), so the port moves from us to QEMU with no gap in
//! which QEMU would accept a connection for a guest that does not run yet.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// How long a held connection waits for the woken VM's forward before it is closed.
const HOLD_FOR: Duration = Duration::from_secs(90);

#[derive(Default)]
pub(super) struct SshWakers {
    listening: Mutex<HashMap<i32, Listening>>,
}

struct Listening {
    /// Tells the accept loop to close the listener; it answers once it has.
    stop: oneshot::Sender<oneshot::Sender<()>>,
}

impl SshWakers {
    /// Listens on `addr` for hosting `id` (no-op if it already does). `on_first` runs once, at
    /// the first connection. Fails when the port is taken.
    pub(super) fn open(&self, id: i32, addr: SocketAddr, on_first: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        let mut map = self.listening.lock().unwrap();
        if map.contains_key(&id) {
            return Ok(());
        }
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(std_listener)?;
        let (stop, mut stopped) = oneshot::channel::<oneshot::Sender<()>>();
        tokio::spawn(async move {
            let mut on_first = Some(on_first);
            let mut held: Vec<TcpStream> = Vec::new();
            let ack = loop {
                tokio::select! {
                    ack = &mut stopped => break ack.ok(),
                    acc = listener.accept() => match acc {
                        Ok((conn, peer)) => {
                            tracing::info!(hosting_id = id, %peer, "an SSH connection wakes the site");
                            held.push(conn);
                            if let Some(f) = on_first.take() {
                                f();
                            }
                        }
                        Err(err) => {
                            tracing::warn!(hosting_id = id, %err, "accepting on a sleeping site's SSH port failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    },
                }
            };
            drop(listener);
            if let Some(ack) = ack {
                let _ = ack.send(());
            }
            for conn in held {
                tokio::spawn(splice(id, conn, addr));
            }
        });
        map.insert(id, Listening { stop });
        Ok(())
    }

    /// Closes hosting `id`'s listener (returns once the port is free); connections it holds
    /// are passed on to the VM's forward as soon as that accepts.
    pub(super) async fn release(&self, id: i32) {
        let Some(l) = self.listening.lock().unwrap().remove(&id) else { return };
        let (ack, closed) = oneshot::channel();
        if l.stop.send(ack).is_ok() {
            let _ = closed.await;
        }
    }

    /// Closes every listener (this replica no longer leads).
    pub(super) async fn release_all(&self) {
        let ids: Vec<i32> = self.listening.lock().unwrap().keys().copied().collect();
        for id in ids {
            self.release(id).await;
        }
    }

}

/// Passes a held connection to the VM's SSH forward once there is one (the port refuses
/// connections until QEMU has it), byte for byte in both directions.
async fn splice(id: i32, mut conn: TcpStream, vm: SocketAddr) {
    let deadline = Instant::now() + HOLD_FOR;
    let mut upstream = loop {
        match TcpStream::connect(vm).await {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(err) => {
                tracing::warn!(hosting_id = id, %err, "a held SSH connection found no VM to go to");
                return;
            }
        }
    };
    let _ = conn.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    if let Err(err) = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await {
        tracing::debug!(hosting_id = id, %err, "a spliced SSH connection ended");
    }
}
