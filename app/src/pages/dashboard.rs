use leptos::form::ActionForm;
use leptos::prelude::*;

use super::RequireUser;
use crate::api::accounts::list_ssh_keys;
use crate::api::hostings::{CreateHosting, check_slug, list_hostings, plans};
use crate::components::ui::{Field, FormError, ListOr, StateBadge, SubmitButton, field_error, format_time, general_error};
use crate::error::sentence;
use crate::model::{HostingState, HostingView, SshKeyView, UserView};

#[component]
pub fn DashboardPage() -> impl IntoView {
    view! { <RequireUser title="Dashboard" child=|u: UserView| view! { <Dashboard user=u/> }/> }
}

#[component]
fn Dashboard(user: UserView) -> impl IntoView {
    let create = ServerAction::<CreateHosting>::new();
    let hostings = Resource::new(move || create.version().get(), |_| list_hostings());
    view! {
        <div class="flex flex-wrap items-end justify-between gap-4">
            <div>
                <h1 class="text-2xl font-semibold">"Your sites"</h1>
                <p class="text-sm text-slate-500 dark:text-slate-400">"Signed in as " <span data-testid="username">{user.username.clone()}</span></p>
            </div>
        </div>
        <div class="mt-6 grid grid-cols-1 gap-6 lg:grid-cols-3">
            <section class="lg:col-span-2">
                <Transition fallback=|| view! { <p class="text-slate-500">"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        match hostings.await {
                            Ok(list) if list.is_empty() => view! {
                                <div class="card p-8 text-center" data-testid="empty-state">
                                    <h2 class="text-lg font-medium">"No hostings yet"</h2>
                                    <p class="mt-1 text-sm text-slate-500 dark:text-slate-400">"Create your first site with the form: it is live in under a minute."</p>
                                </div>
                            }.into_any(),
                            Ok(list) => view! {
                                <ul class="space-y-3" data-testid="hosting-list">
                                    {list.into_iter().map(|h| view! { <HostingRow h/> }).collect_view()}
                                </ul>
                            }.into_any(),
                            Err(e) => view! { <p class="text-rose-600">{e.to_string()}</p> }.into_any(),
                        }
                    })}
                </Transition>
            </section>
            <section>
                <CreateForm action=create default_slug=user.username/>
            </section>
        </div>
    }
}

#[component]
fn HostingRow(h: HostingView) -> impl IntoView {
    let href = format!("/hostings/{}", h.id);
    view! {
        <li class="card p-4" data-testid="hosting-row" data-slug=h.slug.clone()>
            <div class="flex flex-wrap items-center gap-3">
                <a href=href class="min-w-0 break-all text-lg font-medium hover:underline">{h.slug.clone()}</a>
                <StateBadge state=h.state operation=h.operation/>
                <span class="text-xs text-slate-500">{h.plan.clone()} " plan · created " {format_time(h.created_at)}</span>
            </div>
            <div class="mt-2 flex flex-wrap gap-x-6 gap-y-1 text-sm">
                <a href=h.site_url.clone() class="link break-all" target="_blank" rel="noopener">{h.site_url.clone()}</a>
                {h.ssh_command.clone().map(|c| view! { <code class="break-all text-slate-600 dark:text-slate-300">{c}</code> })}
            </div>
            {h.state_reason.clone().filter(|_| h.state == HostingState::Failed).map(|r| view! { <p class="mt-2 text-sm text-rose-600 dark:text-rose-400">{r}</p> })}
        </li>
    }
}

/// What is wrong with a site name by the shared name rule, as the form shows it (None: well
/// formed; whether it is free only the server knows).
fn malformed_slug(slug: &str) -> Option<String> {
    vmw_types::check_name("a site name", slug).err().map(sentence)
}

