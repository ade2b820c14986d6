//! When a site was last visited: its nginx visits log's modification time (a line per request
//! through nginx), and whether an SSH session to it is open now: an established TCP connection
//! on its SSH forward whose client has sent at least an SSH identification line's worth of
//! bytes (the kernel's `tcp_info.bytes_received`, read through sock_diag netlink like `ss -ti`).
//! A connection that never spoke (a scan left open, a silent client) keeps no site awake. Where
//! sock_diag is not available, every established connection counts (/proc/net/tcp and tcp6).
//! The app's own readiness probes go to the VM's ports directly and are short: they never keep
//! a site awake.
use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;

/// The modification time of a file in unix ms, if it exists.
pub(super) async fn modified_ms(path: &Path) -> Option<i64> {
    let m = tokio::fs::metadata(path).await.ok()?.modified().ok()?;
    Some(m.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64)
}

/// The fewest bytes a client sends before it is an SSH session: `SSH-2.0-x\r\n`.
const MIN_SPOKEN: u64 = 11;

/// The local ports on `bind` with an SSH session open now: an established TCP connection whose
/// client has sent at least [`MIN_SPOKEN`] bytes.
pub(super) async fn ssh_session_ports(bind: IpAddr) -> HashSet<u16> {
    match tokio::task::spawn_blocking(move || diag::spoken_ports(bind, MIN_SPOKEN)).await {
        Ok(Ok(ports)) => ports,
        Ok(Err(err)) => {
            tracing::debug!(%err, "sock_diag unavailable: every established connection counts as an SSH session");
            established_ports(bind).await
        }
        Err(_) => established_ports(bind).await,
    }
}

/// The local ports on `bind` with an established TCP connection now.
pub(super) async fn established_ports(bind: IpAddr) -> HashSet<u16> {
    let mut out = HashSet::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = tokio::fs::read_to_string(f).await {
            out.extend(parse_established(&text, bind));
        }
    }
    out
}

/// `/proc/net/tcp` lines: `sl local_address rem_address st ...`, addresses as hex `ADDR:PORT`
/// (the address in the kernel's byte order: 127.0.0.1 is 0100007F), state 01 = ESTABLISHED.
fn parse_established(text: &str, bind: IpAddr) -> impl Iterator<Item = u16> + '_ {
    text.lines().skip(1).filter_map(move |l| {
        let mut f = l.split_whitespace();
        let local = f.nth(1)?;
        let state = f.nth(1)?;
        if state != "01" {
            return None;
        }
        let (addr, port) = local.split_once(':')?;
        (parse_addr(addr)? == bind).then(|| u16::from_str_radix(port, 16).ok()).flatten()
    })
}

fn parse_addr(hex: &str) -> Option<IpAddr> {
    match hex.len() {
        8 => Some(IpAddr::from(u32::from_str_radix(hex, 16).ok()?.to_le_bytes())),
        32 => {
            let mut b = [0u8; 16];
            for (i, chunk) in b.chunks_mut(4).enumerate() {
                let w = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&w.to_le_bytes());
            }
            let v6 = std::net::Ipv6Addr::from(b);
            // A v4 address on a dual-stack socket (::ffff:127.0.0.1) is that v4 address.
            Some(v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)))
        }
        _ => None,
    }
}

/// The kernel's socket table through NETLINK_SOCK_DIAG (what `ss -ti` reads): established TCP
/// sockets with their `tcp_info`.
mod diag {
    use std::collections::HashSet;
    use std::io;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;
    const INET_DIAG_INFO: u16 = 2;
    const TCP_ESTABLISHED: u32 = 1;
    /// nlmsghdr (16) + inet_diag_msg (72).
    const HDR: usize = 16;
    const MSG: usize = 72;
    /// `tcp_info.tcpi_bytes_received` (linux/tcp.h; since Linux 4.1).
    const BYTES_RECEIVED_AT: usize = 128;

    fn request(family: u8) -> Vec<u8> {
        let mut r = Vec::with_capacity(HDR + 56);
        r.extend_from_slice(&((HDR + 56) as u32).to_ne_bytes());
        r.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        r.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
        r.extend_from_slice(&1u32.to_ne_bytes()); // seq
        r.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
        // inet_diag_req_v2: family, protocol, ext (INET_DIAG_INFO), pad, states, sockid (48 bytes: any)
        r.extend_from_slice(&[family, libc::IPPROTO_TCP as u8, 1 << (INET_DIAG_INFO - 1), 0]);
        r.extend_from_slice(&(1u32 << TCP_ESTABLISHED).to_ne_bytes());
        r.extend_from_slice(&[0u8; 48]);
        r
    }

