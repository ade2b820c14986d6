//! Session cookies are `Secure` whenever the dashboard is served over HTTPS. nginx tells the
//! app the scheme the browser used (`X-Forwarded-Proto`, set by nginx on every request, never
//! passed on from the client); a cookie set over HTTPS then never travels over plain HTTP.
//! `--secure-cookies` marks them Secure on every answer (a TLS front that is not our nginx).
use axum::body::Body;
use axum::http::{HeaderValue, Request, header};
use axum::middleware::Next;
use axum::response::Response;

pub async fn mark(req: Request<Body>, next: Next) -> Response {
    let https = req.headers().get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let mut res = next.run(req).await;
    if https {
        secure_all(res.headers_mut());
    }
    res
}

/// Adds `; Secure` to every `Set-Cookie` that lacks it.
fn secure_all(h: &mut axum::http::HeaderMap) {
    let cookies: Vec<HeaderValue> = h.get_all(header::SET_COOKIE).iter().cloned().collect();
    if cookies.is_empty() {
        return;
    }
    h.remove(header::SET_COOKIE);
    for c in cookies {
        let text = c.to_str().unwrap_or("");
        let secure = text.split(';').skip(1).any(|a| a.trim().eq_ignore_ascii_case("secure"));
        let value = if secure || text.is_empty() { c } else { HeaderValue::from_str(&format!("{text}; Secure")).unwrap_or(c) };
        h.append(header::SET_COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn cookies(proto: Option<&str>) -> Vec<String> {
        let app = Router::new()
            .route(
                "/",
                get(|| async {
                    let mut r = Response::new(Body::empty());
                    r.headers_mut().append(header::SET_COOKIE, HeaderValue::from_static("vmw_session=a; HttpOnly; Path=/"));
                    r.headers_mut().append(header::SET_COOKIE, HeaderValue::from_static("other=b; Secure"));
                    r
                }),
            )
            .layer(axum::middleware::from_fn(mark));
        let mut req = Request::builder().uri("/");
        if let Some(p) = proto {
            req = req.header("x-forwarded-proto", p);
        }
        let res = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        res.headers().get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
    }

    #[tokio::test]
    async fn cookies_set_over_https_are_secure_and_over_http_unchanged() {
        assert_eq!(cookies(Some("https")).await, ["vmw_session=a; HttpOnly; Path=/; Secure", "other=b; Secure"]);
        assert_eq!(cookies(Some("http")).await, ["vmw_session=a; HttpOnly; Path=/", "other=b; Secure"]);
        assert_eq!(cookies(None).await, ["vmw_session=a; HttpOnly; Path=/", "other=b; Secure"]);
    }
}
