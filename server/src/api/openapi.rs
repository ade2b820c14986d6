//! The OpenAPI document, generated from the handlers' annotations, and a docs page served
//! from the project's own assets (nothing from a CDN).
use axum::Json;
use axum::response::Html;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{accounts, admin, console, health, host, hostings, stream};

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
        admin::list_users, admin::disable_user, admin::enable_user, admin::list_nodes, admin::list_hostings, admin::recent_events,
    ),
    components(schemas(accounts::RegisterRequest, accounts::LoginForm, accounts::TokenRequest, accounts::SshKeyRequest,
                        host::HostRequest, host::SiteChoice, hostings::CreateRequest, hostings::HostingPatch,
                        accounts::AccountActivity, admin::AdminUser, admin::AdminNode,
                        console::ConsolePasswordRequest)),
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

pub async fn docs_page() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}
