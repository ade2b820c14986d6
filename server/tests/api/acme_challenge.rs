//! The ACME HTTP-01 answers: served while an order waits for them, by any replica (they live in
//! the database), and nothing else under that path.
use reqwest::StatusCode;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_published_challenge_is_answered_until_it_is_withdrawn() {
    let app = spawn_app().await;
    let url = app.url("/.well-known/acme-challenge/tok-EN_123");
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    service::store::acme_challenges::publish(&app.db, "tok-EN_123", "tok-EN_123.thumbprint").await.unwrap();
    let res = app.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/plain");
    assert_eq!(res.text().await.unwrap(), "tok-EN_123.thumbprint");
    service::store::acme_challenges::withdraw(&app.db, "tok-EN_123").await.unwrap();
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    for bad in ["..%2Fetc", "a.b", "%00"] {
        let res = app.client.get(app.url(&format!("/.well-known/acme-challenge/{bad}"))).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{bad}");
    }
}