#[component]
fn CreateForm(action: ServerAction<CreateHosting>, default_slug: String) -> impl IntoView {
    let value = action.value();
    let plans = Resource::new(|| (), |_| plans());
    let keys = Resource::new(|| (), |_| list_ssh_keys());
    let live = RwSignal::new(None::<String>);
    let seq = StoredValue::new(0u64);
    let on_slug = Callback::new(move |v: String| {
        // try_*: the page may be gone (navigated away) when a timer or answer arrives.
        seq.try_update_value(|s| *s += 1);
        let Some(mine) = seq.try_get_value() else { return };
        // The name rule is the same here as on the server: say at once what is wrong with the
        // name, and ask the server only whether a well-formed one is free.
        if let Some(problem) = malformed_slug(&v) {
            live.try_set(Some(problem));
            return;
        }
        live.try_set(None);
        set_timeout(
            move || {
                if seq.try_get_value() != Some(mine) {
                    return;
                }
                leptos::task::spawn_local(async move {
                    let r = check_slug(v).await;
                    if seq.try_get_value() == Some(mine) {
                        live.try_set(r.ok().flatten());
                    }
                });
            },
            std::time::Duration::from_millis(350),
        );
    });
    let slug_err = {
        let server = field_error(value, "slug");
        Signal::derive(move || live.get().or_else(|| server.get()))
    };
    let no_keys = || view! { <p class="text-sm text-slate-500">"No SSH keys yet. " <a href="/settings" class="link">"Add one in settings"</a> " to log in over SSH/SFTP."</p> };
    let key_choices = |keys: Vec<SshKeyView>| {
        keys.into_iter().enumerate().map(|(i, k)| {
            let name = format!("ssh_key_ids[{i}]");
            view! {
                <label class="flex flex-wrap items-center gap-x-2 gap-y-0.5 text-sm">
                    <input type="checkbox" name=name value=k.id.to_string() checked=true class="h-4 w-4 rounded"/>
                    <span>{k.name}</span>
                    <span class="min-w-0 break-all font-mono text-xs text-slate-500" data-testid="key-fingerprint">{k.fingerprint}</span>
                </label>
            }
        }).collect_view()
    };
    view! {
        <ActionForm action=action attr:class="card space-y-3 p-5" attr:data-testid="create-form">
            <h2 class="text-lg font-semibold">"New site"</h2>
            <FormError error=general_error(value, &["slug", "plan"])/>
            <Field label="Site name" name="slug" value=default_slug error=slug_err on_input=on_slug
                hint="Your site will answer at /site-name/ and site-name.localhost."/>
            <div class="space-y-1">
                <label for="f-plan" class="block text-sm font-medium">"Plan"</label>
                <Suspense fallback=|| ()>
                    <select id="f-plan" name="plan" class="input">
                        {move || Suspend::new(async move {
                            plans.await.unwrap_or_default().into_iter().map(|p| {
                                let label = format!("{} · {} vCPU · {} MiB RAM · {} GiB disk", p.name, p.vcpus, p.memory_mib, p.disk_gib);
                                view! { <option value=p.name>{label}</option> }
                            }).collect_view()
                        })}
                    </select>
                </Suspense>
                <p class="min-h-4 text-sm text-rose-600" data-field-error="plan">{move || field_error(value, "plan").get()}</p>
            </div>
            <fieldset class="space-y-1">
                <legend class="text-sm font-medium">"SSH keys to install"</legend>
                <Suspense fallback=|| ()>
                    <ListOr list=keys empty=no_keys each=key_choices/>
                </Suspense>
            </fieldset>
            <SubmitButton pending=action.pending() idle="Create site" busy="Creating…" testid="create-submit"/>
        </ActionForm>
    }
}

#[cfg(test)]
mod tests {
    use super::malformed_slug;

    #[test]
    fn a_malformed_site_name_is_explained_at_once() {
        assert_eq!(malformed_slug("ab").as_deref(), Some("A site name must be 3 to 32 characters long."));
        assert!(malformed_slug("api").unwrap().contains("reserved"));
        assert_eq!(malformed_slug(" My-Site "), None, "a well-formed name goes to the server");
    }
}
