//! The interactive serial console: libvirt's console stream of a running domain
//! (`virDomainOpenConsole` on the `<console type='pty'>` of the domain XML), bridged to
//! channels. The boot log (`<log file=...>` on the same serial port) is written by libvirt
//! regardless, so the read-only console tail keeps working.
//!
//! libvirt streams of a remote connection (qemu:///system goes through libvirtd) only move
//! data while something pumps the connection's socket: either a thread blocked in a call, or
//! libvirt's event loop. A blocked `virStreamRecv` cannot be interrupted safely, so each
//! console has its own connection, opened after libvirt's default event loop is registered
//! (one process-wide thread runs it), and a worker thread that reads and writes the stream
//! without blocking. The virt crate's `recv`/`send` report libvirt's "would block" (-2) as an
//! error, so the worker calls `virStreamRecv`/`virStreamSend` through `virt::sys`.
//!
//! Input is bounded: every byte typed is counted against its console's [`InputBudget`] from
//! when the WebSocket frame was read until libvirt took it. A remote stream's send returns once
//! the bytes are in the connection's socket, and libvirtd stops reading that socket while the
//! guest does not read its serial line, so a guest that does not consume its input stops the
//! worker, the budget runs out and the reader of the socket waits (the client's sends block)
//! until the guest reads again.
use std::os::raw::c_char;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, mpsc as std_mpsc};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use virt::connect::Connect;
use virt::stream::Stream;

use super::{Doing, VmError, VmManager, VmState, map_state};

/// How long the worker sleeps when the stream had nothing to read (input wakes it at once).
const IDLE_POLL: Duration = Duration::from_millis(10);
/// Bytes read from the stream at a time.
const CHUNK: usize = 16 * 1024;

/// The most bytes typed on one console that may be on their way to the guest (read from the
/// client, not yet taken by libvirt): a paste of this much goes at once, more waits for the
/// guest to read.
pub const INPUT_BUDGET: usize = 256 * 1024;

/// A console session's allowance of input bytes on their way to the guest ([`INPUT_BUDGET`]).
#[derive(Clone)]
pub struct InputBudget(Arc<Semaphore>);

impl Default for InputBudget {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(INPUT_BUDGET)))
    }
}

impl InputBudget {
    /// Waits until `len` more bytes fit (the guest took enough of the earlier ones); the room
    /// is given back when the [`Typed`] bytes made with it were sent or dropped.
    pub async fn room(&self, len: usize) -> Room {
        let n = len.clamp(1, INPUT_BUDGET) as u32;
        Room(self.0.clone().acquire_many_owned(n).await.expect("the budget is never closed"))
    }

    /// Bytes on their way now.
    pub fn queued(&self) -> usize {
        INPUT_BUDGET - self.0.available_permits()
    }
}

