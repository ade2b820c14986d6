//! CSRF: state-changing requests from a browser must come from this site. Browsers send
//! `Origin` on cross-site POSTs (and `Sec-Fetch-Site`). Bearer-token requests carry no ambient
//! credentials and are exempt, and so are cookie-less calls of the REST API (`/api/v1/...`,
//! which answers with tokens, never a cookie). The pages' forms and server functions are
//! guarded even without a cookie: a foreign page must not log a visitor into the attacker's
//! account (login CSRF). SameSite=Lax cookies are the second layer.
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub async fn guard(req: Request<Body>, next: Next) -> Response {
    if is_cross_site_write(req.method(), req.uri().path(), req.headers()) {
        tracing::warn!(method = %req.method(), path = req.uri().path(), "refused a cross-site request");
        let body = serde_json::json!({"error": {"code": "csrf", "message": "cross-site request refused"}});
        return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    }
    next.run(req).await
}

pub fn is_cross_site_write(method: &Method, path: &str, h: &HeaderMap) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    let bearer = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("bearer "));
    if bearer {
        return false;
    }
    if h.get(header::COOKIE).is_none() && path.starts_with("/api/v1/") {
        return false; // nothing ambient to abuse, and nothing set (the register/login API calls)
    }
    let host = h.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    if let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let origin_host = origin.split("://").nth(1).unwrap_or("");
        return origin == "null" || !origin_host.eq_ignore_ascii_case(host);
    }
    matches!(h.get("sec-fetch-site").and_then(|v| v.to_str().ok()), Some("cross-site"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn cookie_writes_from_other_origins_are_refused() {
        let evil = headers(&[("cookie", "id=1"), ("host", "site.example"), ("origin", "https://evil.example")]);
        assert!(is_cross_site_write(&Method::POST, "/api/fn/change_password", &evil));
        let same = headers(&[("cookie", "id=1"), ("host", "site.example"), ("origin", "http://site.example")]);
        assert!(!is_cross_site_write(&Method::POST, "/api/fn/change_password", &same));
        let fetch = headers(&[("cookie", "id=1"), ("host", "a"), ("sec-fetch-site", "cross-site")]);
        assert!(is_cross_site_write(&Method::DELETE, "/api/v1/host", &fetch));
        assert!(!is_cross_site_write(&Method::GET, "/api/fn/change_password", &evil), "reads are not writes");
        let bearer = headers(&[("cookie", "id=1"), ("host", "a"), ("origin", "https://evil"), ("authorization", "Bearer vmw_x")]);
        assert!(!is_cross_site_write(&Method::POST, "/api/v1/host", &bearer));
    }

    #[test]
    fn a_foreign_page_cannot_log_a_visitor_in_but_scripts_can_use_the_api() {
        let login_csrf = headers(&[("host", "site.example"), ("origin", "https://evil.example")]);
        assert!(is_cross_site_write(&Method::POST, "/api/fn/login", &login_csrf), "login CSRF needs no cookie");
        assert!(is_cross_site_write(&Method::POST, "/api/fn/signup", &login_csrf));
        let script = headers(&[("host", "site.example"), ("origin", "https://elsewhere.example")]);
        assert!(!is_cross_site_write(&Method::POST, "/api/v1/auth/login", &script), "the token API sets no cookie");
        let curl = headers(&[("host", "site.example")]);
        assert!(!is_cross_site_write(&Method::POST, "/api/fn/login", &curl), "no Origin, no browser");
    }
}
