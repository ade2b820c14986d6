//! The waker: every site's backup upstream in nginx, on its own loopback listener.
//!
//! nginx sends a site's request here only when the VM's port refused the connection (nothing was
//! sent to the VM), naming the hosting in `X-Webhoster-Hosting`. A sleeping site is woken and the
//! request held until it runs (`HostingService::visit`), then passed to the VM as it came, and
//! the VM's answer streamed back to nginx, which filters its headers as for any answer of the
//! site (site-proxy.conf). A site that is down for another reason gets 503: nginx shows its
//! site-down page. Not reachable through nginx's own locations; only nginx calls it.
//!
//! Each client address (nginx's `X-Real-IP`) may wake a few distinct sleeping sites a minute
//! (`--wakes-per-client-per-minute`): past that it gets 429 with the site-down page's wording,
//! and the site stays asleep (`HostingService::visit_from`).
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use service::hosting::{HostingService, Visit};
use tokio::sync::Semaphore;

/// How long a request waits for its site (a cold boot after a power-off takes up to a minute
/// under TCG; nginx's own proxy_read_timeout is 60 s).
const PATIENCE: Duration = Duration::from_secs(55);
/// Requests held at once, all sites together; past it: 503 at once.
const MAX_HELD: usize = 1024;

#[derive(Clone)]
struct Waker {
    hostings: HostingService,
    client: reqwest::Client,
    held: Arc<Semaphore>,
}

/// Serves the waker on `listener` until the process ends.
pub fn spawn(listener: tokio::net::TcpListener, hostings: HostingService) -> tokio::task::JoinHandle<()> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .expect("a plain HTTP client builds");
    let w = Waker { hostings, client, held: Arc::new(Semaphore::new(MAX_HELD)) };
    let router = axum::Router::new().fallback(handle).with_state(w);
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await {
            tracing::error!(%err, "the waker stopped");
        }
    })
}

fn site_down(why: &'static str) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, [(header::CACHE_CONTROL, "no-store")], why).into_response()
}

/// The site-down page (nginx's `/__vmw/site-down.html`, which nginx shows for our 503) for a
/// site not woken because its visitor's address woke too many this minute. nginx passes a 429
/// on as it is, so the page is ours.
const TOO_MANY_WAKES: &str = concat!(
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n",
    "<title>Site unavailable</title>\n",
    "<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:5rem auto;padding:0 1rem;color:#334155}</style>\n",
    "</head><body>\n<h1>This site is not running right now</h1>\n",
    "<p>It is asleep, and too many sleeping sites were woken from your address in the last minute. Try again in a minute.</p>\n",
    "</body></html>\n"
);

fn too_many_wakes() -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::CACHE_CONTROL, "no-store"), (header::RETRY_AFTER, "60"), (header::CONTENT_TYPE, "text/html; charset=utf-8")],
        TOO_MANY_WAKES,
    )
        .into_response()
}

async fn handle(State(w): State<Waker>, req: Request) -> Response {
    let Some(id) = req.headers().get("x-webhoster-hosting").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i32>().ok())
    else {
        return (StatusCode::BAD_REQUEST, "not a site request").into_response();
    };
    let Ok(_held) = w.held.clone().try_acquire_owned() else {
        service::telemetry::record_wake_refused("held_limit");
        return site_down("too many requests are waiting for sites to wake");
    };
    // nginx names the visitor (X-Real-IP); without nginx in front, the peer is the client.
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let Some(client) = app::auth::client_from(peer, Some(req.headers())) else {
        return site_down("the site is not running");
    };
    let vm = match w.hostings.visit_from(id, PATIENCE, client).await {
        Ok(Visit::Up(vm)) => vm,
        Ok(Visit::TooManyWakes) => return too_many_wakes(),
        Ok(Visit::Down) => return site_down("the site is not running"),
        Err(err) => {
            tracing::warn!(hosting_id = id, %err, "a held request could not learn its site's state");
            return site_down("the site is not running");
        }
    };
    forward(&w.client, vm, req).await
}

/// Hop-by-hop headers (RFC 9110 7.6.1) stay on their own hop.
fn end_to_end(h: &HeaderMap) -> HeaderMap {
    const HOP: [HeaderName; 6] = [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
    ];
    let mut out = h.clone();
    for name in HOP.iter() {
        out.remove(name);
    }
    out.remove("keep-alive");
    out.remove("proxy-connection");
    out
}

/// Passes the held request to the VM and streams its answer back.
async fn forward(client: &reqwest::Client, vm: SocketAddr, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!("http://{vm}{path}");
    let sent = client
        .request(parts.method, url)
        .headers(end_to_end(&parts.headers))
        .body(reqwest::Body::wrap_stream(body.into_data_stream()))
        .send()
        .await;
    match sent {
        Ok(r) => {
            let mut resp = Response::builder().status(r.status());
            if let Some(h) = resp.headers_mut() {
                *h = end_to_end(r.headers());
            }
            resp.body(Body::from_stream(r.bytes_stream())).unwrap_or_else(|_| site_down("the site's answer was malformed"))
        }
        Err(err) => {
            tracing::info!(%vm, %err, "a woken site did not answer its held request");
            (StatusCode::BAD_GATEWAY, "the site did not answer").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    /// The 429 page says what nginx's site-down page says, and why.
    #[test]
    fn the_too_many_wakes_page_has_the_site_down_pages_wording() {
        let down = include_str!("../../nginx/site-down.html");
        for line in ["<title>Site unavailable</title>", "<h1>This site is not running right now</h1>"] {
            assert!(down.contains(line) && super::TOO_MANY_WAKES.contains(line), "{line}");
        }
        assert!(super::TOO_MANY_WAKES.contains("too many sleeping sites were woken from your address"));
    }
}
