//! The top bar: brand, navigation for the logged-in user, theme toggle, log out.
use leptos::prelude::*;
use leptos::form::ActionForm;

use crate::api::accounts::{Logout, current_user};

#[component]
pub fn Nav() -> impl IntoView {
    // Refetched on every navigation, so logging in or out (client-side) updates the bar.
    let location = leptos_router::hooks::use_location();
    let user = Resource::new(move || location.pathname.get(), |_| current_user());
    let logout = ServerAction::<Logout>::new();
    view! {
        <header class="border-b border-slate-200 bg-white/80 backdrop-blur dark:border-slate-800 dark:bg-slate-900/80">
            <nav class="mx-auto flex max-w-6xl flex-wrap items-center gap-2 px-3 py-3 sm:gap-4 sm:px-6">
                <a href="/" class="flex items-center gap-2 font-semibold tracking-tight">
                    <span class="inline-flex h-7 w-7 items-center justify-center rounded-md bg-indigo-600 text-sm font-bold text-white">"v"</span>
                    <span class="hidden sm:inline">"vm-webhoster"</span>
                </a>
                <div class="ml-auto flex flex-wrap items-center justify-end gap-1 text-sm sm:gap-2">
                    <Suspense fallback=|| ()>
                        {move || Suspend::new(async move {
                            match user.await {
                                Ok(Some(u)) => view! {
                                    <a href="/dashboard" class="nav-link">"Dashboard"</a>
                                    <a href="/settings" class="nav-link">"Settings"</a>
                                    {u.is_admin.then(|| view! { <a href="/admin" class="nav-link">"Admin"</a> })}
                                    <span class="hidden text-slate-500 sm:inline dark:text-slate-400" data-testid="nav-user">{u.username}</span>
                                    <ActionForm action=logout>
                                        <button type="submit" class="btn-secondary whitespace-nowrap px-2.5 sm:px-4" data-testid="logout">"Log out"</button>
                                    </ActionForm>
                                }.into_any(),
                                _ => view! {
                                    <a href="/login" class="nav-link">"Log in"</a>
                                    <a href="/signup" class="btn-primary">"Sign up"</a>
                                }.into_any(),
                            }
                        })}
                    </Suspense>
                    <ThemeToggle/>
                </div>
            </nav>
        </header>
    }
}

/// Dark/light switch; the choice is remembered in localStorage (read before paint by the shell).
#[component]
pub fn ThemeToggle() -> impl IntoView {
    let toggle = move |_| {
        #[cfg(feature = "hydrate")]
        {
            if let Some(root) = document().document_element() {
                let dark = root.class_list().toggle("dark").unwrap_or(false);
                if let Ok(Some(store)) = window().local_storage() {
                    let _ = store.set_item("theme", if dark { "dark" } else { "light" });
                }
            }
        }
    };
    view! {
        <button type="button" on:click=toggle class="btn-ghost" aria-label="Toggle dark mode" title="Toggle dark mode" data-testid="theme-toggle">
            <svg class="h-5 w-5 dark:hidden" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"><path d="M21 12.8A9 9 0 1 1 11.2 3a7 7 0 0 0 9.8 9.8z"/></svg>
            <svg class="hidden h-5 w-5 dark:block" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"><circle cx="12" cy="12" r="4"/><path d="M12 2v2M12 20v2M4.9 4.9l1.4 1.4M17.7 17.7l1.4 1.4M2 12h2M20 12h2M4.9 19.1l1.4-1.4M17.7 6.3l1.4-1.4"/></svg>
        </button>
    }
}
