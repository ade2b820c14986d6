#![recursion_limit = "512"]
//! The Leptos app: pages, components and server functions. `ssr` builds it into the server;
//! `hydrate` builds it for the browser.
pub mod api;
#[cfg(feature = "ssr")]
pub mod auth;
pub mod components;
pub mod error;
pub mod model;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod state;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{SsrMode, path};

use pages::{admin::AdminPage, dashboard::DashboardPage, home::HomePage, hosting::HostingDetailPage,
            login::LoginPage, settings::SettingsPage, signup::SignupPage};

/// Runs before the page paints: dark mode from the saved choice or the system setting, so
/// there is no flash of the wrong theme.
const THEME_SCRIPT: &str = "(function(){try{var t=localStorage.getItem('theme');if(t==='dark'||(!t&&window.matchMedia('(prefers-color-scheme: dark)').matches)){document.documentElement.classList.add('dark')}}catch(e){}})();";

pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <script>{THEME_SCRIPT}</script>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                // The interactive console (xterm.js, loaded on first use): see public/console.js.
                <script src="/console.js" defer></script>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body class="min-h-screen bg-slate-50 text-slate-900 antialiased dark:bg-slate-950 dark:text-slate-100">
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/vm-webhoster.css"/>
        <Title text="vm-webhoster"/>
        <Router>
            <components::layout::Nav/>
            <main class="mx-auto w-full max-w-6xl px-4 py-8 sm:px-6">
                <Routes fallback=|| view! { <pages::NotFound/> }>
                    <Route path=path!("") view=HomePage ssr=SsrMode::Async/>
                    <Route path=path!("signup") view=SignupPage ssr=SsrMode::Async/>
                    <Route path=path!("login") view=LoginPage ssr=SsrMode::Async/>
                    <Route path=path!("dashboard") view=DashboardPage ssr=SsrMode::Async/>
                    <Route path=path!("hostings/:id") view=HostingDetailPage ssr=SsrMode::Async/>
                    <Route path=path!("settings") view=SettingsPage ssr=SsrMode::Async/>
                    <Route path=path!("admin") view=AdminPage ssr=SsrMode::Async/>
                </Routes>
            </main>
            <components::ui::Toasts/>
        </Router>
    }
}
