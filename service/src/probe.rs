//! The one HTTP probe: "what status does GET this URL answer?", for readiness (a VM's web
//! server), routes through nginx and nginx's configuration generation. What answers is not
//! trusted (a VM is its tenant's): redirects are never followed, no proxy from the environment
//! is used (every probe goes to the address it names, loopback here), bodies are capped.
use std::sync::LazyLock;
use std::time::Duration;

/// One client for every probe. No idle connections are kept: each probe opens its own
/// connection, so an answer always comes from what listens now (e.g. nginx after a reload).
static CLIENT: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_max_idle_per_host(0)
        .user_agent("vm-webhoster-probe")
        .build()
        .expect("the probe's HTTP client builds (no TLS roots or proxies are loaded)")
});

/// The largest body `get_text` reads.
const MAX_BODY: usize = 64 * 1024;

fn request(url: &str, host: Option<&str>, timeout: Duration) -> reqwest::RequestBuilder {
    let mut req = CLIENT.get(url).timeout(timeout);
    if let Some(host) = host {
        req = req.header(reqwest::header::HOST, host);
    }
    req
}

/// The status code of `GET url` (with `Host: host` when given), or None when nothing answered
/// within `timeout` (connect refused, reset, not HTTP, too slow). The body is not read.
pub async fn status(url: &str, host: Option<&str>, timeout: Duration) -> Option<u16> {
    match request(url, host, timeout).send().await {
        Ok(resp) => Some(resp.status().as_u16()),
        Err(err) => {
            tracing::trace!(url, %err, "probe: no answer");
            None
        }
    }
}

/// The status code and body (at most 64 KiB, lossy UTF-8) of `GET url`, all within `timeout`.
pub async fn get_text(url: &str, host: Option<&str>, timeout: Duration) -> Option<(u16, String)> {
    let fut = async {
        let mut resp = request(url, host, timeout).send().await.ok()?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.ok()? {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_BODY {
                body.truncate(MAX_BODY);
                break;
            }
        }
        Some((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(timeout, fut).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A one-shot HTTP server on loopback answering `reply`; returns its URL and what it was sent.
    async fn serve(reply: &'static [u8]) -> (String, tokio::task::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x/", l.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut c, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = c.read(&mut buf).await.unwrap();
            c.write_all(reply).await.unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        (url, task)
    }

    #[tokio::test]
    async fn a_redirect_is_reported_not_followed_and_the_host_header_is_sent() {
        let (url, seen) = serve(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.2:9/\r\nContent-Length: 0\r\n\r\n").await;
        assert_eq!(status(&url, Some("localhost"), Duration::from_secs(5)).await, Some(302));
        let req = seen.await.unwrap().to_ascii_lowercase();
        assert!(req.starts_with("get /x/ http/1.1\r\n"), "{req}");
        assert!(req.contains("\r\nhost: localhost\r\n"), "{req}");
    }

    #[tokio::test]
    async fn bodies_are_read_and_silence_is_no_answer() {
        let (url, _) = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n42").await;
        assert_eq!(get_text(&url, None, Duration::from_secs(5)).await, Some((200, "42".into())));
        // Accepts but never answers: the per-attempt timeout ends the probe.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        let t = std::time::Instant::now();
        assert_eq!(status(&url, None, Duration::from_millis(300)).await, None);
        assert!(t.elapsed() < Duration::from_secs(3));
        drop(l);
        // Nothing listens any more: refused.
        assert_eq!(status(&url, None, Duration::from_secs(2)).await, None);
    }
}
