//! nginx's worker user: started as root, nginx runs its workers as `www-data`, and what they
//! open themselves (certificates named per handshake, visits logs with a variable path) must be
//! theirs to read or write.
use std::ffi::CString;

/// The user nginx's workers run as when nginx is started as root (`user www-data;`).
pub(super) const WORKER_USER: &str = "www-data";

/// (uid, gid) of nginx's worker user when we run as root; None otherwise (the workers then run
/// as we do and need nothing handed over) or when the user does not exist.
pub fn worker_ids() -> Option<(u32, u32)> {
    if !super::render::is_root() {
        return None;
    }
    user_ids(WORKER_USER)
}

/// A user's (uid, primary gid) from the passwd database (getpwnam_r: thread-safe).
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain data; getpwnam_r writes into `pwd` and `buf` (its size given)
    // and sets `result` to &pwd on success or null; nothing is kept past this call.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe { libc::getpwnam_r(cname.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    (rc == 0 && !result.is_null()).then_some((pwd.pw_uid, pwd.pw_gid))
}

#[cfg(test)]
mod tests {
    #[test]
    fn users_are_looked_up_by_name() {
        assert_eq!(super::user_ids("root"), Some((0, 0)));
        assert_eq!(super::user_ids("no-such-user-vmw"), None);
        assert_eq!(super::user_ids("a\0b"), None);
    }
}