    /// Local ports on `bind` of established TCP sockets that received at least `min` bytes.
    pub(super) fn spoken_ports(bind: IpAddr, min: u64) -> io::Result<HashSet<u16>> {
        let family = if bind.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 } as u8;
        let mut out = HashSet::new();
        // A v4 bind is also reached through dual-stack v6 sockets (::ffff:a.b.c.d).
        let families: &[u8] = if bind.is_ipv4() { &[family, libc::AF_INET6 as u8] } else { &[family] };
        for &f in families {
            dump(f, |local, port, received| {
                if local == bind && received >= min {
                    out.insert(port);
                }
            })?;
        }
        Ok(out)
    }

    struct Fd(i32);
    impl Drop for Fd {
        fn drop(&mut self) {
            // SAFETY: our own open descriptor, closed once.
            unsafe { libc::close(self.0) };
        }
    }

    fn dump(family: u8, mut each: impl FnMut(IpAddr, u16, u64)) -> io::Result<()> {
        // SAFETY: plain socket calls on a descriptor we own; buffers outlive the calls.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, libc::NETLINK_SOCK_DIAG) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = Fd(fd);
        let tv = libc::timeval { tv_sec: 1, tv_usec: 0 };
        // SAFETY: as above.
        unsafe {
            libc::setsockopt(fd.0, libc::SOL_SOCKET, libc::SO_RCVTIMEO, (&tv as *const libc::timeval).cast(), std::mem::size_of::<libc::timeval>() as u32);
        }
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        let req = request(family);
        // SAFETY: as above.
        let sent = unsafe {
            libc::sendto(fd.0, req.as_ptr().cast(), req.len(), 0, (&sa as *const libc::sockaddr_nl).cast(), std::mem::size_of::<libc::sockaddr_nl>() as u32)
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: as above.
            let n = unsafe { libc::recv(fd.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut msgs = &buf[..n as usize];
            if msgs.is_empty() {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "sock_diag: empty answer"));
            }
            while msgs.len() >= HDR {
                let len = u32::from_ne_bytes(msgs[0..4].try_into().unwrap()) as usize;
                let kind = u16::from_ne_bytes(msgs[4..6].try_into().unwrap());
                if len < HDR || len > msgs.len() {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "sock_diag: bad message length"));
                }
                match kind {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => return Err(io::Error::other("sock_diag: the kernel refused the dump")),
                    SOCK_DIAG_BY_FAMILY => {
                        if let Some((ip, port, received)) = parse(&msgs[HDR..len]) {
                            each(ip, port, received);
                        }
                    }
                    _ => {}
                }
                let next = (len + 3) & !3;
                if next >= msgs.len() {
                    break;
                }
                msgs = &msgs[next..];
            }
        }
    }

    /// One inet_diag_msg with its attributes: the local address, port and bytes received.
    pub(super) fn parse(m: &[u8]) -> Option<(IpAddr, u16, u64)> {
        if m.len() < MSG {
            return None;
        }
        let family = m[0];
        // sockid: sport (be16) at 4, dport at 6, src[16] at 8, dst[16] at 24.
        let port = u16::from_be_bytes([m[4], m[5]]);
        let ip = if family == libc::AF_INET as u8 {
            IpAddr::V4(Ipv4Addr::new(m[8], m[9], m[10], m[11]))
        } else {
            let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(&m[8..24]).ok()?);
            v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6))
        };
        let mut attrs = &m[MSG..];
        let mut received = 0;
        while attrs.len() >= 4 {
            let alen = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
            let akind = u16::from_ne_bytes([attrs[2], attrs[3]]);
            if alen < 4 || alen > attrs.len() {
                break;
            }
            if akind == INET_DIAG_INFO && alen >= 4 + BYTES_RECEIVED_AT + 8 {
                let at = 4 + BYTES_RECEIVED_AT;
                received = u64::from_ne_bytes(attrs[at..at + 8].try_into().ok()?);
            }
            let next = (alen + 3) & !3;
            attrs = attrs.get(next..).unwrap_or(&[]);
        }
        Some((ip, port, received))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the kernel: a silent connection is no session; one whose client spoke is.
    #[tokio::test]
    async fn a_connection_is_a_session_once_its_client_has_spoken() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let _silent = tokio::net::TcpStream::connect((lo, port)).await.unwrap();
        let (mut s1, _) = l.accept().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(established_ports(lo).await.contains(&port), "established");
        assert!(!ssh_session_ports(lo).await.contains(&port), "but silent: no session");
        let mut talker = tokio::net::TcpStream::connect((lo, port)).await.unwrap();
        let (mut s2, _) = l.accept().await.unwrap();
        talker.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await.unwrap();
        let mut b = [0u8; 21];
        s2.read_exact(&mut b).await.unwrap();
        assert!(ssh_session_ports(lo).await.contains(&port), "a client that spoke");
        let _ = s1.write_all(b"x").await;
    }

    #[test]
    fn established_connections_on_the_forward_address_are_found_and_listeners_are_not() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:6B6D 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n\
   1: 0100007F:6B6D 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n\
   2: 0200007F:6B6E 0100007F:D2F1 01 00000000:00000000 00:00000000 00000000     0        0 3 1\n";
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(parse_established(text, lo).collect::<Vec<_>>(), vec![0x6B6D]);
        let v6 = "  sl local rem st\n   0: 0000000000000000FFFF00000100007F:6B6D 0000000000000000FFFF00000100007F:D2F0 01 0\n   1: 00000000000000000000000001000000:0016 00000000000000000000000001000000:D2F0 01 0\n";
        assert_eq!(parse_established(v6, lo).collect::<Vec<_>>(), vec![0x6B6D]);
        let one: IpAddr = "::1".parse().unwrap();
        assert_eq!(parse_established(v6, one).collect::<Vec<_>>(), vec![22]);
    }
}
