//! Wake on SSH: while a site sleeps, its SSH port is ours. A connection wakes the site only once
//! its client has sent an SSH identification line (`SSH-2.0-...`, RFC 4253 §4.2: OpenSSH and
//! every other client send theirs at once, without waiting for the server's), read with a short
//! timeout and a byte bound; a bare connect, a port scan or anything that is not SSH is closed
//! and wakes nothing. An identified connection asks for a wake (each one: a wake that gave up
//! is tried again by the next connection), is held until the site runs, and is then spliced
//! through to the guest's sshd with the bytes already read sent first: the same connection
//! logs in. A wake that does not bring the site up closes the connections it held.
//!
//! Held connections are bounded per site and per source address (all sites together); past
//! either bound a connection is closed at once.
//!
//! The listener is handed back (closed) right before QEMU takes the port: a restore binds no
//! forward at start (see `vm::forwards`), so the port moves from us to QEMU with no gap in
//! which QEMU would accept a connection for a guest that does not run yet.
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

/// How long a held connection waits for its site to run before it is closed.
pub(super) const HOLD_FOR: Duration = Duration::from_secs(90);
/// How long a client has to send its identification line (OpenSSH sends it within a round trip).
pub(super) const IDENT_WAIT: Duration = Duration::from_secs(10);
/// RFC 4253 §4.2: the identification line is at most 255 characters, CR LF included.
const MAX_IDENT: usize = 255;
/// How long the woken VM's SSH forward may take to accept once the site runs.
const CONNECT_FOR: Duration = Duration::from_secs(15);

/// A wake asked for by an identified connection from `peer`: true once the site runs.
pub(super) type Wake = Arc<dyn Fn(IpAddr) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// The bounds of a sleeping site's SSH listener (`ServiceConfig::ssh_waker_*`).
#[derive(Clone, Copy, Debug)]
pub(super) struct Bounds {
    /// Connections held at once on one site's port.
    pub per_site: usize,
    /// Connections held at once from one source address, over every site's port.
    pub per_source: usize,
    /// How long a client has to send its identification line.
    pub ident_wait: Duration,
}

#[derive(Default)]
pub(crate) struct SshWakers {
    listening: Mutex<HashMap<i32, Listening>>,
    /// Held connections per source address, every listener together.
    by_source: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

struct Listening {
    /// Tells the accept loop to close the listener; it answers once it has.
    stop: oneshot::Sender<oneshot::Sender<()>>,
}

/// One held connection's place in the bounds; given back when dropped.
struct Held {
    site: Arc<Mutex<usize>>,
    by_source: Arc<Mutex<HashMap<IpAddr, usize>>>,
    source: IpAddr,
}

impl Held {
    /// A place for a connection from `source`, or why not.
    fn take(site: &Arc<Mutex<usize>>, by_source: &Arc<Mutex<HashMap<IpAddr, usize>>>, source: IpAddr, b: Bounds) -> Result<Self, &'static str> {
        let mut s = site.lock().unwrap_or_else(|p| p.into_inner());
        let mut m = by_source.lock().unwrap_or_else(|p| p.into_inner());
        if *s >= b.per_site {
            return Err("ssh_held_per_site");
        }
        let n = m.entry(source).or_insert(0);
        if *n >= b.per_source {
            return Err("ssh_held_per_source");
        }
        *n += 1;
        *s += 1;
        Ok(Self { site: site.clone(), by_source: by_source.clone(), source })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        *self.site.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        let mut m = self.by_source.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.source);
            }
        }
    }
}

