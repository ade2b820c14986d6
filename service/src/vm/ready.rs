//! Readiness: the guest's web server answers HTTP (any status) and its SSH server sends its
//! banner.
//! QEMU's user-mode forwards accept TCP connections even before the guest listens, so a
//! connect alone proves nothing: read an answer.
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::{VmError, VmManager};

const ATTEMPT: Duration = Duration::from_secs(3);

/// The guest's web server answers `GET /` with any HTTP response: a 302 (frameworks, CMSs,
/// "coming soon" pages), a 404 or a 500 is the tenant's page, and the server runs. The redirect
/// is not followed (`probe`): it may name any address. Before the guest listens, QEMU's forward
/// accepts and then drops the connection: no response, not ready.
pub(super) async fn http_answers(bind: IpAddr, port: u16) -> bool {
    let url = format!("http://{}/", SocketAddr::new(bind, port));
    crate::probe::status(&url, Some("localhost"), ATTEMPT).await.is_some()
}

pub(super) async fn ssh_banner(bind: IpAddr, port: u16) -> bool {
    let fut = async {
        let mut s = TcpStream::connect((bind, port)).await.ok()?;
        let mut buf = [0u8; 8];
        s.read_exact(&mut buf).await.ok()?;
        Some(&buf == b"SSH-2.0-")
    };
    tokio::time::timeout(ATTEMPT, fut).await.ok().flatten().unwrap_or(false)
}

/// Waits until the web server (its forward on `bind`) answers (any status) and, when `ssh_port`
/// (with its own address) is given, SSH sends its banner.
pub(super) async fn wait(bind: IpAddr, http_port: u16, ssh_port: Option<(IpAddr, u16)>, timeout: Duration) -> Result<(), VmError> {
    let deadline = Instant::now() + timeout;
    let (mut http, mut ssh) = (false, ssh_port.is_none());
    let (ssh_bind, ssh_port) = ssh_port.map_or((bind, None), |(b, p)| (b, Some(p)));
    loop {
        // Both at once: a restored warm VM answers each within milliseconds.
        let (h, s) = tokio::join!(async { http || http_answers(bind, http_port).await }, async {
            ssh || ssh_banner(ssh_bind, ssh_port.unwrap_or_default()).await
        });
        (http, ssh) = (h, s);
        if http && ssh {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let missing = [(!http).then_some("the web server (HTTP)"), (!ssh).then_some("SSH")]
                .into_iter()
                .flatten()
                .collect();
            return Err(VmError::NotReady { waited_secs: timeout.as_secs(), missing });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl VmManager {
    /// Waits until the guest's web server answers HTTP (any status) and its SSH server sends a banner.
    /// `ssh_port` None: the web server only (a restored VM's sshd is the one that was saved).
    pub async fn wait_ready(&self, http_port: u16, ssh_port: Option<u16>, timeout: Duration) -> Result<(), VmError> {
        wait(self.inner.cfg.http_forward_bind, http_port, ssh_port.map(|p| (self.inner.cfg.forward_bind, p)), timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn ready_only_when_http_answers_and_ssh_sends_its_banner() {
        let web = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ssh = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (wp, sp) = (web.local_addr().unwrap().port(), ssh.local_addr().unwrap().port());
        // Nothing answers yet: a short wait fails and names both.
        let err = wait(LOOPBACK, wp, Some((LOOPBACK, sp)), Duration::from_millis(300)).await.unwrap_err().to_string();
        assert!(err.contains("HTTP") && err.contains("SSH"), "{err}");
        tokio::spawn(async move {
            loop {
                let (mut c, _) = web.accept().await.unwrap();
                let mut b = [0u8; 256];
                let _ = c.read(&mut b).await;
                let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
            }
        });
        tokio::spawn(async move {
            loop {
                let (mut c, _) = ssh.accept().await.unwrap();
                let _ = c.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await;
            }
        });
        wait(LOOPBACK, wp, Some((LOOPBACK, sp)), Duration::from_secs(5)).await.unwrap();
    }

    /// A web server that accepts and closes without a response (QEMU's forward before the
    /// guest listens) is not ready; one whose `/` redirects, is missing or fails is.
    #[tokio::test]
    async fn any_http_status_is_ready_and_a_dropped_connection_is_not() {
        let mute = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mp = mute.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (c, _) = mute.accept().await.unwrap();
                drop(c);
            }
        });
        assert!(wait(LOOPBACK, mp, None, Duration::from_millis(300)).await.is_err());
        for reply in [
            &b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.2:9/elsewhere\r\nContent-Length: 0\r\n\r\n"[..],
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
        ] {
            let web = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let wp = web.local_addr().unwrap().port();
            tokio::spawn(async move {
                loop {
                    let (mut c, _) = web.accept().await.unwrap();
                    let mut b = [0u8; 256];
                    let _ = c.read(&mut b).await;
                    let _ = c.write_all(reply).await;
                }
            });
            let t = Instant::now();
            wait(LOOPBACK, wp, None, Duration::from_secs(2)).await.unwrap();
            assert!(t.elapsed() < Duration::from_secs(1), "ready at the first answer");
        }
    }
}
