//! A hosting's custom domains (issue #30): added by name, proven by a DNS record (a CNAME to
//! the site, or a TXT record), then served over HTTPS with their own certificate; and the
//! site's HSTS switch.
use super::extract::Path;
use axum::http::StatusCode;
use serde::Deserialize;
use service::hosting::HostingView;
use utoipa::ToSchema;
use vmw_types::DomainView;

use super::ApiResult;
use super::caller::{Accepted, HostingCaller, accepted};
use super::error::ErrorBody;
use super::extract::Json;
use super::responses::HostingErrors;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainRequest {
    /// A DNS name you control, such as `www.example.com` or `bücher.example` (Unicode names are
    /// stored in their ASCII form). Not a wildcard, an IP address, this server's own name or a
    /// name under the sites' base domain (422 `invalid_domain`, saying which rule).
    #[schema(min_length = 1, max_length = 300, example = "www.example.com")]
    pub name: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HstsRequest {
    /// `Strict-Transport-Security` on the site's HTTPS names (`{slug}.{base_domain}` and its
    /// custom domains). Browsers then refuse plain HTTP for them for as long as the header
    /// said, even after it is turned off.
    pub enabled: bool,
}

#[utoipa::path(operation_id = "domains_list", get, path = "/api/v1/hostings/{id}/domains", tag = "domains", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, description = "The hosting's custom domains, oldest first, each with the DNS records that prove it", body = Vec<DomainView>), HostingErrors))]
pub async fn list(c: HostingCaller, Path(id): Path<i32>) -> ApiResult<axum::Json<Vec<DomainView>>> {
    Ok(axum::Json(c.hostings.list_domains(&c.actor, id).await?))
}

#[utoipa::path(operation_id = "domains_add", post, path = "/api/v1/hostings/{id}/domains", tag = "domains", security(("bearer" = [])), params(("id" = i32, Path)), request_body = DomainRequest,
    responses((status = 201, description = "Added, `waiting_dns`: create either DNS record of its `verification` (a CNAME to the site, or the TXT record); it is checked at once and then again with back-off", body = DomainView), HostingErrors,
        (status = 409, description = "The name is added already, here or on anyone's site (`domain_taken`), you have as many domains as you may over all your sites (`domain_limit`), or the site is being deleted (`conflict`)", body = ErrorBody),
        (status = 422, description = "Not a name that can be added (`invalid_domain`, field `name`; the message says which rule)", body = ErrorBody)))]
pub async fn add(c: HostingCaller, Path(id): Path<i32>, Json(req): Json<DomainRequest>) -> ApiResult<(StatusCode, axum::Json<DomainView>)> {
    Ok((StatusCode::CREATED, axum::Json(c.hostings.add_domain(&c.actor, id, &req.name).await?)))
}

#[utoipa::path(operation_id = "domains_delete", delete, path = "/api/v1/hostings/{id}/domains/{did}", tag = "domains", security(("bearer" = [])), params(("id" = i32, Path), ("did" = i32, Path)),
    responses((status = 204, description = "Removed: the name routes nowhere any more and its certificate is deleted"), HostingErrors))]
pub async fn delete(c: HostingCaller, Path((id, did)): Path<(i32, i32)>) -> ApiResult<StatusCode> {
    c.hostings.delete_domain(&c.actor, id, did).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(operation_id = "domains_check", post, path = "/api/v1/hostings/{id}/domains/{did}/check", tag = "domains", security(("bearer" = [])), params(("id" = i32, Path), ("did" = i32, Path)),
    responses((status = 202, description = "Its DNS record (or its certificate, once verified) is looked at now, in the background; the domain as it is", body = DomainView), HostingErrors))]
pub async fn check(c: HostingCaller, Path((id, did)): Path<(i32, i32)>) -> ApiResult<Accepted<DomainView>> {
    Ok(accepted(c.hostings.check_domain_now(&c.actor, id, did).await?))
}

#[utoipa::path(operation_id = "hostings_hsts", put, path = "/api/v1/hostings/{id}/hsts", tag = "domains", security(("bearer" = [])), params(("id" = i32, Path)), request_body = HstsRequest,
    responses((status = 200, description = "The hosting as it is now (`hsts`)", body = HostingView), HostingErrors,
        (status = 409, description = "The site is being deleted (`conflict`)", body = ErrorBody)))]
pub async fn set_hsts(c: HostingCaller, Path(id): Path<i32>, Json(req): Json<HstsRequest>) -> ApiResult<axum::Json<HostingView>> {
    Ok(axum::Json(c.hostings.set_hsts(&c.actor, id, req.enabled).await?))
}
