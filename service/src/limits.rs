//! Process limits the service needs at scale.

/// Raises the soft limit of open files to the hard one: every sleeping site's SSH port is a
/// listening socket of this process (a thousand sleeping sites need a thousand descriptors, past
/// the usual soft limit of 1024). Returns (soft, hard) as they are afterwards.
pub fn raise_open_files() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit write or read the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        lim = want;
    }
    Ok((lim.rlim_cur as u64, lim.rlim_max as u64))
}

/// Makes freed large blocks go straight back to the OS (glibc's malloc; elsewhere nothing to
/// do). glibc raises its mmap threshold to the size of the largest block freed (up to 32 MiB), so
/// after the first password hash (Argon2id's 19 MiB block) later ones came from malloc arenas and
/// stayed there when freed: the app's anonymous memory grew ~39 MiB per sign-up (a hash for the
/// account, one for the login; measured 5 -> 142 MiB after four), up to the arena count (8 per
/// core). A fixed threshold of 1 MiB turns that adjustment off: 5.8 MiB after the same four.
/// Returns whether the setting was taken.
pub fn return_large_frees_to_the_os() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets one of malloc's parameters.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    /// The process's resident anonymous memory (KiB), from /proc/self/status.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn rss_anon_kib() -> u64 {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = s.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Blocks the size of a password hash's, each made and freed on a thread of its own (as
    /// the hashing threads and the runtime's do), leave nothing resident behind.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_hash_sized_blocks_are_given_back() {
        assert!(super::return_large_frees_to_the_os());
        let before = rss_anon_kib();
        for _ in 0..6 {
            std::thread::spawn(|| {
                let mut block = vec![0u8; 19 << 20];
                for i in (0..block.len()).step_by(4096) {
                    block[i] = 1;
                }
                std::hint::black_box(&block);
            })
            .join()
            .unwrap();
        }
        let after = rss_anon_kib();
        assert!(after < before + 8 * 1024, "{} KiB resident after six freed 19 MiB blocks (before: {before} KiB)", after);
    }

    #[test]
    fn the_open_files_limit_is_raised_to_the_hard_limit() {
        let (soft, hard) = super::raise_open_files().unwrap();
        assert_eq!(soft, hard);
    }
}
