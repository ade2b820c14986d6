//! `/metrics` on the app's own address: per-route request counts (route templates, never raw
//! paths), hostings by state from the database, provisioning step histograms, the wake and
//! sleep counters; and the real nginx in front answers 404 for it on every server.
use reqwest::StatusCode;

use super::{App, M, spawn};
use crate::front_door::front_door;

/// The value of the sample `name{labels...}` (labels in any order; extra labels not allowed).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
        if n != name {
            return None;
        }
        let mut got: Vec<(&str, &str)> = rest
            .strip_suffix('}')?
            .split(',')
            .filter(|p| !p.is_empty())
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((k, v.trim_matches('"')))
            })
            .collect();
        let mut want = labels.to_vec();
        got.sort_unstable();
        want.sort_unstable();
        (got == want).then(|| value.parse().ok())?
    })
}

async fn scrape(app: &App) -> String {
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    r.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_requests_per_route_and_hostings_per_state() {
    let app = spawn(3).await;
    let (ann, bob) = (app.register("metered").await, app.register("counted").await);
    let a = app.create_host(&ann).await;
    app.wait_for(&ann, "running").await;
    let b = app.create_host(&bob).await;
    app.wait_for(&bob, "running").await;
    app.act(&bob, "stop", "stopped").await;

    let route = [("method", "GET"), ("route", "/api/v1/hostings/{id}"), ("status", "2xx")];
    let before = sample(&scrape(&app).await, "vmw_http_requests_total", &route).unwrap_or(0.0);
    for (tok, id) in [(&ann, a), (&bob, b), (&ann, a)] {
        let (s, _) = app.call(M::GET, &format!("/api/v1/hostings/{id}"), tok, None).await;
        assert_eq!(s, StatusCode::OK);
    }
    // Someone else's hosting is a 404, counted under the same route as a 4xx.
    let (s, _) = app.call(M::GET, &format!("/api/v1/hostings/{b}"), &ann, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let text = scrape(&app).await;

    assert_eq!(sample(&text, "vmw_http_requests_total", &route), Some(before + 3.0), "{text}");
    let not_found = [("method", "GET"), ("route", "/api/v1/hostings/{id}"), ("status", "4xx")];
    assert!(sample(&text, "vmw_http_requests_total", &not_found).is_some_and(|n| n >= 1.0), "{text}");
    assert!(sample(&text, "vmw_http_request_duration_seconds_count", &route).is_some_and(|n| n >= 3.0), "{text}");
    // Route templates only: no hosting id or user name ever becomes a label.
    assert!(!text.contains(&format!("route=\"/api/v1/hostings/{a}\"")), "{text}");

    // Hostings by state, counted from the database at the scrape.
    assert_eq!(sample(&text, "vmw_hostings", &[("state", "running")]), Some(1.0), "{text}");
    assert_eq!(sample(&text, "vmw_hostings", &[("state", "stopped")]), Some(1.0), "{text}");
    assert_eq!(sample(&text, "vmw_hostings", &[("state", "failed")]), Some(0.0), "{text}");
    assert_eq!(sample(&text, "vmw_pool_spares", &[("tier", "paused")]), Some(0.0), "{text}");
    app.call(M::DELETE, "/api/v1/host?wait=60", &bob, None).await;
    let text = scrape(&app).await;
    assert_eq!(sample(&text, "vmw_hostings", &[("state", "stopped")]), Some(0.0), "{text}");
    assert_eq!(sample(&text, "vmw_hostings", &[("state", "running")]), Some(1.0), "{text}");

    // Each provisioning step of the two creates was timed (a histogram, with buckets).
    let steps = [("step", "define_domain"), ("result", "ok")];
    assert!(
        sample(&text, "vmw_provision_step_duration_seconds_count", &steps).is_some_and(|n| n >= 2.0),
        "{text}"
    );
    assert!(text.contains("vmw_provision_step_duration_seconds_bucket{"), "{text}");
    assert!(sample(&text, "vmw_provision_duration_seconds_count", &[("kind", "cold"), ("result", "ok")]).is_some_and(|n| n >= 2.0), "{text}");
    // nginx refusing a route is counted where the error is made, and the create fails.
    let rejected = |t: &str| sample(t, "vmw_nginx_errors_total", &[("kind", "rejected")]).unwrap_or(0.0);
    let before = rejected(&text);
    app.svc.proxy().inject_invalid_config(true);
    let carl = app.register("refused").await;
    app.create_host(&carl).await;
    app.wait_for(&carl, "failed").await;
    app.svc.proxy().inject_invalid_config(false);
    let text = scrape(&app).await;
    assert!(rejected(&text) >= before + 1.0, "{text}");
    assert_eq!(sample(&text, "vmw_hostings", &[("state", "failed")]), Some(1.0), "{text}");
    assert!(sample(&text, "vmw_provision_step_duration_seconds_count", &[("step", "add_route"), ("result", "error")]).is_some_and(|n| n >= 1.0), "{text}");

    // Wakes and sleeps exist before anything wakes or sleeps.
    for name in ["vmw_wakes_total", "vmw_sleeps_total"] {
        for result in ["ok", "error"] {
            assert_eq!(sample(&text, name, &[("result", result)]), Some(0.0), "{name} {result}: {text}");
        }
    }
}

#[tokio::test]
async fn nginx_answers_404_for_metrics_on_every_server() {
    let app = spawn(1).await;
    let tok = app.register("scraper").await;
    app.create_host(&tok).await;
    app.wait_for(&tok, "running").await;
    let door = front_door(&app);
    // The app itself serves them...
    assert!(scrape(&app).await.contains("vmw_http_requests_total"));
    // ...nginx never: the dashboard's names, an unknown host (the default server), and the
    // spellings nginx normalises to /metrics.
    for (path, host) in [
        ("/metrics", "127.0.0.1"),
        ("/metrics", "localhost"),
        ("/metrics?format=prometheus", "127.0.0.1"),
        ("//metrics", "127.0.0.1"),
        ("/%6Detrics", "127.0.0.1"),
        ("/./metrics", "localhost"),
        ("/metrics", "evil.example"),
    ] {
        let r = app.client.get(format!("{door}{path}")).header("host", host).send().await.unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND, "{path} as {host}: {body}");
        assert!(!body.contains("vmw_"), "{path} as {host} leaked metrics: {body}");
    }
    // The rest of the dashboard still goes through (the 404 is only /metrics).
    let r = app.client.get(format!("{door}/api/v1/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
