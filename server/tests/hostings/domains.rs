//! Custom domains over the REST API (issue #30): add (201, with the DNS records to create),
//! list, check now (202), remove (204); every refusal with its code (`invalid_domain`,
//! `domain_taken`, `domain_limit`, 404 for another user's site, 400 for a bad body); an admin
//! acts on anyone's; the HSTS switch; and every answer matches the OpenAPI document.
use reqwest::StatusCode;
use serde_json::json;

use super::{M, assert_error, assert_field_error, spawn_with};

#[tokio::test]
async fn domains_are_added_listed_checked_and_removed_through_the_api() {
    let app = spawn_with(1, &["--first-user-admin", "--domains-per-user", "3"]).await;
    let doc = app.doc().await;
    let admin = app.register("boss").await;
    let ann = app.register("annie").await;
    let eve = app.register("evelyn").await;
    let id = app.create_host(&ann).await;
    let eves = app.create_host(&eve).await;
    app.wait_for(&ann, "running").await;
    let base = format!("/api/v1/hostings/{id}/domains");
    let tmpl = "/api/v1/hostings/{id}/domains";

    let (s, d) = app.conforming(&doc, M::POST, &base, tmpl, &ann, Some(json!({"name": "WWW.Example.com."}))).await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    assert_eq!((d["name"].as_str(), d["state"].as_str()), (Some("www.example.com"), Some("waiting_dns")), "{d}");
    assert_eq!(d["verification"]["txt_name"], "_vmw-verify.www.example.com");
    let (_, h) = app.call(M::GET, &format!("/api/v1/hostings/{id}"), &ann, None).await;
    let site_name = h["subdomain_url"].as_str().unwrap().trim_start_matches("http://").split(['/', ':']).next().unwrap().to_owned();
    assert_eq!(d["verification"]["cname_target"].as_str(), Some(site_name.as_str()), "a CNAME to the site's own name");
    assert_eq!(d["verification"]["txt_value"].as_str().map(str::len), Some(32));
    let did = d["id"].as_i64().unwrap();
    let (s, d) = app.conforming(&doc, M::POST, &base, tmpl, &ann, Some(json!({"name": "bücher.example"}))).await;
    assert_eq!((s, d["name"].as_str(), d["display_name"].as_str()), (StatusCode::CREATED, Some("xn--bcher-kva.example"), Some("bücher.example")));

    let (s, list) = app.conforming(&doc, M::GET, &base, tmpl, &ann, None).await;
    assert_eq!((s, list.as_array().map(|a| a.len())), (StatusCode::OK, Some(2)), "{list}");

    // Refusals, each with its code.
    for bad in ["*.example.com", "192.0.2.1", "localhost", "no_underscores.example.com", "single"] {
        let (s, b) = app.conforming(&doc, M::POST, &base, tmpl, &ann, Some(json!({"name": bad}))).await;
        assert_field_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_domain", "name");
    }
    let (s, b) = app.call(M::POST, &format!("/api/v1/hostings/{eves}/domains"), &eve, Some(json!({"name": "www.example.com"}))).await;
    assert_field_error(s, &b, StatusCode::CONFLICT, "domain_taken", "name");
    let (s, b) = app.call(M::POST, &base, &ann, Some(json!({"domain": "x.example.com"}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = app.call(M::POST, &base, &eve, Some(json!({"name": "evil.example.com"}))).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    for (m, path) in [(M::GET, base.clone()), (M::DELETE, format!("{base}/{did}")), (M::POST, format!("{base}/{did}/check"))] {
        let (s, b) = app.call(m, &path, &eve, None).await;
        assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    }
    // A domain is reached through its own site only.
    let (s, b) = app.call(M::DELETE, &format!("/api/v1/hostings/{eves}/domains/{did}"), &eve, None).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");

    let (s, c) = app.conforming(&doc, M::POST, &format!("{base}/{did}/check"), "/api/v1/hostings/{id}/domains/{did}/check", &ann, None).await;
    assert_eq!((s, c["id"].as_i64()), (StatusCode::ACCEPTED, Some(did)), "{c}");
    let (s, b) = app.call(M::POST, &format!("{base}/{}/check", did + 1000), &ann, None).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");

    // An administrator sees and changes anyone's.
    let (s, list) = app.call(M::GET, &base, &admin, None).await;
    assert_eq!((s, list.as_array().map(|a| a.len())), (StatusCode::OK, Some(2)), "{list}");
    let (s, _) = app.conforming(&doc, M::DELETE, &format!("{base}/{did}"), "/api/v1/hostings/{id}/domains/{did}", &admin, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = app.call(M::DELETE, &format!("{base}/{did}"), &ann, None).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, list) = app.call(M::GET, &base, &ann, None).await;
    assert_eq!((s, list.as_array().map(|a| a.len())), (StatusCode::OK, Some(1)), "{list}");

    // The per-user limit (`--domains-per-user`) over all their sites.
    for n in 0..2 {
        let (s, b) = app.call(M::POST, &base, &ann, Some(json!({"name": format!("n{n}.example.com")}))).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let (s, b) = app.conforming(&doc, M::POST, &base, tmpl, &ann, Some(json!({"name": "one-more.example.com"}))).await;
    assert_field_error(s, &b, StatusCode::CONFLICT, "domain_limit", "name");
}

#[tokio::test]
async fn the_hsts_switch_is_the_owners() {
    let app = spawn_with(1, &[]).await;
    let doc = app.doc().await;
    let ann = app.register("annie").await;
    let eve = app.register("evelyn").await;
    let id = app.create_host(&ann).await;
    app.wait_for(&ann, "running").await;
    let path = format!("/api/v1/hostings/{id}/hsts");
    let tmpl = "/api/v1/hostings/{id}/hsts";
    let (s, h) = app.conforming(&doc, M::GET, &format!("/api/v1/hostings/{id}"), "/api/v1/hostings/{id}", &ann, None).await;
    assert_eq!((s, h["hsts"].as_bool()), (StatusCode::OK, Some(false)), "{h}");
    let (s, h) = app.conforming(&doc, M::PUT, &path, tmpl, &ann, Some(json!({"enabled": true}))).await;
    assert_eq!((s, h["hsts"].as_bool()), (StatusCode::OK, Some(true)), "{h}");
    let (s, b) = app.call(M::PUT, &path, &eve, Some(json!({"enabled": false}))).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = app.call(M::PUT, &path, &ann, Some(json!({"enabled": "yes"}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, h) = app.call(M::GET, &format!("/api/v1/hostings/{id}"), &ann, None).await;
    assert_eq!((s, h["hsts"].as_bool()), (StatusCode::OK, Some(true)), "kept: {h}");
    let (s, h) = app.call(M::PUT, &path, &ann, Some(json!({"enabled": false}))).await;
    assert_eq!((s, h["hsts"].as_bool()), (StatusCode::OK, Some(false)), "{h}");
}
