//! Wake abuse: one client address cycling through sleeping sites through the real nginx. Each
//! address may wake a few distinct sites a minute (`--wakes-per-client-per-minute`); the next
//! one gets 429 with the site-down page's wording and stays asleep, while another address still
//! wakes it. The refusal is counted in `vmw_wakes_refused_total{reason="client_limit"}`.
use std::net::IpAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{App, M, spawn_with};
use crate::front_door::front_door;

/// A client whose connections come from the loopback address `ip`.
fn from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn state(app: &App, tok: &str, id: i64) -> Value {
    let (s, v) = app.call(M::GET, &format!("/api/v1/hostings/{id}"), tok, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

/// The site's state once its wake (begun by a visit, which may give up waiting on a busy
/// machine while the wake goes on) has ended: `?wait=` holds until no operation runs.
async fn settled_state(app: &App, tok: &str, id: i64) -> Value {
    let (s, v) = app.call(M::GET, &format!("/api/v1/hostings/{id}?wait=30"), tok, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["state"].clone()
}

#[tokio::test]
async fn an_address_waking_too_many_distinct_sites_gets_429_and_the_site_stays_asleep() {
    let app = spawn_with(3, &["--wakes-per-client-per-minute", "2"]).await;
    let tok = app.register("napper").await;
    let mut sites = Vec::new();
    for slug in ["nap-a", "nap-b", "nap-c"] {
        let (s, h) = app.call(M::POST, "/api/v1/hostings?wait=60", &tok, Some(json!({"slug": slug}))).await;
        assert_eq!((s, h["state"].as_str()), (StatusCode::ACCEPTED, Some("running")), "{h}");
        let id = h["id"].as_i64().unwrap();
        let (s, v) = app.call(M::POST, &format!("/api/v1/hostings/{id}/sleep?wait=60"), &tok, None).await;
        assert_eq!((s, v["state"].as_str()), (StatusCode::ACCEPTED, Some("sleeping")), "{v}");
        sites.push((id, slug));
    }
    let front = front_door(&app);
    let five = from("127.0.0.5");
    // Two distinct sites from 127.0.0.5: woken (the test driver's VMs serve nothing, so the
    // visitor then gets nginx's site-down page, but the wake happened).
    for (id, slug) in &sites[..2] {
        let r = five.get(format!("{front}/{slug}/")).send().await.unwrap();
        assert_ne!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{slug}");
        assert_eq!(settled_state(&app, &tok, *id).await, "running", "{slug} woke");
    }
    // A third: refused, with the site-down page's wording, and it stays asleep.
    let (c, slug_c) = sites[2];
    let r = five.get(format!("{front}/{slug_c}/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("60"));
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let body = r.text().await.unwrap();
    assert!(body.contains("This site is not running right now") && body.contains("too many sleeping sites"), "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v = state(&app, &tok, c).await;
    assert_eq!((v["state"].as_str(), v["operation"].as_str()), (Some("sleeping"), None), "not woken: {v}");
    // The same address still reaches the sites it woke.
    let r = five.get(format!("{front}/{}/", sites[0].1)).send().await.unwrap();
    assert_ne!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another address wakes it.
    let six = from("127.0.0.6");
    let r = six.get(format!("{front}/{slug_c}/")).send().await.unwrap();
    assert_ne!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(settled_state(&app, &tok, c).await, "running");
    // Counted on the app's own /metrics.
    let m = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let refused = m
        .lines()
        .find(|l| l.starts_with("vmw_wakes_refused_total{") && l.contains("reason=\"client_limit\""))
        .and_then(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok());
    assert!(refused.is_some_and(|n| n >= 1.0), "{refused:?}");
}
