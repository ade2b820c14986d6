use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::path::Path;

/// Windows are cut from 10000..32000: below Linux's ephemeral range (32768 and up), so no
/// `free_port()` and no outgoing connection of a parallel test lands in one.
const FIRST: u16 = 10_000;
const END: u16 = 32_000;
/// Every window starts at a multiple of this; a window is at most this long.
const SLOT: u16 = 100;
/// Machine-wide on purpose (not TMPDIR): ports are shared by every test run on the host.
const LOCK_DIR: &str = "/tmp/vmw-test-ports";

/// A range of ports no other test on this machine holds while this value lives: each window
/// has a lock file that its holder keeps `flock`ed, so windows are unique across nextest's
/// test processes, across threads of one `cargo test` process and across concurrent runs; the
/// lock goes away with the process, even when it is killed. For `http_port_base`/`ssh_port_base`.
pub struct PortWindow {
    base: u16,
    len: u16,
    _lock: File,
}

impl PortWindow {
    /// The first free window of `len` ports (1..=100), searched from a random one.
    pub fn claim(len: u16) -> Self {
        assert!((1..=SLOT).contains(&len), "a port window is 1 to {SLOT} ports, not {len}");
        let dir = Path::new(LOCK_DIR);
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {LOCK_DIR}: {e}"));
        {
            use std::os::unix::fs::PermissionsExt;
            // Other users' test runs lock here too (best effort: the owner may be someone else).
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777));
        }
        let slots = (END - FIRST) / SLOT;
        let start = (uuid::Uuid::new_v4().as_u128() % slots as u128) as u16;
        for i in 0..slots {
            let base = FIRST + (start + i) % slots * SLOT;
            let path = dir.join(format!("{base}.lock"));
            let file = {
                use std::os::unix::fs::OpenOptionsExt;
                OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o666).open(&path)
            }
            // A lock file another user made: a read-only handle locks just as well.
            .or_else(|_| File::open(&path));
            if let Ok(file) = file
                && file.try_lock().is_ok()
            {
                return PortWindow { base, len, _lock: file };
            }
        }
        panic!("all {slots} port windows in {FIRST}..{END} are held by running tests (locks in {LOCK_DIR})");
    }

    pub fn base(&self) -> u16 {
        self.base
    }

    #[allow(clippy::len_without_is_empty)] // never empty: `claim` refuses 0
    pub fn len(&self) -> u16 {
        self.len
    }

    pub fn range(&self) -> Range<u16> {
        self.base..self.base + self.len
    }
}

/// A loopback port that was free when asked (for a listener the code under test binds itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_held_at_the_same_time_never_overlap() {
        let held: Vec<PortWindow> = (0..20).map(|_| PortWindow::claim(SLOT)).collect();
        for (i, a) in held.iter().enumerate() {
            assert!(a.base() >= FIRST && a.range().end <= END, "{:?}", a.range());
            for b in &held[i + 1..] {
                assert!(a.range().end <= b.base() || b.range().end <= a.base(), "{:?} overlaps {:?}", a.range(), b.range());
            }
        }
    }

    #[test]
    fn a_held_window_is_locked_for_other_processes() {
        let w = PortWindow::claim(20);
        assert_eq!(w.len(), 20);
        // Another open file description, as another process would have: the lock refuses it.
        let other = File::open(Path::new(LOCK_DIR).join(format!("{}.lock", w.base()))).unwrap();
        assert!(other.try_lock().is_err(), "window {} is held", w.base());
    }
}
