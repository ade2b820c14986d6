use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{HostingPageData, HostingView, Operation, PlanView};
#[cfg(feature = "ssr")]
use crate::model::StepInfo;
#[cfg(feature = "ssr")]
use crate::auth;

#[server(prefix = "/api/fn", endpoint = "list_hostings")]
pub async fn list_hostings() -> Result<Vec<HostingView>, AppError> {
    let (state, _, actor) = auth::require_user().await?;
    let Some(h) = &state.hosting else { return Ok(Vec::new()) };
    Ok(h.list(&actor).await?)
}

#[server(prefix = "/api/fn", endpoint = "plans")]
pub async fn plans() -> Result<Vec<PlanView>, AppError> {
    let state = auth::state()?;
    Ok(state
        .config
        .plans
        .iter()
        .map(|p| PlanView { name: p.name.clone(), vcpus: p.vcpus, memory_mib: p.memory_mib, disk_gib: p.disk_gib })
        .collect())
}

/// Whether a site name is valid and free, while the person types.
#[server(prefix = "/api/fn", endpoint = "check_slug")]
pub async fn check_slug(slug: String) -> Result<Option<String>, AppError> {
    let (state, _, actor) = auth::require_user().await?;
    let h = auth::hosting(&state)?;
    match h.slug_available(&actor, &slug).await {
        Ok(true) => Ok(None),
        Ok(false) => Ok(Some(format!("'{}' is taken.", slug.trim().to_ascii_lowercase()))),
        Err(service::Error::Validation { message, .. }) => Ok(Some(crate::error::sentence(message))),
        Err(e) => Err(e.into()),
    }
}

/// Creates a hosting and lands on its live page.
#[server(prefix = "/api/fn", endpoint = "create_hosting")]
pub async fn create_hosting(slug: String, plan: String, ssh_key_ids: Option<Vec<i32>>) -> Result<HostingView, AppError> {
    let (state, _, actor) = auth::require_user().await?;
    let h = auth::hosting(&state)?;
    let created = h
        .create(
            &actor,
            service::hosting::CreateHosting {
                slug: Some(slug),
                plan: Some(plan),
                ssh_key_ids: ssh_key_ids.unwrap_or_default(),
                public_keys: Vec::new(),
            },
        )
        .await?;
    leptos_axum::redirect(&format!("/hostings/{}", created.id));
    Ok(created)
}

/// Everything the live page needs at load; updates then arrive over the event stream.
#[server(prefix = "/api/fn", endpoint = "hosting_page")]
pub async fn hosting_page(id: i32) -> Result<HostingPageData, AppError> {
    let (state, _, actor) = auth::require_user().await?;
    let h = auth::hosting(&state)?;
    let hosting = h.get(&actor, id).await?;
    let kind = hosting.created_as.unwrap_or(service::hosting::CreateKind::Cold);
    let events = h.events(&actor, id, 0).await?;
    let samples = h.stats_history(&actor, id).await?;
    Ok(HostingPageData {
        hosting,
        events,
        steps: service::hosting::HostingService::create_steps(kind)
            .into_iter()
            .map(|step| StepInfo { step, label: step.label().into() })
            .collect(),
        samples,
        login_user: state.config.guest_user.clone(),
    })
}

#[server(prefix = "/api/fn", endpoint = "get_hosting")]
pub async fn get_hosting(id: i32) -> Result<HostingView, AppError> {
    let (state, _, actor) = auth::require_user().await?;
    Ok(auth::hosting(&state)?.get(&actor, id).await?)
}

/// Start, stop, restart or delete (a create is [`create_hosting`]). On the wire: `action=stop`.
#[server(prefix = "/api/fn", endpoint = "hosting_action")]
pub async fn hosting_action(id: i32, action: Operation) -> Result<HostingView, AppError> {
    let (state, _, actor) = auth::require_user().await?;
    // The service refuses a create here (that is `create_hosting`).
    Ok(auth::hosting(&state)?.action(&actor, id, action).await?)
}

/// The owner's "always on" (the site never goes to sleep by itself).
#[server(prefix = "/api/fn", endpoint = "set_always_on")]
pub async fn set_always_on(id: i32, on: bool) -> Result<HostingView, AppError> {
    let (state, _, actor) = auth::require_user().await?;
    Ok(auth::hosting(&state)?.set_always_on(&actor, id, on).await?)
}

/// The last lines of the VM's serial console.
#[server(prefix = "/api/fn", endpoint = "hosting_console")]
pub async fn hosting_console(id: i32, lines: usize) -> Result<Vec<String>, AppError> {
    let (state, _, actor) = auth::require_user().await?;
    Ok(auth::hosting(&state)?.console(&actor, id, lines).await?)
}

/// Sets the console password of the VM's login user (inside the running VM, through its guest
/// agent; SSH stays key-only). A POST server function: the CSRF guard checks its Origin.
#[server(prefix = "/api/fn", endpoint = "set_console_password")]
pub async fn set_console_password(id: i32, password: String, confirm: String) -> Result<String, AppError> {
    let (state, _, actor) = auth::require_user().await?;
    auth::hosting(&state)?.set_console_password(&actor, id, &password, &confirm).await?;
    Ok(format!("Console password set. Log in on the console as {}.", state.config.guest_user))
}
