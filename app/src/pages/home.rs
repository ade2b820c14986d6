use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::accounts::current_user;

#[component]
pub fn HomePage() -> impl IntoView {
    let user = Resource::new_blocking(|| (), |_| current_user());
    view! {
        <Title text="vm-webhoster: your own VM and website in one click"/>
        <section class="py-10 sm:py-16">
            <div class="max-w-3xl">
                <h1 class="text-4xl font-bold tracking-tight sm:text-5xl">"Your own virtual machine. Your website, live in seconds."</h1>
                <p class="mt-4 text-lg text-slate-600 dark:text-slate-300">
                    "Press one button and get an isolated VM with nginx and SSH. Your site answers at "
                    <code class="rounded bg-slate-200 px-1 dark:bg-slate-800">"/your-name/"</code>
                    " and you manage it over SSH and SFTP on a port of your own. If anything fails, everything is rolled back: nothing half-made, ever."
                </p>
                <div class="mt-8 flex flex-wrap gap-3">
                    <Suspense fallback=|| ()>
                        {move || Suspend::new(async move {
                            match user.await {
                                Ok(Some(_)) => view! { <a href="/dashboard" class="btn-primary btn-lg">"Go to your dashboard"</a> }.into_any(),
                                _ => view! {
                                    <a href="/signup" class="btn-primary btn-lg">"Create an account"</a>
                                    <a href="/login" class="btn-secondary btn-lg">"Log in"</a>
                                }.into_any(),
                            }
                        })}
                    </Suspense>
                </div>
            </div>
            <div class="mt-16 grid grid-cols-1 gap-4 sm:grid-cols-3">
                <div class="card p-5"><h3 class="font-semibold">"One VM per site"</h3><p class="mt-1 text-sm text-slate-500 dark:text-slate-400">"Real isolation with libvirt and QEMU, not a shared folder."</p></div>
                <div class="card p-5"><h3 class="font-semibold">"Watch it happen"</h3><p class="mt-1 text-sm text-slate-500 dark:text-slate-400">"Every provisioning step live, with its duration, then CPU, memory and disk charts."</p></div>
                <div class="card p-5"><h3 class="font-semibold">"Scriptable"</h3><p class="mt-1 text-sm text-slate-500 dark:text-slate-400">"A REST API with tokens and an OpenAPI document at "<a class="link" href="/api/v1/docs">"/api/v1/docs"</a>"."</p></div>
            </div>
        </section>
    }
}
