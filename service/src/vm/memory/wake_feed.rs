//! A sleeping clone's memory, expanded from its delta while libvirt restores from it.
//!
//! libvirt cannot read a delta ([`super::delta`]), and expanding one into a plain file first
//! put ~0.1-0.3 s (writing ~100 MB into the page cache) in front of every wake. Instead the
//! wake file is a named pipe: libvirt opens it, reads the header and XML, and hands it to QEMU,
//! which reads the memory stream from it as it reads a decompressor's output for a compressed
//! save. Meanwhile two threads work behind the pipe:
//! - the decoder expands the delta into a buffer of the stream's size (zstd with the golden's
//!   stream as its reference prefix; the buffer is zstd's window, so nothing is copied twice),
//!   while libvirt and QEMU are still starting;
//! - the writer sends the header and then the stream, as far as it is decoded, to whoever opens
//!   the pipe. A reader who leaves before the end lets the next one get the whole file from its
//!   start (newer libvirt opens a save once for its header and XML, then again for the
//!   restore); once one reader got all of it, the pipe is closed for good. (A reader that reads
//!   only the header and leaves is told apart from one that read everything because the memory
//!   does not fit in the pipe's buffer: it is ~100 MB, the buffer 1 MiB. A reader back within
//!   the microseconds before the writer closed its end would find the first one's unread bytes:
//!   libvirt then refuses the file, as it starts with no save header.)
//!
//! The checksum at the end of the zstd frame is only known once the whole stream is decoded,
//! possibly after QEMU has loaded it. So the restore is made paused, and [`Feed::finish`]
//! says whether the stream was right: only then may the guest run (`VmManager::start`). A
//! decoder that fails closes the pipe early, so the restore fails too.
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use zstd::zstd_safe::{DCtx, DParameter, InBuffer, OutBuffer, WriteBuf};

use crate::vm::{VmError, io};
use super::delta;
use super::save_file::head_xml;

/// How much of the frame the decoder takes at a time: small enough that zstd never sees the
/// whole frame at once (it would then expand it in one go, with nothing for the writer until
/// the end), and each step a few MB of memory.
const INPUT_STEP: usize = 64 * 1024;
/// The pipe's buffer (Linux' default limit for an unprivileged process, `pipe-max-size`).
const PIPE_SIZE: libc::c_int = 1 << 20;

/// The expanded stream, written by the decoder from its start and read by the writer up to what
/// the decoder has published. Only raw pointers cross threads: no reference to the part being
/// written exists while the writer reads the part before it.
struct Stream {
    ptr: *mut u8,
    len: usize,
    _map: memmap2::MmapMut,
}

// SAFETY: the decoder writes only past `Progress::decoded` and the writer reads only before it
// (published under the mutex), so the two never touch the same bytes at once.
unsafe impl Send for Stream {}
unsafe impl Sync for Stream {}

#[derive(Default)]
struct Progress {
    /// The stream's bytes decoded so far.
    decoded: usize,
    /// Set once the decoder has ended: Ok when the whole frame was expanded and its checksum
    /// matched, else why not.
    ended: Option<Result<(), String>>,
    /// When the decoder ended, and when a reader had got the whole file (since the start).
    decoded_in: Option<Duration>,
    served_in: Option<Duration>,
}

struct Shared {
    stream: Stream,
    progress: Mutex<Progress>,
    moved: Condvar,
    /// The restore has returned: nobody reads any more.
    done: AtomicBool,
    started: Instant,
}

impl Shared {
    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// zstd's output buffer over [`Stream`]: zstd writes at `pos` and reads back what it wrote
/// before (the window), through the pointer only.
struct StreamBuf<'s> {
    stream: &'s Stream,
    filled: usize,
}

// SAFETY: the pointer and capacity describe one live, writable mapping of `len` bytes, and
// `filled` only grows to what zstd reported as written.
unsafe impl WriteBuf for StreamBuf<'_> {
    fn as_slice(&self) -> &[u8] {
        // SAFETY: the first `filled` bytes are written and no longer change.
        unsafe { std::slice::from_raw_parts(self.stream.ptr, self.filled) }
    }
    fn capacity(&self) -> usize {
        self.stream.len
    }
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.stream.ptr
    }
    unsafe fn filled_until(&mut self, n: usize) {
        self.filled = n;
    }
}

