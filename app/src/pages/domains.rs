//! The custom domains section of a hosting's page (issue #30): add a name (its field error
//! says which rule it breaks), the list with each domain's state, the DNS records that prove it
//! (copyable), its last error and next try, its certificate's expiry, "Check now" and "Remove";
//! and the site's HSTS switch. The list is read again after each action, on each of the site's
//! events (the stream), and every few seconds while a domain is not active yet.
use leptos::form::ActionForm;
use leptos::prelude::*;

use crate::api::domains::{AddDomain, check_domain, delete_domain, list_domains, set_hsts};
use crate::components::ui::{CopyLine, Field, FormError, field_error, format_time, general_error, toasts};
use crate::model::{DomainState, DomainView, EventView, HostingView};

/// How often the list is read again while a domain waits for DNS or its certificate.
#[cfg(feature = "hydrate")]
const POLL: std::time::Duration = std::time::Duration::from_secs(10);

#[component]
pub fn Domains(hosting: RwSignal<HostingView>, events: RwSignal<Vec<EventView>>) -> impl IntoView {
    let id = hosting.get_untracked().id;
    let add = ServerAction::<AddDomain>::new();
    let value = add.value();
    let changed = RwSignal::new(0u32);
    let list = Resource::new(
        move || (changed.get(), add.version().get(), events.with(|e| e.last().map(|x| x.id))),
        move |_| list_domains(id),
    );
    // While a domain is on its way (DNS, certificate), look again now and then. Set where the
    // list is awaited, inside the Transition below: a read of the resource anywhere else (an
    // Effect) registers it with the page's outer Suspense, which then takes the whole page out
    // and puts it back on every refetch (the console's terminal lost its connection that way).
    let unsettled = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    {
        if let Ok(h) = set_interval_with_handle(
            move || {
                if unsettled.get_untracked() {
                    changed.update(|v| *v += 1);
                }
            },
            POLL,
        ) {
            on_cleanup(move || h.clear());
        }
    }
    let q = toasts();
    let remove = move |did: i32| {
        leptos::task::spawn_local(async move {
            match delete_domain(id, did).await {
                Ok(()) => changed.update(|v| *v += 1),
                Err(e) => q.push(e.to_string()),
            }
        });
    };
    let check = move |did: i32| {
        leptos::task::spawn_local(async move {
            match check_domain(id, did).await {
                Ok(_) => changed.update(|v| *v += 1),
                Err(e) => q.push(e.to_string()),
            }
        });
    };
    view! {
        <section class="card mt-6 space-y-3 p-5" data-testid="domains" aria-labelledby="domains-title">
            <div>
                <h2 class="font-semibold" id="domains-title">"Domains"</h2>
                <p class="mt-1 max-w-2xl text-sm text-slate-500">
                    "Point a domain of your own at this site. Create one of the DNS records shown for it (a CNAME to the site, or the TXT record); "
                    "once it is seen, the site answers on that name and gets its own certificate for HTTPS."
                </p>
            </div>
            <ActionForm action=add attr:class="flex flex-wrap items-end gap-2" attr:data-testid="domain-form">
                <input type="hidden" name="id" value=id.to_string()/>
                <div class="min-w-0 flex-1">
                    <Field label="Domain name" name="name" id="f-domain-name" hint="Such as www.example.com; international names are fine" error=field_error(value, "name")/>
                </div>
                <button type="submit" class="btn-primary" disabled=move || add.pending().get() data-testid="domain-submit">
                    {move || if add.pending().get() { "Adding…" } else { "Add domain" }}
                </button>
            </ActionForm>
            <FormError error=general_error(value, &["name"])/>
            <Transition fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let list = list.await;
                    unsettled.set(list.as_ref().is_ok_and(|v| v.iter().any(|d| d.state != DomainState::Active)));
                    match list {
                        Ok(v) if v.is_empty() => view! { <p class="text-sm text-slate-500" data-testid="domains-empty">"No domains yet."</p> }.into_any(),
                        Ok(v) => view! {
                            <ul class="divide-y divide-slate-200 dark:divide-slate-800">
                                {v.into_iter().map(|d| view! { <DomainRow d check=Callback::new(check) remove=Callback::new(remove)/> }).collect_view()}
                            </ul>
                        }.into_any(),
                        Err(e) => view! { <p class="text-sm text-rose-600">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
            <Hsts hosting/>
        </section>
    }
}

/// The badge colours of a domain's state.
fn badge_class(s: DomainState) -> &'static str {
    match s {
        DomainState::Active => "rounded-full bg-emerald-100 px-2 py-0.5 text-xs font-medium text-emerald-800 dark:bg-emerald-900 dark:text-emerald-100",
        DomainState::Failed => "rounded-full bg-rose-100 px-2 py-0.5 text-xs font-medium text-rose-800 dark:bg-rose-900 dark:text-rose-100",
        _ => "rounded-full bg-amber-100 px-2 py-0.5 text-xs font-medium text-amber-800 dark:bg-amber-900 dark:text-amber-100",
    }
}

#[component]
fn DomainRow(d: DomainView, check: Callback<i32>, remove: Callback<i32>) -> impl IntoView {
    let did = d.id;
    let shown = if d.display_name != d.name { format!("{} ({})", d.display_name, d.name) } else { d.name.clone() };
    let cname = format!("{}. CNAME {}.", d.name, d.verification.cname_target);
    let txt = format!("{}. TXT \"{}\"", d.verification.txt_name, d.verification.txt_value);
    let proven = d.state.is_routed();
    let confirm = RwSignal::new(false);
    let label = d.display_name.clone();
    view! {
        <li class="space-y-2 py-3" data-testid="domain" data-domain-id=did.to_string() data-domain-name=d.name.clone()>
            <div class="flex flex-wrap items-center gap-x-3 gap-y-1">
                <span class="min-w-0 break-all font-medium" data-testid="domain-name">{shown}</span>
                <span role="status" aria-live="polite" class=badge_class(d.state) data-testid="domain-state" data-state=d.state.as_str()>{d.state.label()}</span>
                {d.method.map(|m| view! { <span class="text-xs text-slate-500">{format!("proven by its {}", m.label())}</span> })}
                <span class="ml-auto flex gap-2">
                    <button type="button" class="btn-secondary" data-testid="domain-check" aria-label=format!("Check {label} now") on:click=move |_| check.run(did)>"Check now"</button>
                    <button type="button" class="btn-secondary" data-testid="domain-remove" aria-label=format!("Remove {label}") on:click=move |_| confirm.set(true)>"Remove"</button>
                </span>
            </div>
            <Show when=move || confirm.get()>
                <div class="rounded-lg border border-rose-300 p-3 text-sm dark:border-rose-900" data-testid="domain-remove-confirm">
                    <p>"The site stops answering on this name and its certificate is deleted."</p>
                    <div class="mt-2 flex gap-2">
                        <button type="button" class="btn-danger" data-testid="domain-remove-confirm-button" on:click=move |_| { confirm.set(false); remove.run(did); }>"Remove"</button>
                        <button type="button" class="btn-secondary" on:click=move |_| confirm.set(false)>"Cancel"</button>
                    </div>
                </div>
            </Show>
            {d.last_error.clone().map(|e| view! { <p class="text-sm text-rose-600" data-testid="domain-error">{e}</p> })}
            <dl class="grid grid-cols-[auto_1fr] gap-x-3 gap-y-1 text-xs text-slate-500">
                {d.next_check_at.filter(|_| d.state != DomainState::Active).map(|t| view! { <dt>"Next check"</dt><dd data-testid="domain-next-check">{format_time(t)}</dd> })}
                {d.cert_not_after.map(|t| view! { <dt>"Certificate expires"</dt><dd data-testid="domain-cert-expiry">{format_time(t)}</dd> })}
            </dl>
            {(!proven).then(|| view! {
                <div class="space-y-1 text-sm" data-testid="domain-records">
                    <p class="text-slate-500">"Create one of these DNS records at your DNS provider:"</p>
                    <CopyLine text=cname.clone() testid="domain-cname"/>
                    <CopyLine text=txt.clone() testid="domain-txt"/>
                    <p class="text-xs text-slate-500">"A CNAME cannot be at the zone's own name (example.com); use the TXT record there, with an A/AAAA record pointing at this server."</p>
                </div>
            })}
        </li>
    }
}

/// The site's HSTS switch.
#[component]
fn Hsts(hosting: RwSignal<HostingView>) -> impl IntoView {
    let q = toasts();
    let toggle = move |ev: leptos::ev::Event| {
        let on = event_target_checked(&ev);
        let id = hosting.get_untracked().id;
        leptos::task::spawn_local(async move {
            match set_hsts(id, on).await {
                Ok(h) => { hosting.try_set(h); }
                Err(e) => {
                    hosting.update(|h| h.hsts = !on);
                    q.push(e.to_string());
                }
            }
        });
    };
    view! {
        <label class="flex items-start gap-2 border-t border-slate-200 pt-3 text-sm dark:border-slate-800" data-testid="hsts">
            <input type="checkbox" class="mt-0.5" data-testid="hsts-toggle" aria-describedby="hsts-warning" prop:checked=move || hosting.get().hsts on:change=toggle/>
            <span>"HSTS (HTTPS only)"
                <span class="block text-xs text-amber-700 dark:text-amber-400" id="hsts-warning">
                    "Browsers that saw it refuse plain HTTP for the site's names for months, even after you turn it off: turn it on only when HTTPS works on every name."
                </span>
            </span>
        </label>
    }
}
