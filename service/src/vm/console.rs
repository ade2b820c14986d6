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
use std::os::raw::c_char;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, mpsc as std_mpsc};
use std::time::Duration;

use tokio::sync::mpsc;
use virt::connect::Connect;
use virt::stream::Stream;

use super::{Doing, VmError, VmManager, VmState, map_state};

/// How long the worker sleeps when the stream had nothing to read (input wakes it at once).
const IDLE_POLL: Duration = Duration::from_millis(10);
/// Bytes read from the stream at a time.
const CHUNK: usize = 16 * 1024;

/// An open console stream. Dropping it closes the stream (within `IDLE_POLL`).
pub struct VmConsole {
    /// What the guest writes to its serial port; closed when the stream ends (the domain
    /// stopped, was saved or restored, or another console took the stream with force).
    pub output: mpsc::Receiver<Vec<u8>>,
    input: std_mpsc::Sender<Vec<u8>>,
    stop: Arc<AtomicBool>,
}

impl VmConsole {
    /// Types `bytes` on the console. False when the stream has ended.
    pub fn send(&self, bytes: Vec<u8>) -> bool {
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
    /// The kernel tells the foreground program (SIGWINCH).
    pub async fn console_resize(&self, hosting_id: i32, rows: u16, cols: u16) -> Result<(), VmError> {
        let name = self.domain_name(hosting_id);
        self.blocking(move |c| {
            let d = Self::existing(c, &name)?;
            let args = ["-F", "/dev/ttyS0", "rows", &rows.to_string(), "cols", &cols.to_string()].map(String::from).to_vec();
            Self::agent_run(&d, &name, "/usr/bin/stty", args, std::time::Instant::now() + Duration::from_secs(5))
        })
        .await
    }

    /// Sets the password of `user` in the running guest (`guest-set-user-password` through the
    /// guest agent, which runs chpasswd). Nothing is stored on the host.
    pub async fn set_user_password(&self, hosting_id: i32, user: &str, password: &str) -> Result<(), VmError> {
        let name = self.domain_name(hosting_id);
        let (user, password) = (user.to_owned(), password.to_owned());
        self.blocking(move |c| {
            let d = Self::existing(c, &name)?;
            match map_state(&d, &name)? {
                VmState::Running => {}
                other => return Err(VmError::NotRunning(other)),
            }
            d.set_user_password(&user, &password, 0).map_err(|source| VmError::Agent {
                domain: name.clone(),
                command: "guest-set-user-password",
                source,
            })
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
fn pump(stream: &Stream, out: &mpsc::Sender<Vec<u8>>, input: &std_mpsc::Receiver<Vec<u8>>, stop: &AtomicBool) {
    let mut buf = vec![0u8; CHUNK];
    let mut pending: Vec<u8> = Vec::new();
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
        if pending.is_empty() {
            let next = if read { input.try_recv().map_err(|e| matches!(e, std_mpsc::TryRecvError::Disconnected)) }
                       else { input.recv_timeout(IDLE_POLL).map_err(|e| matches!(e, std_mpsc::RecvTimeoutError::Disconnected)) };
            match next {
                Ok(bytes) => pending = bytes,
                Err(true) => return, // the console's owner dropped it
                Err(false) => continue,
            }
        }
        // SAFETY: as above; `pending` is ours.
        let n = unsafe { virt::sys::virStreamSend(stream.as_ptr(), pending.as_ptr() as *const c_char, pending.len()) };
        match n {
            n if n > 0 => {
                pending.drain(..n as usize);
            }
            -2 => std::thread::sleep(Duration::from_millis(2)), // the connection's queue is full
            _ => {
                tracing::debug!(error = virt::error::Error::last_error().message(), "console stream write failed");
                return;
            }
        }
    }
}