impl SshWakers {
    /// Listens on `addr` for hosting `id` (no-op if it already does). `wake` runs for each
    /// connection that identifies itself as SSH. Fails when the port is taken.
    pub(super) fn open(&self, id: i32, addr: SocketAddr, bounds: Bounds, wake: Wake) -> std::io::Result<()> {
        let mut map = self.listening.lock().unwrap();
        if map.contains_key(&id) {
            return Ok(());
        }
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(std_listener)?;
        let (stop, mut stopped) = oneshot::channel::<oneshot::Sender<()>>();
        let (closed_tx, closed) = watch::channel(false);
        let by_source = self.by_source.clone();
        tokio::spawn(async move {
            let site = Arc::new(Mutex::new(0usize));
            let ack = loop {
                tokio::select! {
                    ack = &mut stopped => break ack.ok(),
                    acc = listener.accept() => match acc {
                        Ok((conn, peer)) => match Held::take(&site, &by_source, peer.ip(), bounds) {
                            Ok(held) => {
                                tokio::spawn(hold(id, conn, peer, addr, bounds, held, wake.clone(), closed.clone()));
                            }
                            Err(reason) => {
                                tracing::info!(hosting_id = id, %peer, reason, "too many SSH connections held: closed");
                                crate::telemetry::record_wake_refused(reason);
                                drop(conn);
                            }
                        },
                        Err(err) => {
                            tracing::warn!(hosting_id = id, %err, "accepting on a sleeping site's SSH port failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    },
                }
            };
            drop(listener);
            let _ = closed_tx.send(true);
            if let Some(ack) = ack {
                let _ = ack.send(());
            }
        });
        map.insert(id, Listening { stop });
        Ok(())
    }

    /// Closes hosting `id`'s listener (returns once the port is free); connections it holds
    /// are passed on to the VM's forward once the site runs.
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

/// What the bytes a client sent so far say.
#[derive(Debug, PartialEq, Eq)]
enum Ident {
    /// An SSH identification line ends within them.
    Ssh,
    /// No line end yet (and room for more).
    Incomplete,
    /// Not SSH: another first line, or no line end within the bound.
    NotSsh,
}

/// RFC 4253 §4.2: the client's first line is `SSH-protoversion-softwareversion [comments]`
/// ending in CR LF (a bare LF is accepted, as OpenSSH does), at most 255 characters; protocol
/// 2.0 (or 1.99, a 1.x client that speaks 2.0).
fn identification(buf: &[u8]) -> Ident {
    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= MAX_IDENT { Ident::NotSsh } else { Ident::Incomplete };
    };
    if end + 1 > MAX_IDENT {
        return Ident::NotSsh;
    }
    let line = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
    let version_ok = line.starts_with(b"SSH-2.0-") || line.starts_with(b"SSH-1.99-");
    let software = &line[line.iter().position(|&b| b == b'-').map_or(0, |p| p + 1)..];
    let software = &software[software.iter().position(|&b| b == b'-').map_or(software.len(), |p| p + 1)..];
    // The software version is printable US-ASCII; the line holds no NUL or other control bytes.
    let printable = line.iter().all(|&b| (0x20..0x7f).contains(&b));
    if version_ok && !software.is_empty() && printable { Ident::Ssh } else { Ident::NotSsh }
}

/// Reads the client's identification line within `wait`: Some(every byte read) when it is SSH.
async fn read_identification(conn: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let read = async {
        let mut buf = Vec::with_capacity(MAX_IDENT + 1);
        let mut chunk = [0u8; MAX_IDENT + 1];
        loop {
            let room = MAX_IDENT + 1 - buf.len();
            let n = conn.read(&mut chunk[..room]).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
            match identification(&buf) {
                Ident::Ssh => return Some(buf),
                Ident::NotSsh => return None,
                Ident::Incomplete => {}
            }
        }
    };
    tokio::time::timeout(wait, read).await.ok().flatten()
}

/// One connection to a sleeping site's port: identified, it wakes the site and is held until
/// the site runs, then spliced to the VM; otherwise closed.
#[allow(clippy::too_many_arguments)]
async fn hold(id: i32, mut conn: TcpStream, peer: SocketAddr, vm: SocketAddr, bounds: Bounds, held: Held, wake: Wake, mut closed: watch::Receiver<bool>) {
    let Some(sent) = read_identification(&mut conn, bounds.ident_wait).await else {
        tracing::debug!(hosting_id = id, %peer, "a connection to a sleeping site's SSH port sent no SSH identification: closed");
        crate::telemetry::record_wake_refused("ssh_not_identified");
        return;
    };
    tracing::info!(hosting_id = id, %peer, "an SSH client wakes the site");
    let up = tokio::time::timeout(HOLD_FOR, wake(peer.ip())).await.unwrap_or(false);
    if !up {
        tracing::info!(hosting_id = id, %peer, "the site did not come up: the held SSH connection is closed");
        return;
    }
    // The VM's forward takes our port: connect only once our listener is gone.
    if tokio::time::timeout(CONNECT_FOR, closed.wait_for(|c| *c)).await.is_err() {
        tracing::warn!(hosting_id = id, %peer, "the site runs but its SSH port is still ours: the held connection is closed");
        return;
    }
    drop(held);
    splice(id, conn, &sent, vm).await;
}

/// Passes a held connection to the VM's SSH forward once it accepts, the bytes the client sent
/// first, then byte for byte in both directions.
async fn splice(id: i32, mut conn: TcpStream, sent: &[u8], vm: SocketAddr) {
    let deadline = Instant::now() + CONNECT_FOR;
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
    if let Err(err) = upstream.write_all(sent).await {
        tracing::debug!(hosting_id = id, %err, "a held SSH connection's first bytes did not reach the VM");
        return;
    }
    if let Err(err) = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await {
        tracing::debug!(hosting_id = id, %err, "a spliced SSH connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn only_an_ssh_identification_line_within_255_bytes_counts() {
        assert_eq!(identification(b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n"), Ident::Ssh);
        assert_eq!(identification(b"SSH-2.0-PuTTY_Release_0.81\r\n\0\0\0\x14"), Ident::Ssh, "bytes after the line are kept");
        assert_eq!(identification(b"SSH-1.99-Old\n"), Ident::Ssh);
        assert_eq!(identification(b"SSH-2.0-"), Ident::Incomplete);
        assert_eq!(identification(b""), Ident::Incomplete);
        assert_eq!(identification(b"GET / HTTP/1.1\r\n"), Ident::NotSsh);
        assert_eq!(identification(b"SSH-1.5-Old\r\n"), Ident::NotSsh);
        assert_eq!(identification(b"SSH-2.0-\r\n"), Ident::NotSsh, "no software version");
        assert_eq!(identification(b"SSH-2.0-a\x01b\r\n"), Ident::NotSsh);
        assert_eq!(identification(b"\r\n"), Ident::NotSsh);
        let long = [b"SSH-2.0-".as_slice(), &[b'a'; 300]].concat();
        assert_eq!(identification(&long[..MAX_IDENT]), Ident::NotSsh, "no line end within 255 bytes");
        let mut ok = [b"SSH-2.0-".as_slice(), &[b'a'; 245]].concat();
        ok.extend_from_slice(b"\r\n");
        assert_eq!(ok.len(), 255);
        assert_eq!(identification(&ok), Ident::Ssh);
    }

    fn bounds() -> Bounds {
        Bounds { per_site: 3, per_source: 2, ident_wait: Duration::from_millis(400) }
    }

    /// A wake that counts its calls and answers `up` (after `release` when it is up).
    fn counting(wakers: Arc<SshWakers>, id: i32, up: bool) -> (Wake, Arc<AtomicUsize>) {
        let n = Arc::new(AtomicUsize::new(0));
        let calls = n.clone();
        let wake: Wake = Arc::new(move |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            let w = wakers.clone();
            Box::pin(async move {
                if up {
                    w.release(id).await;
                }
                up
            })
        });
        (wake, n)
    }

    /// Whether the server closed `c` within `within` (EOF or reset), reading whatever comes.
    async fn closed_within(c: &mut TcpStream, within: Duration) -> bool {
        let mut b = [0u8; 64];
        matches!(tokio::time::timeout(within, c.read(&mut b)).await, Ok(Ok(0) | Err(_)))
    }

    fn port() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }

    #[tokio::test]
    async fn silence_scans_and_other_protocols_wake_nothing_and_are_closed() {
        let wakers = Arc::new(SshWakers::default());
        let addr = port();
        let (wake, calls) = counting(wakers.clone(), 1, true);
        wakers.open(1, addr, bounds(), wake).unwrap();
        // A bare connect, closed by the client (a scan).
        drop(TcpStream::connect(addr).await.unwrap());
        // A silent connection: closed once the identification wait is over.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        assert!(!closed_within(&mut silent, Duration::from_millis(200)).await, "given its time to speak");
        assert!(closed_within(&mut silent, Duration::from_secs(2)).await, "then closed");
        // Not SSH: closed at once.
        let mut http = TcpStream::connect(addr).await.unwrap();
        http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        assert!(closed_within(&mut http, Duration::from_millis(300)).await);
        assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing woke the site");
        wakers.release(1).await;
    }

    #[tokio::test]
    async fn held_connections_are_bounded_per_source_and_per_site() {
        let wakers = Arc::new(SshWakers::default());
        let (a, b) = (port(), port());
        let (wake, _) = counting(wakers.clone(), 1, true);
        let long = Bounds { ident_wait: Duration::from_secs(30), ..bounds() };
        wakers.open(1, a, long, wake.clone()).unwrap();
        wakers.open(2, b, long, wake).unwrap();
        let mut held = vec![TcpStream::connect(a).await.unwrap(), TcpStream::connect(a).await.unwrap()];
        // A third from the same address, to this site or another: closed at once.
        for to in [a, b] {
            let mut over = TcpStream::connect(to).await.unwrap();
            assert!(closed_within(&mut over, Duration::from_secs(1)).await, "over the per-source bound");
        }
        for c in held.iter_mut() {
            assert!(!closed_within(c, Duration::from_millis(100)).await, "the first two are still held");
        }
        // Another address: held, up to the site's bound (3).
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.7:0".parse().unwrap()).unwrap();
        let mut third = sock.connect(a).await.unwrap();
        assert!(!closed_within(&mut third, Duration::from_millis(100)).await);
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.8:0".parse().unwrap()).unwrap();
        let mut fourth = sock.connect(a).await.unwrap();
        assert!(closed_within(&mut fourth, Duration::from_secs(1)).await, "over the per-site bound");
        // A closed one frees its place.
        drop(held.pop());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut again = TcpStream::connect(b).await.unwrap();
        assert!(!closed_within(&mut again, Duration::from_millis(100)).await);
        wakers.release_all().await;
    }

    #[tokio::test]
    async fn an_identified_client_wakes_the_site_and_its_bytes_reach_the_vm() {
        let wakers = Arc::new(SshWakers::default());
        let addr = port();
        let (wake, calls) = counting(wakers.clone(), 1, true);
        wakers.open(1, addr, bounds(), wake).unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await.unwrap();
        // The "VM": takes the port once the waker gave it back (the wake releases it).
        let vm = loop {
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let (mut guest, _) = tokio::time::timeout(Duration::from_secs(5), vm.accept()).await.unwrap().unwrap();
        guest.write_all(b"SSH-2.0-Guest\r\n").await.unwrap();
        let mut got = [0u8; 21];
        guest.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"SSH-2.0-OpenSSH_9.6\r\n", "the client's line is passed on");
        let mut banner = [0u8; 15];
        client.read_exact(&mut banner).await.unwrap();
        assert_eq!(&banner, b"SSH-2.0-Guest\r\n");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_wake_that_fails_closes_its_connection_and_the_next_one_tries_again() {
        let wakers = Arc::new(SshWakers::default());
        let addr = port();
        let (wake, calls) = counting(wakers.clone(), 1, false);
        wakers.open(1, addr, bounds(), wake).unwrap();
        for n in 1..=2 {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await.unwrap();
            assert!(closed_within(&mut c, Duration::from_secs(2)).await, "a clear close, not a hang");
            assert_eq!(calls.load(Ordering::SeqCst), n, "each identified connection asks for a wake");
        }
        wakers.release(1).await;
    }
}
