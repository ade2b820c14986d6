//! A hosting's custom domains and its HSTS switch: list, add, remove, check now, switch.
//! Each calls the service layer, which checks the owner (others' hostings are not found), the
//! name's rules and the per-user limit.
use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{DomainView, HostingView};
#[cfg(feature = "ssr")]
use crate::auth;

#[server(prefix = "/api/fn", endpoint = "list_domains")]
pub async fn list_domains(id: i32) -> Result<Vec<DomainView>, AppError> {
    let (state, _, actor) = auth::require_user().await?;
    Ok(auth::hosting(&state)?.list_domains(&actor, id).await?)
}

/// Adds a custom domain; a refused name is a field error on `name` (the rule it breaks, taken,
/// or over the limit).
#[server(prefix = "/api/fn", endpoint = "add_domain")]
pub async fn add_domain(id: i32, name: String) -> Result<DomainView, AppError> {
    let (state, _, actor) = auth::require_user().await?;
    Ok(auth::hosting(&state)?.add_domain(&actor, id, &name).await?)
}

#[server(prefix = "/api/fn", endpoint = "delete_domain")]
pub async fn delete_domain(id: i32, did: i32) -> Result<(), AppError> {
    let (state, _, actor) = auth::require_user().await?;
    Ok(auth::hosting(&state)?.delete_domain(&actor, id, did).await?)
}

#[server(prefix = "/api/fn", endpoint = "check_domain")]
pub async fn check_domain(id: i32, did: i32) -> Result<DomainView, AppError> {
    let (state, _, actor) = auth::require_user().await?;
    Ok(auth::hosting(&state)?.check_domain_now(&actor, id, did).await?)
}

#[server(prefix = "/api/fn", endpoint = "set_hsts")]
pub async fn set_hsts(id: i32, on: bool) -> Result<HostingView, AppError> {
    let (state, _, actor) = auth::require_user().await?;
    Ok(auth::hosting(&state)?.set_hsts(&actor, id, on).await?)
}
