//! The OpenAPI document is the truth of the wire: what the API sends is what the document says
//! (enum spellings, nullable fields), what it refuses it says how (every error a JSON body with a
//! code, every status documented), and what validation refuses the document does not allow where
//! OpenAPI can say it. (ops/api-contract.sh runs schemathesis from the document against the
//! binary; these are the fast checks of the same rules.)
use reqwest::{Method as M, StatusCode};
use serde_json::{Value, json};

use super::{App, assert_error, spawn, spawn_with};

/// The document's schema at `#/components/schemas/NAME`, or the one `$ref` points to.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
        Some(name) => resolve(doc, &doc["components"]["schemas"][name]),
        None => schema,
    }
}

/// Checks `value` against `schema` (the parts of JSON Schema the document uses: `$ref`, `type`
/// with "null", `enum`, `oneOf`, `allOf`, `properties`, `required`, `items`); each mismatch
/// is pushed with its JSON path.
fn conform(doc: &Value, schema: &Value, value: &Value, at: &str, errs: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(all) = schema["allOf"].as_array() {
        for s in all {
            conform(doc, s, value, at, errs);
        }
    }
    if let Some(one) = schema["oneOf"].as_array() {
        let fits = one
            .iter()
            .filter(|s| {
                let mut e = Vec::new();
                conform(doc, s, value, at, &mut e);
                e.is_empty()
            })
            .count();
        if fits != 1 {
            errs.push(format!("{at}: {value} fits {fits} of oneOf {}", Value::Array(one.clone())));
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        errs.push(format!("{at}: {value} is not one of {}", Value::Array(allowed.clone())));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() {
        let fits = types.iter().any(|t| match *t {
            "null" => value.is_null(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => true,
        });
        if !fits {
            errs.push(format!("{at}: {value} is not of type {types:?}"));
            return;
        }
    }
    if let (Some(props), Some(obj)) = (schema["properties"].as_object(), value.as_object()) {
        for req in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if !obj.contains_key(req) {
                errs.push(format!("{at}: required `{req}` missing"));
            }
        }
        for (k, v) in obj {
            if let Some(s) = props.get(k) {
                conform(doc, s, v, &format!("{at}.{k}"), errs);
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            conform(doc, items, v, &format!("{at}[{i}]"), errs);
        }
    }
}

/// The schema the document gives for `method path`'s `status` answer.
fn response_schema<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let op = &doc["paths"][path][method.to_ascii_lowercase()];
    let r = &op["responses"][status.to_string()];
    assert!(r.is_object(), "{method} {path} does not document {status}: {}", op["responses"]);
    &r["content"]["application/json"]["schema"]
}

impl App {
    pub(super) async fn doc(&self) -> Value {
        self.client.get(self.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap()
    }

    /// Calls `method path` (documented as `template`) and checks the answer's status is
    /// documented and its body conforms to the documented schema.
    pub(super) async fn conforming(&self, doc: &Value, method: M, path: &str, template: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (s, v) = self.call(method.clone(), path, token, body).await;
        let schema = response_schema(doc, method.as_str(), template, s.as_u16());
        let mut errs = Vec::new();
        conform(doc, schema, &v, "$", &mut errs);
        assert!(errs.is_empty(), "{method} {path} -> {s}: the body does not match the document:\n{}\n{v:#}", errs.join("\n"));
        (s, v)
    }
}

#[tokio::test]
async fn the_document_spells_enums_and_nulls_as_the_wire_does() {
    let app = spawn(2).await;
    let doc = app.doc().await;
    let schemas = &doc["components"]["schemas"];
    let names = |v: &Value| -> Vec<String> { v["enum"].as_array().unwrap_or(&vec![]).iter().filter_map(|x| x.as_str().map(str::to_owned)).collect() };
    let want: Vec<String> = vmw_types::HostingState::ALL.iter().map(|s| s.as_str().to_owned()).collect();
    assert_eq!(names(&schemas["HostingState"]), want, "HostingState as the API sends it");
    assert!(names(&schemas["Operation"]).contains(&"create".to_owned()), "{}", schemas["Operation"]);
    assert!(names(&schemas["Operation"]).contains(&"power_off".to_owned()), "{}", schemas["Operation"]);

    // A hosting, read while it is queued or provisioning (operation `create`) and once it runs
    // (operation null), its events and the admin's lists: every body matches its schema.
    let tok = app.register("wirecheck").await;
    let (s, h) = app.conforming(&doc, M::POST, "/api/v1/hostings", "/api/v1/hostings", &tok, Some(json!({"slug": "wired"}))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{h}");
    let id = h["id"].as_i64().unwrap();
    app.conforming(&doc, M::GET, "/api/v1/host", "/api/v1/host", &tok, None).await;
    for _ in 0..300 {
        let (_, h) = app.conforming(&doc, M::GET, &format!("/api/v1/hostings/{id}"), "/api/v1/hostings/{id}", &tok, None).await;
        if h["state"] == "running" && h["operation"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app.conforming(&doc, M::GET, "/api/v1/hostings?wait=30", "/api/v1/hostings", &tok, None).await;
    let (_, evs) = app.conforming(&doc, M::GET, &format!("/api/v1/hostings/{id}/events"), "/api/v1/hostings/{id}/events", &tok, None).await;
    assert!(evs.as_array().unwrap().iter().any(|e| e["step"].is_string()), "{evs}");
    app.conforming(&doc, M::GET, "/api/v1/account/activity", "/api/v1/account/activity", &tok, None).await;
    app.conforming(&doc, M::GET, "/api/v1/tokens", "/api/v1/tokens", &tok, None).await;
    app.conforming(&doc, M::GET, "/api/v1/users/me", "/api/v1/users/me", &tok, None).await;
    app.conforming(&doc, M::POST, &format!("/api/v1/hostings/{id}/sleep?wait=30"), "/api/v1/hostings/{id}/{action}", &tok, None).await;
    app.conforming(&doc, M::POST, &format!("/api/v1/hostings/{id}/snapshots"), "/api/v1/hostings/{id}/snapshots", &tok, Some(json!({"name": "before"}))).await;
    app.conforming(&doc, M::GET, &format!("/api/v1/hostings/{id}/snapshots"), "/api/v1/hostings/{id}/snapshots", &tok, None).await;
    app.conforming(&doc, M::POST, &format!("/api/v1/hostings/{id}/backups?wait=30"), "/api/v1/hostings/{id}/backups", &tok, None).await;
    app.conforming(&doc, M::GET, &format!("/api/v1/hostings/{id}/backups"), "/api/v1/hostings/{id}/backups", &tok, None).await;
    // Errors too.
    app.conforming(&doc, M::GET, "/api/v1/hostings/999999", "/api/v1/hostings/{id}", &tok, None).await;
    app.conforming(&doc, M::GET, "/api/v1/admin/nodes", "/api/v1/admin/nodes", &tok, None).await;
}

#[tokio::test]
async fn an_administrators_lists_match_the_document() {
    let app = spawn_with(1, &["--first-user-admin"]).await;
    let doc = app.doc().await;
    let root = app.register("rootish").await;
    app.create_host(&root).await;
    app.wait_for(&root, "running").await;
    for p in ["/api/v1/admin/nodes", "/api/v1/admin/hostings", "/api/v1/admin/users", "/api/v1/admin/events"] {
        let (s, _) = app.conforming(&doc, M::GET, p, p, &root, None).await;
        assert_eq!(s, StatusCode::OK, "{p}");
    }
}

#[tokio::test]
async fn path_and_query_parameters_of_the_wrong_type_get_a_json_error_with_a_code() {
    let app = spawn_with(1, &["--first-user-admin"]).await;
    let doc = app.doc().await;
    let tok = app.register("pathcheck").await;
    for (method, path, template) in [
        (M::GET, "/api/v1/hostings/2147483648", "/api/v1/hostings/{id}"),
        (M::GET, "/api/v1/hostings/abc", "/api/v1/hostings/{id}"),
        (M::DELETE, "/api/v1/admin/nodes/true", "/api/v1/admin/nodes/{id}"),
        (M::POST, "/api/v1/admin/users/-99999999999/disable", "/api/v1/admin/users/{id}/disable"),
        (M::DELETE, "/api/v1/tokens/1.5", "/api/v1/tokens/{id}"),
        (M::POST, "/api/v1/hostings/x/start", "/api/v1/hostings/{id}/{action}"),
        (M::DELETE, "/api/v1/hostings/1/snapshots/%E2%82%AC", "/api/v1/hostings/{id}/snapshots/{sid}"),
    ] {
        let r = app.client.request(method.clone(), app.url(path)).bearer_auth(&tok).send().await.unwrap();
        let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        let s = r.status();
        let body: Value = r.json().await.unwrap_or_else(|e| panic!("{method} {path}: not JSON ({ct:?}): {e}"));
        assert_error(s, &body, StatusCode::BAD_REQUEST, "invalid_path");
        assert!(body["error"]["message"].as_str().unwrap().contains("path"), "{body}");
        response_schema(&doc, method.as_str(), template, 400);
    }
    let (s, b) = app.call(M::GET, "/api/v1/hostings/1/events?after=soon", &tok, None).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_query");
    let (s, b) = app.call(M::GET, "/api/v1/admin/events?limit=-1", &tok, None).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_query");
    response_schema(&doc, "GET", "/api/v1/hostings/{id}/events", 400);
    response_schema(&doc, "GET", "/api/v1/admin/events", 400);
}

#[tokio::test]
async fn a_method_a_route_does_not_have_gets_405_with_allow_and_a_json_error() {
    let app = spawn(1).await;
    let tok = app.register("methodcheck").await;
    for (method, path, allow) in [
        (M::PUT, "/api/v1/hostings/1", "GET,HEAD,PATCH,DELETE"),
        (M::DELETE, "/api/v1/hostings", "GET,HEAD,POST"),
        (M::GET, "/api/v1/auth/login", "POST"),
        (M::PATCH, "/api/v1/host", "GET,HEAD,POST,DELETE"),
        (M::POST, "/api/v1/hostings/1/events", "GET,HEAD"),
        (M::POST, "/api/v1/openapi.json", "GET,HEAD"),
    ] {
        let r = app.client.request(method.clone(), app.url(path)).bearer_auth(&tok).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        let got = r.headers().get("allow").map(|v| v.to_str().unwrap().to_owned());
        let mut got: Vec<String> = got.unwrap_or_else(|| panic!("{method} {path}: 405 without Allow")).split(',').map(|m| m.trim().to_owned()).collect();
        let mut want: Vec<String> = allow.split(',').map(str::to_owned).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{method} {path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    }
}

#[tokio::test]
async fn the_document_does_not_allow_what_validation_refuses() {
    let app = spawn(1).await;
    let doc = app.doc().await;
    let schemas = &doc["components"]["schemas"];
    let field = |schema: &str, f: &str| schemas[schema]["properties"][f].clone();
    // An empty login is refused (422), so the document asks for at least one character.
    let (s, b) = send_form(&app, &[("username", ""), ("password", "x")]).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(field("LoginForm", "username")["minLength"], 1, "{}", schemas["LoginForm"]);
    assert!(doc["paths"]["/api/v1/auth/login"]["post"]["responses"]["422"].is_object(), "login's 422 is documented");
    for (schema, f, min, max) in [
        ("RegisterRequest", "username", 3, 32),
        ("RegisterRequest", "password", 8, 128),
        ("RegisterRequest", "email", 3, 254),
        ("TokenRequest", "name", 1, 64),
        ("ConsolePasswordRequest", "password", 10, 128),
        ("SnapshotRequest", "name", 1, 64),
        ("AddNodeRequest", "name", 1, 32),
    ] {
        let p = field(schema, f);
        assert_eq!((p["minLength"].as_i64(), p["maxLength"].as_i64()), (Some(min), Some(max)), "{schema}.{f}: {p}");
    }
    assert_eq!(field("RegisterRequest", "email")["format"], "email");
    assert!(field("RegisterRequest", "username")["pattern"].is_string());
    let hs = &schemas["HostingView"]["properties"];
    // Nullable fields say so.
    for f in ["state_reason", "operation", "created_as", "ssh_port", "ssh_command", "last_visit_at"] {
        let mut errs = Vec::new();
        conform(&doc, &hs[f], &Value::Null, f, &mut errs);
        assert!(errs.is_empty(), "HostingView.{f} is null on the wire but not nullable in the document: {}", hs[f]);
    }
}

async fn send_form(app: &App, form: &[(&str, &str)]) -> (StatusCode, Value) {
    vmw_test_support::http::send(app.client.post(app.url("/api/v1/auth/login")).form(form)).await
}
