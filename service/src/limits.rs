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

#[cfg(test)]
mod tests {
    #[test]
    fn the_open_files_limit_is_raised_to_the_hard_limit() {
        let (soft, hard) = super::raise_open_files().unwrap();
        assert_eq!(soft, hard);
    }
}