/// A delta being served as a plain save file through the named pipe at [`Feed::path`].
pub(in crate::vm) struct Feed {
    path: PathBuf,
    xml: String,
    shared: Arc<Shared>,
    decoder: Option<JoinHandle<()>>,
    writer: Option<JoinHandle<()>>,
}

impl Feed {
    /// Checks the delta file at `delta` and its reference, makes the pipe `fifo` (anew), and
    /// starts expanding and serving. Nothing reads `delta` but this, and it stays as it is.
    pub fn start(delta: &Path, fifo: &Path) -> Result<Feed, VmError> {
        let opened = delta::open(delta)?;
        let xml = head_xml(&opened.head).map_err(VmError::Invalid)?.to_owned();
        let len = usize::try_from(opened.meta.stream_len).map_err(|_| VmError::Invalid("the saved memory is too large".into()))?;
        let mut map = memmap2::MmapMut::map_anon(len.max(1)).map_err(io("allocating", fifo))?;
        let stream = Stream { ptr: map.as_mut_ptr(), len, _map: map };
        let shared = Arc::new(Shared { stream, progress: Mutex::default(), moved: Condvar::new(), done: AtomicBool::new(false), started: Instant::now() });
        make_fifo(fifo)?;
        let mut head = opened.head.clone();
        delta::mark_plain(&mut head);
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new().name(name.into()).spawn(f).map_err(io("starting a thread for", fifo))
        };
        let s = shared.clone();
        let decoder = spawn("vm-wake-decode", Box::new(move || decode(&s, opened)));
        let decoder = match decoder {
            Ok(d) => d,
            Err(e) => {
                let _ = std::fs::remove_file(fifo);
                return Err(e);
            }
        };
        let (s, p) = (shared.clone(), fifo.to_owned());
        let mut feed = Feed { path: fifo.to_owned(), xml, shared, decoder: Some(decoder), writer: None };
        feed.writer = Some(spawn("vm-wake-feed", Box::new(move || serve(&s, &p, &head)))?);
        Ok(feed)
    }

    /// The pipe to restore from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The domain XML saved with the memory.
    pub fn xml(&self) -> &str {
        &self.xml
    }

    /// Call once the restore has returned: stops serving, waits for the decoder, removes the
    /// pipe. Ok: the whole stream was expanded and matched its checksum, so what QEMU loaded
    /// was the saved memory.
    pub fn finish(mut self) -> Result<(), VmError> {
        self.stop();
        let (ended, decoded_in, served_in) = {
            let p = self.shared.progress();
            (p.ended.clone(), p.decoded_in, p.served_in)
        };
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
        tracing::debug!(path = %self.path.display(), decoded_ms = ms(decoded_in), served_ms = ms(served_in), finished_ms = self.shared.started.elapsed().as_millis() as u64, "wake feed");
        match ended {
            Some(Ok(())) => Ok(()),
            Some(Err(why)) => Err(VmError::Invalid(format!("{}: {why}", self.path.display()))),
            None => Err(VmError::Invalid(format!("{}: the saved memory's expansion did not end", self.path.display()))),
        }
    }

    fn stop(&mut self) {
        self.shared.done.store(true, Ordering::SeqCst);
        self.shared.moved.notify_all();
        if let Some(w) = self.writer.take() {
            // A writer waiting in open(2) for a reader gets one (opening with O_NONBLOCK does
            // not wait for a writer), sees `done` and ends.
            let until = Instant::now() + Duration::from_secs(10);
            while !w.is_finished() && Instant::now() < until {
                let _ = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&self.path);
                std::thread::sleep(Duration::from_millis(1));
            }
            if w.is_finished() {
                let _ = w.join();
            } else {
                tracing::warn!(path = %self.path.display(), "a wake's pipe writer did not end");
            }
        }
        if let Some(d) = self.decoder.take() {
            let _ = d.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.stop();
    }
}

