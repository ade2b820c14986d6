//! The OpenAPI document, generated from the handlers' annotations, and its interactive viewer:
//! Swagger UI from the project's own assets (`swagger-ui-dist` from npm, copied under
//! `/pkg/swagger-ui/` by the build; nothing from a CDN), started by a small script of ours.
use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Value, json};

use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::responses::SharedResponses;
use super::{accounts, admin, backup_restore, backup_schedules, backups, console, domains, error, health, host, hostings, sessions, snapshots, stream};

#[derive(OpenApi)]
#[openapi(
    info(title = "vm-webhoster API", version = "1", description = "Create and run VM-backed websites. Authenticate with `Authorization: Bearer <token>` from /auth/login or an API token."),
    paths(
        health::health,
        accounts::register, accounts::login, accounts::me, accounts::activity,
        sessions::list, sessions::end, sessions::end_all,
        accounts::list_tokens, accounts::create_token, accounts::revoke_token,
        accounts::list_keys, accounts::add_key, accounts::delete_key,
        host::create, host::get, host::delete, host::action,
        hostings::list, hostings::create, hostings::get, hostings::patch, hostings::delete, hostings::action,
        hostings::events, hostings::stats, hostings::console, stream::stream,
        console::console_ws, console::set_password,
        snapshots::list, snapshots::take, snapshots::restore, snapshots::delete,
        backups::list, backups::take, backup_restore::restore, backup_restore::download,
        backup_schedules::get, backup_schedules::set, backup_schedules::stale,
        domains::list, domains::add, domains::delete, domains::check, domains::set_hsts,
        admin::list_users, admin::disable_user, admin::enable_user, admin::list_nodes, admin::add_node, admin::drain_node, admin::undrain_node, admin::remove_node, admin::list_hostings, admin::recent_events, admin::certificates,
    ),
    components(schemas(accounts::RegisterRequest, accounts::LoginForm, accounts::TokenRequest, accounts::SshKeyRequest,
                        host::HostRequest, host::SiteChoice, host::ActionName, hostings::CreateRequest, hostings::HostingPatch,
                        admin::AdminNode, admin::AdminHosting, admin::AddNodeRequest,
                        console::ConsolePasswordRequest, snapshots::SnapshotRequest, backups::BackupRequest, backup_restore::RestoreRequest, domains::DomainRequest, domains::HstsRequest, sessions::EndedSessions, error::ErrorBody, error::ErrorDetail)),
    modifiers(&Bearer, &SharedResponses),
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    }
}

/// OpenAPI links from what a POST creates to the operations on it: a POST on `P` whose answer
/// has an `id` links to every operation on `P/{x}...`, with `x` taken from that `id` (and the
/// POST's own path parameters passed on). Clients (and the property-based tests' stateful
/// phase) follow them: create a hosting, then read, act on and delete that one. Added to the
/// JSON (utoipa 5.5 writes a link's `operationId` as `operation_id`).
fn add_links(doc: &mut Value) {
    let schemas = doc["components"]["schemas"].clone();
    let resolve = |s: &Value| -> Value {
        match s["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
            Some(name) => schemas[name].clone(),
            None => s.clone(),
        }
    };
    let has_id = |s: &Value| {
        let s = resolve(s);
        s["properties"]["id"].is_object() || s["allOf"].as_array().is_some_and(|all| all.iter().any(|p| resolve(p)["properties"]["id"].is_object()))
    };
    let Some(paths) = doc["paths"].as_object_mut() else { return };
    let targets: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object().into_iter().flat_map(|ops| ops.values()).filter_map(|op| Some((path.clone(), op["operationId"].as_str()?.to_owned())))
        })
        .collect();
    for (path, item) in paths.iter_mut() {
        let Some(responses) = item.get_mut("post").and_then(|op| op.get_mut("responses")).and_then(Value::as_object_mut) else { continue };
        let own: Vec<&str> = path.split('/').filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}')).collect();
        for (code, resp) in responses.iter_mut() {
            if !code.starts_with('2') || !has_id(&resp["content"]["application/json"]["schema"]) {
                continue;
            }
            let mut links = serde_json::Map::new();
            for (target, id) in &targets {
                let Some(param) = target.strip_prefix(path.as_str()).and_then(|r| r.strip_prefix("/{")).and_then(|r| r.split('}').next()) else {
                    continue;
                };
                if param == "action" {
                    continue; // an action's name, not an id
                }
                let mut params = serde_json::Map::new();
                params.insert(param.to_owned(), "$response.body#/id".into());
                for p in &own {
                    params.insert((*p).to_owned(), format!("$request.path.{p}").into());
                }
                links.insert(id.clone(), json!({"operationId": id, "parameters": params}));
            }
            if !links.is_empty() {
                resp["links"] = Value::Object(links);
            }
        }
    }
}

/// The document, generated once.
pub fn doc() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

/// The `Allow` header's value for a route of the API (its full path pattern, as the document
/// and axum's `MatchedPath` write it): the methods the document lists for it (HEAD with GET).
pub fn allowed_methods(path: &str) -> Option<&'static str> {
    static ALLOW: OnceLock<HashMap<String, String>> = OnceLock::new();
    let table = ALLOW.get_or_init(|| {
        let mut t: HashMap<String, String> = doc()
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let mut m = Vec::new();
                let ops = [("GET", &item.get), ("HEAD", &item.get), ("POST", &item.post), ("PUT", &item.put), ("PATCH", &item.patch), ("DELETE", &item.delete)];
                for (name, op) in ops {
                    if op.is_some() {
                        m.push(name);
                    }
                }
                (path.clone(), m.join(","))
            })
            .collect();
        // The document and its viewer are not in the document.
        for p in ["/api/v1/openapi.json", "/api/v1/docs", "/api/v1/docs/init.js"] {
            t.insert(p.to_owned(), "GET,HEAD".to_owned());
        }
        t
    });
    table.get(path).map(String::as_str)
}

/// Every `text/event-stream` answer's schema is that of one of its events (utoipa knows no
/// such schema: the handler documents the body as a string).
fn stream_events(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else { return };
    for op in paths.values_mut().filter_map(Value::as_object_mut).flat_map(|ops| ops.values_mut()) {
        let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else { continue };
        for resp in responses.values_mut() {
            if let Some(media) = resp.pointer_mut("/content/text~1event-stream") {
                media["schema"] = super::stream::event_schema();
            }
        }
    }
}

/// The document as it is served: [`doc`] with its links.
pub fn doc_json() -> &'static Value {
    static JSON: OnceLock<Value> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut v = serde_json::to_value(doc()).unwrap_or_default();
        add_links(&mut v);
        stream_events(&mut v);
        v
    })
}

pub async fn document() -> Json<&'static Value> {
    Json(doc_json())
}

/// The docs page's policy: scripts and styles from this origin only (Swagger UI sets inline
/// styles on its elements; its icons are data: images), requests to this origin only.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                        connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'self'";

pub async fn docs_page() -> Response {
    let mut resp = Html(include_str!("docs.html")).into_response();
    resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DOCS_CSP));
    resp
}

/// `GET /api/v1/docs/init.js`: starts Swagger UI on `/api/v1/openapi.json`.
pub async fn docs_init() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("docs-init.js")).into_response()
}
