pub mod admin;
pub mod dashboard;
pub mod home;
pub mod hosting;
pub mod login;
pub mod settings;
pub mod signup;
pub mod snapshots;
pub mod backup_restore;
pub mod backups;
pub mod backup_schedule;
pub mod domains;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;

use crate::api::accounts::current_user;
use crate::model::UserView;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
            resp.set_status(http::StatusCode::NOT_FOUND);
        }
    }
    view! {
        <div class="mx-auto max-w-md py-16 text-center">
            <h1 class="text-3xl font-semibold">"Page not found"</h1>
            <p class="mt-2 text-slate-500">"There is nothing at this address."</p>
            <a href="/" class="btn-primary mt-6 inline-block">"Go home"</a>
        </div>
    }
}

/// A page for signed-in users, titled `title`: renders `child` with the logged-in user, or
/// redirects to /login (on the server too, so it works without JavaScript).
#[component]
pub fn RequireUser<F, IV>(title: &'static str, child: F) -> impl IntoView
where
    F: Fn(UserView) -> IV + Send + Sync + Clone + 'static,
    IV: IntoView + 'static,
{
    let user = Resource::new_blocking(|| (), |_| current_user());
    view! {
        <Title text=format!("{title} · vm-webhoster")/>
        <Suspense fallback=|| view! { <p class="text-slate-500">"Loading…"</p> }>
            {
                let child = child.clone();
                move || {
                    let child = child.clone();
                    Suspend::new(async move {
                        match user.await {
                            Ok(Some(u)) => child(u).into_any(),
                            _ => view! { <Redirect path="/login"/> }.into_any(),
                        }
                    })
                }
            }
        </Suspense>
    }
}
