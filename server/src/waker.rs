//! The waker: every site's backup upstream in nginx, on its own loopback listener.
//!
//! nginx sends a site's request here only when the VM's port refused the connection (nothing was
//! sent to the VM), naming the hosting in `X-Webhoster-Hosting`. A sleeping site is woken and the
//! request held until it runs (`HostingService::visit`), then passed to the VM as it came, and
//! the VM's answer streamed back to nginx, which filters its headers as for any answer of the
//! site (site-proxy.conf). A site that is down for another reason gets 503: nginx shows its
//! site-down page. Not reachable through nginx's own locations; only nginx calls it.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use service::hosting::HostingService;
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
        if let Err(err) = axum::serve(listener, router).await {
            tracing::error!(%err, "the waker stopped");
        }
    })
}

fn site_down(why: &'static str) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, [(header::CACHE_CONTROL, "no-store")], why).into_response()
}

async fn handle(State(w): State<Waker>, req: Request) -> Response {
    let Some(id) = req.headers().get("x-webhoster-hosting").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i32>().ok())
    else {
        return (StatusCode::BAD_REQUEST, "not a site request").into_response();
    };
    let Ok(_held) = w.held.clone().try_acquire_owned() else {
        return site_down("too many requests are waiting for sites to wake");
    };
    let vm = match w.hostings.visit(id, PATIENCE).await {
        Ok(Some(vm)) => vm,
        Ok(None) => return site_down("the site is not running"),
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
