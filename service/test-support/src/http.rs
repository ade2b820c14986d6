//! HTTP helpers for tests that talk to the application over its REST API (on loopback).
use std::sync::Arc;

use reqwest::cookie::Jar;
use reqwest::{Response, StatusCode, redirect};
use serde_json::Value;

/// A client that keeps its cookies in `jar` and follows no redirects (so tests see them).
pub fn client_with(jar: Arc<Jar>) -> reqwest::Client {
    reqwest::Client::builder().cookie_provider(jar).redirect(redirect::Policy::none()).build().unwrap()
}

/// A client without cookies that follows no redirects.
pub fn no_redirect_client() -> reqwest::Client {
    reqwest::Client::builder().redirect(redirect::Policy::none()).build().unwrap()
}

/// The response's status and its body as JSON (`Value::Null` when the body is not JSON).
pub async fn status_and_json(r: Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The REST API's one error shape: `want` as the status, and `{"error": {"code": code,
/// "message": <not empty>, ...}}` as the body.
pub fn assert_api_error(status: StatusCode, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

/// Sends the request and returns [`status_and_json`] of its response.
pub async fn send(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    status_and_json(req.send().await.unwrap()).await
}

/// [`assert_api_error`] that names `field` as the request field at fault.
pub fn assert_field_error(status: StatusCode, body: &Value, want: StatusCode, code: &str, field: &str) {
    assert_api_error(status, body, want, code);
    assert_eq!(body["error"]["field"], field, "{body}");
}