fn make_fifo(path: &Path) -> Result<(), VmError> {
    let _ = std::fs::remove_file(path);
    let c = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
        .map_err(|_| VmError::Invalid(format!("{} holds a NUL byte", path.display())))?;
    // SAFETY: a NUL-terminated path that outlives the call.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(io("making the pipe", path)(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The decoder: expands the frame into the stream, publishing its progress after every step.
fn decode(shared: &Shared, opened: delta::Opened) {
    let result = (|| -> Result<(), String> {
        let prefix = opened.reference_stream().map_err(|e| e.to_string())?;
        let frame = opened.frame();
        let err = |what: &'static str| move |code: usize| format!("{what}: {}", zstd::zstd_safe::get_error_name(code));
        let mut d = DCtx::create();
        d.set_parameter(DParameter::StableOutBuffer(true)).map_err(err("setting up zstd"))?;
        // The window spans the reference and the stream (up to 2^30, as `write_delta` caps it).
        d.set_parameter(DParameter::WindowLogMax(30)).map_err(err("setting up zstd"))?;
        d.ref_prefix(prefix).map_err(err("setting up zstd"))?;
        let mut buf = StreamBuf { stream: &shared.stream, filled: 0 };
        let mut at = 0;
        loop {
            let step = &frame[at..(at + INPUT_STEP).min(frame.len())];
            let filled_before = buf.filled;
            let mut input = InBuffer::around(step);
            let (left, pos) = {
                let mut out = OutBuffer::around_pos(&mut buf, filled_before);
                let left = d.decompress_stream(&mut out, &mut input).map_err(err("expanding the saved memory"))?;
                (left, out.pos())
            };
            at += input.pos();
            shared.progress().decoded = pos;
            shared.moved.notify_all();
            if left == 0 {
                // The frame is complete and its checksum matched.
                return if pos == shared.stream.len { Ok(()) } else { Err(format!("the saved memory expanded to {pos} bytes, not {}", shared.stream.len)) };
            }
            if input.pos() == 0 && pos == filled_before {
                return Err(if at >= frame.len() { "the delta ends before its frame" } else { "the delta's frame makes no progress" }.into());
            }
        }
    })();
    {
        let mut p = shared.progress();
        p.ended = Some(result);
        p.decoded_in = Some(shared.started.elapsed());
    }
    shared.moved.notify_all();
}

/// How one reader was served.
enum Served {
    /// The whole file: nobody gets more.
    All,
    /// The reader left before the end: the next one gets the file from its start.
    Left,
    /// The decoder failed: the reader got a short file, and nobody gets more.
    Failed,
}

/// The writer: the file to readers of the pipe, until one got all of it or the restore returned.
fn serve(shared: &Shared, fifo: &Path, head: &[u8]) {
    while !shared.done.load(Ordering::SeqCst) {
        // Blocks until a reader opens the pipe (libvirt, or `Feed::stop`).
        let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(fifo) else { return };
        if shared.done.load(Ordering::SeqCst) {
            return;
        }
        // SAFETY: a valid descriptor of a pipe; only its buffer size changes.
        unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&f), libc::F_SETPIPE_SZ, PIPE_SIZE) };
        match serve_one(shared, &mut f, head) {
            Served::Left => continue,
            Served::All | Served::Failed => return,
        }
    }
}

fn serve_one(shared: &Shared, f: &mut File, head: &[u8]) -> Served {
    if f.write_all(head).is_err() {
        return Served::Left;
    }
    let mut sent = 0;
    loop {
        let decoded = {
            let mut p = shared.progress();
            while p.decoded == sent && p.ended.is_none() && !shared.done.load(Ordering::SeqCst) {
                p = shared.moved.wait(p).unwrap_or_else(|p| p.into_inner());
            }
            if p.decoded == sent {
                return match &p.ended {
                    Some(Ok(())) => {
                        p.served_in = Some(shared.started.elapsed());
                        Served::All
                    }
                    Some(Err(_)) => Served::Failed,
                    // The restore returned before the decoder ended.
                    None => Served::Left,
                };
            }
            p.decoded
        };
        // SAFETY: bytes the decoder has published (see `Stream`); it never writes them again.
        let part = unsafe { std::slice::from_raw_parts(shared.stream.ptr.add(sent), decoded - sent) };
        if f.write_all(part).is_err() {
            return Served::Left;
        }
        sent = decoded;
    }
}
