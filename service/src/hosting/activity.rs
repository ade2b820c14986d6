//! When a site was last visited: its nginx visits log's modification time (a line per request
//! through nginx), and whether an SSH session to it is open now (an established TCP connection
//! on its SSH forward, read from /proc/net/tcp and tcp6). The app's own readiness probes go to
//! the VM's ports directly and are short: they never keep a site awake.
use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;

/// The modification time of a file in unix ms, if it exists.
pub(super) async fn modified_ms(path: &Path) -> Option<i64> {
    let m = tokio::fs::metadata(path).await.ok()?.modified().ok()?;
    Some(m.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64)
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

#[cfg(test)]
mod tests {
    use super::*;

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
