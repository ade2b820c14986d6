//! Prometheus metrics: the recorder (installed once per process), the HTTP middleware that
//! counts requests and times them per route, and `GET /metrics` in the Prometheus text format.
//!
//! `/metrics` is served on the app's own listen address (`--listen`, loopback by default) for a
//! scraper on the host; the public nginx answers 404 for it (nginx/nginx.conf.template). The
//! service layer's own metrics (provisioning, pool, libvirt and nginx errors, wakes and sleeps)
//! are named in `service::telemetry`.
use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use app::state::AppState;

/// Counter: HTTP requests by `method`, `route` (the matched route template) and `status` class.
pub const HTTP_REQUESTS: &str = "vmw_http_requests_total";
/// Histogram: time to the response's head, seconds, by the same labels.
pub const HTTP_SECONDS: &str = "vmw_http_request_duration_seconds";

/// The route label of requests no route matched (unknown paths, static files): never the raw
/// path, so scanners cannot grow the label set.
const UNMATCHED: &str = "unmatched";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use. Every `*_seconds` metric is a histogram
/// with `service::telemetry::DURATION_BUCKETS`.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), service::telemetry::DURATION_BUCKETS)
            .expect("the bucket list is not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed: /metrics shows nothing");
        }
        describe_counter!(HTTP_REQUESTS, "HTTP requests, by method, matched route and status class");
        describe_histogram!(HTTP_SECONDS, Unit::Seconds, "Time to the response's head, by method, matched route and status class");
        service::telemetry::describe();
        handle
    })
}

/// A bounded method label: the standard ones by name, anything else `other`.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn status_class(s: StatusCode) -> &'static str {
    match s.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The route template as a label; axum's name for a nested service's tail becomes `{*rest}`.
fn route_label(matched: Option<&MatchedPath>) -> String {
    match matched {
        Some(p) => p.as_str().replace("{*__private__axum_nest_tail_param}", "{*rest}"),
        None => UNMATCHED.to_owned(),
    }
}

/// Middleware (a `Router::layer`, so routing has run and `MatchedPath` is known): counts and
/// times every request.
pub async fn track(req: Request, next: Next) -> Response {
    let route = route_label(req.extensions().get::<MatchedPath>());
    let method = method_label(req.method());
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = status_class(resp.status());
    counter!(HTTP_REQUESTS, "method" => method, "route" => route.clone(), "status" => status).increment(1);
    histogram!(HTTP_SECONDS, "method" => method, "route" => route, "status" => status).record(started.elapsed().as_secs_f64());
    resp
}

/// `GET /metrics`: the gauges read from the database are refreshed, then everything rendered.
pub async fn render(State(state): State<AppState>) -> Response {
    if let Some(h) = &state.hosting {
        if let Err(err) = h.publish_gauges().await {
            tracing::warn!(%err, "metrics: could not count hostings");
        }
    }
    let handle = handle();
    handle.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_closed_sets() {
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        assert_eq!(status_class(StatusCode::NO_CONTENT), "2xx");
        assert_eq!(status_class(StatusCode::TOO_MANY_REQUESTS), "4xx");
        assert_eq!(status_class(StatusCode::INSUFFICIENT_STORAGE), "5xx");
        assert_eq!(route_label(None), "unmatched");
    }
}
