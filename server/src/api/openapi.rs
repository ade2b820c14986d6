//! The OpenAPI document, generated from the handlers' annotations, and its interactive viewer:
//! Swagger UI from the project's own assets (`swagger-ui-dist` from npm, copied under
//! `/pkg/swagger-ui/` by the build; nothing from a CDN), started by a small script of ours.
use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{accounts, admin, console, error, health, host, hostings, snapshots, stream};

#[derive(OpenApi)]
#[openapi(
    info(title = "vm-webhoster API", version = "1", description = "Create and run VM-backed websites. Authenticate with `Authorization: Bearer <token>` from /auth/login or an API token."),
    paths(
        health::health,
        accounts::register, accounts::login, accounts::me, accounts::activity,
        accounts::list_tokens, accounts::create_token, accounts::revoke_token,
        accounts::list_keys, accounts::add_key, accounts::delete_key,
        host::create, host::get, host::delete, host::action,
        hostings::list, hostings::create, hostings::get, hostings::patch, hostings::delete, hostings::action,
        hostings::events, hostings::stats, hostings::console, stream::stream,
        console::console_ws, console::set_password,
        snapshots::list, snapshots::take, snapshots::restore, snapshots::delete,
        admin::list_users, admin::disable_user, admin::enable_user, admin::list_nodes, admin::add_node, admin::drain_node, admin::undrain_node, admin::remove_node, admin::list_hostings, admin::recent_events,
    ),
    components(schemas(accounts::RegisterRequest, accounts::LoginForm, accounts::TokenRequest, accounts::SshKeyRequest,
                        host::HostRequest, host::SiteChoice, hostings::CreateRequest, hostings::HostingPatch,
                        accounts::AccountActivity, admin::AdminUser, admin::AdminNode, admin::AdminHosting, admin::AddNodeRequest,
                        console::ConsolePasswordRequest, snapshots::SnapshotRequest, error::ErrorBody, error::ErrorDetail)),
    modifiers(&Bearer),
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    }
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
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