/// Room for some bytes in an [`InputBudget`].
pub struct Room(#[allow(dead_code)] OwnedSemaphorePermit); // held, not read

/// Bytes typed on a console, holding their room in its budget until libvirt took them.
pub struct Typed {
    bytes: Vec<u8>,
    _room: Room,
}

impl Typed {
    pub fn new(bytes: Vec<u8>, room: Room) -> Self {
        Self { bytes, _room: room }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl std::fmt::Debug for Typed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Typed({} bytes)", self.bytes.len())
    }
}

/// An open console stream. Dropping it closes the stream (within `IDLE_POLL`, or once a send
/// the guest is not reading returns: the next console's forced open ends it).
pub struct VmConsole {
    /// What the guest writes to its serial port; closed when the stream ends (the domain
    /// stopped, was saved or restored, or another console took the stream with force).
    pub output: mpsc::Receiver<Vec<u8>>,
    input: std_mpsc::Sender<Typed>,
    stop: Arc<AtomicBool>,
}

impl VmConsole {
    /// Types `bytes` on the console (their budget bounds what waits). False when the stream
    /// has ended.
    pub fn send(&self, bytes: Typed) -> bool {
        self.input.send(bytes).is_ok()
    }
}

impl Drop for VmConsole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Registers libvirt's default event loop and starts its thread, once per process. Only
/// connections opened afterwards are pumped by it (the console connections are).
fn ensure_event_loop() -> Result<(), VmError> {
    static LOOP: OnceLock<Result<(), String>> = OnceLock::new();
    let r = LOOP.get_or_init(|| {
        virt::event::event_register_default_impl().map_err(|e| e.message().to_owned())?;
        std::thread::Builder::new()
            .name("libvirt-events".into())
            .spawn(|| {
                loop {
                    if let Err(e) = virt::event::event_run_default_impl() {
                        tracing::warn!(error = e.message(), "libvirt event loop");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            })
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    r.clone().map_err(VmError::Invalid)
}

impl VmManager {
    /// Opens the serial console of hosting `hosting_id`'s running domain. It takes the console
    /// over from any other holder (`VIR_DOMAIN_CONSOLE_FORCE`: e.g. a stale stream of a
    /// crashed instance); the caller decides who may hold it (see `hosting::console`).
    pub async fn open_console(&self, hosting_id: i32) -> Result<VmConsole, VmError> {
        ensure_event_loop()?;
        let name = self.domain_name(hosting_id);
        let uri = self.inner.cfg.libvirt_uri.clone();
        let (out_tx, out_rx) = mpsc::channel(64);
        let (in_tx, in_rx) = std_mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let worker_stop = stop.clone();
        std::thread::Builder::new()
            .name(format!("console-{hosting_id}"))
            .spawn(move || {
                let opened = open(&uri, &name);
                let (conn, stream) = match opened {
                    Ok(cs) => {
                        let _ = ready_tx.send(Ok(()));
                        cs
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                pump(&stream, &out_tx, &in_rx, &worker_stop);
                // The stream object goes before its connection.
                let _ = stream.abort();
                drop(conn);
                tracing::debug!(domain = name, "console stream closed");
            })
            .map_err(|source| VmError::Spawn { program: "a console thread", source })?;
        match ready_rx.await {
            Ok(Ok(())) => Ok(VmConsole { output: out_rx, input: in_tx, stop }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(VmError::Invalid("the console thread ended before it opened the console".into())),
        }
    }

    /// Sets the console's window size in the guest (`stty rows R cols C` on ttyS0 through the
    /// guest agent: a serial line has no size of its own, so programs would assume 80x24).
    /// The kernel tells the foreground program (SIGWINCH). A tenant's call: bounded
    /// (`guest_calls`).
    /// `owner`: the site's owner, whose calls share one slot (`guest_calls`).
    pub async fn console_resize(&self, hosting_id: i32, owner: i32, rows: u16, cols: u16) -> Result<(), VmError> {
        self.guest_call(hosting_id, owner, "guest-exec", move |d, name, secs| {
            let args = ["-F", "/dev/ttyS0", "rows", &rows.to_string(), "cols", &cols.to_string()].map(String::from).to_vec();
            let deadline = std::time::Instant::now() + Duration::from_secs(secs.max(1) as u64);
            Self::agent_run(d, name, "/usr/bin/stty", args, deadline)
        })
        .await
    }

    /// Sets the password of `user` in the running guest (`guest-set-user-password` through the
    /// guest agent, which runs chpasswd). Nothing is stored on the host. A tenant's call:
    /// bounded (`guest_calls`), [`VmError::GuestTimeout`] when the guest does not finish it
    /// in time.
    /// `owner`: the site's owner, whose calls share one slot (`guest_calls`).
    pub async fn set_user_password(&self, hosting_id: i32, owner: i32, user: &str, password: &str) -> Result<(), VmError> {
        use base64::Engine;
        let args = serde_json::json!({
            "username": user,
            "password": base64::engine::general_purpose::STANDARD.encode(password),
            "crypted": false,
        });
        self.guest_call(hosting_id, owner, "guest-set-user-password", move |d, name, secs| {
            Self::agent(d, name, "guest-set-user-password", Some(args), secs).map(|_| ())
        })
        .await
    }
}

/// Opens a connection of its own and the domain's console on a non-blocking stream.
fn open(uri: &str, name: &str) -> Result<(Connect, Stream), VmError> {
    let conn = Connect::open(Some(uri)).map_err(|source| VmError::Connect { uri: uri.to_owned(), source })?;
    let d = VmManager::existing(&conn, name)?;
    match map_state(&d, name)? {
        VmState::Running => {}
        other => return Err(VmError::NotRunning(other)),
    }
    let stream = Stream::new(&conn, virt::sys::VIR_STREAM_NONBLOCK).doing("make a console stream for", name)?;
    d.open_console(None, &stream, virt::sys::VIR_DOMAIN_CONSOLE_FORCE).doing("open the console of", name)?;
    Ok((conn, stream))
}

/// Moves bytes both ways until the stream ends, the reader goes or `stop` is set.
fn pump(stream: &Stream, out: &mpsc::Sender<Vec<u8>>, input: &std_mpsc::Receiver<Typed>, stop: &AtomicBool) {
    let mut buf = vec![0u8; CHUNK];
    // Input being sent, and how much of it went; its room is given back once all went.
    let mut pending: Option<(Typed, usize)> = None;
    loop {
        if stop.load(Ordering::Relaxed) || out.is_closed() {
            return;
        }
        // SAFETY: the stream is alive for the call and `buf` is ours, `buf.len()` bytes long.
        let n = unsafe { virt::sys::virStreamRecv(stream.as_ptr(), buf.as_mut_ptr() as *mut c_char, buf.len()) };
        let read = match n {
            n if n > 0 => {
                if out.blocking_send(buf[..n as usize].to_vec()).is_err() {
                    return;
                }
                true
            }
            0 => return, // end of stream: the domain's console closed
            -2 => false, // nothing to read now
            _ => {
                tracing::debug!(error = virt::error::Error::last_error().message(), "console stream read failed");
                return;
            }
        };
        let (typed, sent) = match pending.take() {
            Some(p) => p,
            None => {
                let next = if read { input.try_recv().map_err(|e| matches!(e, std_mpsc::TryRecvError::Disconnected)) }
                           else { input.recv_timeout(IDLE_POLL).map_err(|e| matches!(e, std_mpsc::RecvTimeoutError::Disconnected)) };
                match next {
                    Ok(typed) => (typed, 0),
                    Err(true) => return, // the console's owner dropped it
                    Err(false) => continue,
                }
            }
        };
        // A chunk at a time: a send returns once libvirt wrote it to the connection's socket,
        // which waits while the guest does not read (libvirtd then stops reading the socket).
        let chunk = &typed.bytes[sent..typed.bytes.len().min(sent + CHUNK)];
        if chunk.is_empty() {
            continue;
        }
        // SAFETY: as above; `chunk` is ours.
        let n = unsafe { virt::sys::virStreamSend(stream.as_ptr(), chunk.as_ptr() as *const c_char, chunk.len()) };
        match n {
            n if n > 0 => {
                let sent = sent + n as usize;
                if sent < typed.bytes.len() {
                    pending = Some((typed, sent));
                }
            }
            -2 => {
                pending = Some((typed, sent));
                std::thread::sleep(Duration::from_millis(2)); // the connection's queue is full
            }
            _ => {
                tracing::debug!(error = virt::error::Error::last_error().message(), "console stream write failed");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn typed_bytes_hold_their_room_until_they_are_gone_and_more_waits() {
        let budget = InputBudget::default();
        let a = Typed::new(vec![b'x'; INPUT_BUDGET - 10], budget.room(INPUT_BUDGET - 10).await);
        assert_eq!(budget.queued(), INPUT_BUDGET - 10);
        // A frame that does not fit waits for room.
        let more = tokio::time::timeout(Duration::from_millis(200), budget.room(64)).await;
        assert!(more.is_err(), "no room for 64 more bytes while {} are queued", budget.queued());
        drop(a); // sent (or dropped): the room comes back
        let b = tokio::time::timeout(Duration::from_millis(200), budget.room(64)).await.expect("room again");
        assert_eq!(budget.queued(), 64);
        drop(b);
        // A frame larger than the budget takes all of it, never waits forever.
        let whole = tokio::time::timeout(Duration::from_millis(200), budget.room(10 * INPUT_BUDGET)).await.expect("fits alone");
        assert_eq!(budget.queued(), INPUT_BUDGET);
        drop(whole);
        assert_eq!(budget.queued(), 0);
    }
}
