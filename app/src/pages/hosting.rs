//! The live page of one hosting: provisioning steps as they happen, then the running view with
//! addresses, SSH/SFTP lines, live charts, the interactive console and the boot log. Updates arrive over a
//! server-sent event stream; a dropped connection reconnects and catches up from the last id.
use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use super::RequireUser;
use crate::api::hostings::{SetConsolePassword, hosting_action, hosting_console, hosting_page, set_always_on};
use crate::components::charts::{Sparkline, human_bytes};
use crate::components::ui::{CopyLine, Field, FormError, StateBadge, SubmitButton, field_error, format_time, general_error, human_duration, js_now, toasts};
use crate::model::{
    EventKind, EventStatus, EventView, HostingPageData, HostingState, HostingView, Operation, StatSample, Step, StepInfo, UserView,
};

#[component]
pub fn HostingDetailPage() -> impl IntoView {
    view! { <RequireUser title="Site" child=|_u: UserView| view! { <HostingLoader/> }/> }
}

#[component]
fn HostingLoader() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").and_then(|s| s.parse::<i32>().ok()).unwrap_or(0);
    let page = Resource::new_blocking(id, hosting_page);
    view! {
        <Suspense fallback=|| view! { <p class="text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Ok(p) => view! { <Live page=p/> }.into_any(),
                    Err(e) => view! {
                        <div class="card p-8 text-center">
                            <h1 class="text-xl font-semibold">"Site not found"</h1>
                            <p class="mt-1 text-slate-500" data-testid="not-found">{e.to_string()}</p>
                            <a href="/dashboard" class="btn-secondary mt-4 inline-block">"Back to the dashboard"</a>
                        </div>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Live(page: HostingPageData) -> impl IntoView {
    let hosting = RwSignal::new(page.hosting.clone());
    let events = RwSignal::new(page.events.clone());
    let samples = RwSignal::new(page.samples.clone());
    let gone = RwSignal::new(false);
    let connected = RwSignal::new(false);
    let steps = StoredValue::new(page.steps.clone());
    let id = page.hosting.id;
    let login_user = StoredValue::new(page.login_user.clone());

    #[cfg(feature = "hydrate")]
    stream::connect(id, hosting, events, samples, gone, connected);
    #[cfg(not(feature = "hydrate"))]
    let _ = (&connected, &gone);

    let state = Signal::derive(move || hosting.get().state);
    let op = Signal::derive(move || hosting.get().operation);
    let provisioning =
        move || matches!(state.get(), HostingState::Queued | HostingState::Provisioning | HostingState::Failed);
    // Effects run in the browser only, after hydration.
    let hydrated = RwSignal::new(false);
    Effect::new(move || hydrated.set(true));

    view! {
        <Title text=move || format!("{} · vm-webhoster", hosting.get().slug)/>
        <div class="flex flex-wrap items-center gap-3">
            <a href="/dashboard" class="text-sm text-slate-500 hover:underline">"← Dashboard"</a>
        </div>
        <div class="mt-2 flex flex-wrap items-center gap-3">
            <h1 class="min-w-0 break-all text-2xl font-semibold" data-testid="hosting-slug">{move || hosting.get().slug}</h1>
            <StateBadge state operation=op/>
            <span class="text-xs text-slate-500" title="live updates">
                {move || if connected.get() { "● live" } else { "○ connecting…" }}
            </span>
        </div>
        <Show when=move || gone.get()>
            <div class="card mt-6 p-6" data-testid="deleted">
                <p class="font-medium">"This site was deleted. Its VM, disk, ports and route are gone."</p>
                <a href="/dashboard" class="btn-secondary mt-3 inline-block">"Back to the dashboard"</a>
            </div>
        </Show>
        <Show when=move || !gone.get()>
            <Actions hosting/>
            <Show when=provisioning>
                <Progress steps=steps.get_value() events hosting/>
            </Show>
            <Show when=move || matches!(state.get(), HostingState::Running | HostingState::Stopped)>
                <Running hosting samples/>
            </Show>
            // In the browser only (after hydration): its list and form are read there, and
            // rendering them on the server too made hydration fail at random (e2e
            // hosting.test.mjs; Leptos found other nodes than it expected in the section).
            <Show when=move || hydrated.get() && matches!(state.get(), HostingState::Running | HostingState::Stopped | HostingState::Sleeping)>
                <super::snapshots::Snapshots hosting/>
                <super::backups::Backups hosting events/>
                <super::domains::Domains hosting events/>
            </Show>
            <Console id login_user=login_user.get_value() hosting/>
            <History events/>
        </Show>
    }
}

/// "Always on": the site never goes to sleep when nobody visits it.
#[component]
fn AlwaysOn(hosting: RwSignal<HostingView>) -> impl IntoView {
    let q = toasts();
    let toggle = move |ev: leptos::ev::Event| {
        let on = event_target_checked(&ev);
        let id = hosting.get_untracked().id;
        leptos::task::spawn_local(async move {
            match set_always_on(id, on).await {
                Ok(h) => { hosting.try_set(h); }
                Err(e) => {
                    // Back to what the server has.
                    hosting.update(|h| h.always_on = !on);
                    q.push(e.to_string());
                }
            }
        });
    };
    view! {
        <label class="mt-3 flex items-start gap-2 text-sm" data-testid="always-on">
            <input type="checkbox" class="mt-0.5" data-testid="always-on-toggle" prop:checked=move || hosting.get().always_on on:change=toggle/>
            <span>"Always on"<span class="block text-xs text-slate-500">"Idle sites go to sleep after a while without visits (no RAM held) and wake on the next one, slower once. Always-on sites never sleep."</span></span>
        </label>
    }
}

#[component]
fn Actions(hosting: RwSignal<HostingView>) -> impl IntoView {
    let confirm = RwSignal::new(false);
    let typed = RwSignal::new(String::new());
    let q = toasts();
    let run = move |action: Operation| {
        let id = hosting.get_untracked().id;
        leptos::task::spawn_local(async move {
            match hosting_action(id, action).await {
                Ok(h) => { hosting.try_set(h); }
                Err(e) => q.push(e.to_string()),
            }
        });
    };
    // One operation at a time, and only from the states it may begin from.
    let may = move |op: Operation| {
        let h = hosting.get();
        !h.busy() && op.allowed_from().contains(&h.state)
    };
    view! {
        <div class="mt-4 flex flex-wrap gap-2" data-testid="actions">
            <button class="btn-secondary" data-testid="action-start" disabled=move || !may(Operation::Start) on:click=move |_| run(Operation::Start)>{Operation::Start.label()}</button>
            <button class="btn-secondary" data-testid="action-stop" title="Saves the VM to disk and frees its memory; start restores it in under a second" disabled=move || !may(Operation::Stop) on:click=move |_| run(Operation::Stop)>{Operation::Stop.label()}</button>
            <button class="btn-secondary" data-testid="action-restart" title="A real reboot" disabled=move || !may(Operation::Restart) on:click=move |_| run(Operation::Restart)>{Operation::Restart.label()}</button>
            <button class="btn-secondary" data-testid="action-power-off" title="An ACPI shutdown: the next start is a full boot" disabled=move || !may(Operation::PowerOff) on:click=move |_| run(Operation::PowerOff)>{Operation::PowerOff.label()}</button>
            <button class="btn-secondary" data-testid="action-sleep" title="Saves the VM to disk; its next visitor (HTTP or SSH) wakes it in about a second" disabled=move || !may(Operation::Sleep) on:click=move |_| run(Operation::Sleep)>{Operation::Sleep.label()}</button>
            <button class="btn-secondary" data-testid="action-wake" title="Restores the sleeping VM now" disabled=move || !may(Operation::Wake) on:click=move |_| run(Operation::Wake)>{Operation::Wake.label()}</button>
            <a class="btn-secondary" href="#console" data-testid="console-link" title="A terminal on the VM's serial console">"Console"</a>
            <button class="btn-danger" data-testid="action-delete" disabled=move || !may(Operation::Delete) on:click=move |_| confirm.set(true)>"Delete…"</button>
        </div>
        <AlwaysOn hosting=hosting/>
        <Show when=move || confirm.get()>
            <div class="card mt-3 space-y-2 border-rose-300 p-4 dark:border-rose-900" data-testid="delete-confirm">
                <p class="text-sm">"This deletes the VM, its disk and everything on it. Type "
                    <strong class="font-mono">{move || hosting.get().slug}</strong> " to confirm."</p>
                <input class="input" data-testid="delete-confirm-input" prop:value=move || typed.get()
                    on:input=move |ev| typed.set(event_target_value(&ev))/>
                <div class="flex gap-2">
                    <button class="btn-danger" data-testid="delete-confirm-button"
                        disabled=move || typed.get().trim() != hosting.get().slug
                        on:click=move |_| { confirm.set(false); typed.set(String::new()); run(Operation::Delete); }>
                        {move || format!("Delete {}", hosting.get().slug)}
                    </button>
                    <button class="btn-secondary" on:click=move |_| { confirm.set(false); typed.set(String::new()); }>"Cancel"</button>
                </div>
            </div>
        </Show>
    }
}

/// The latest provisioning attempt: events from the last one that says the hosting was queued.
fn current_attempt(events: &[EventView]) -> &[EventView] {
    let start = events.iter().rposition(EventView::is_queued).unwrap_or(0);
    &events[start..]
}

/// What a step came to in the latest attempt: its undo if it was rolled back, else its last event
/// (None: not reached yet).
fn step_outcome(events: &[EventView], step: Step) -> Option<&EventView> {
    let mine = current_attempt(events).iter().filter(|e| e.step == Some(step));
    mine.clone().rev().find(|e| e.kind == EventKind::Undo).or_else(|| mine.last())
}

#[component]
fn Progress(steps: Vec<StepInfo>, events: RwSignal<Vec<EventView>>, hosting: RwSignal<HostingView>) -> impl IntoView {
    view! {
        <section class="card mt-6 p-5" data-testid="progress">
            <h2 class="font-semibold">"Provisioning"</h2>
            {move || hosting.get().queue_position.filter(|_| hosting.get().state == HostingState::Queued).map(|p| view! {
                <p class="mt-1 text-sm text-slate-500" data-testid="queue-position">
                    {if p == 0 { "Next in line for a provisioning slot.".to_string() } else { format!("Waiting: {p} site(s) ahead in the queue.") }}
                </p>
            })}
            <ol class="mt-4 space-y-2">
                {steps.into_iter().map(|s| {
                    let step = s.step;
                    let status = Signal::derive(move || {
                        step_outcome(&events.get(), step).map(|e| (e.status, e.duration_ms, e.message.clone()))
                    });
                    let outcome = move || status.get().map(|(st, _, _)| st);
                    view! {
                        <li class="flex items-start gap-3" data-testid="step" data-step=step.as_str()
                            data-status=move || outcome().map_or("pending", EventStatus::as_str)>
                            <span class=move || format!("mt-0.5 flex h-5 w-5 shrink-0 items-center justify-center rounded-full text-xs {}",
                                match outcome() {
                                    Some(EventStatus::Succeeded) => "bg-emerald-500 text-white",
                                    Some(EventStatus::Started) => "bg-indigo-500 text-white animate-pulse",
                                    Some(EventStatus::Failed) => "bg-rose-500 text-white",
                                    Some(EventStatus::Undone) => "bg-amber-400 text-white",
                                    _ => "bg-slate-200 dark:bg-slate-700",
                                })>
                                {move || match outcome() {
                                    Some(EventStatus::Succeeded) => "✓",
                                    Some(EventStatus::Failed) => "✕",
                                    Some(EventStatus::Undone) => "↺",
                                    Some(EventStatus::Started) => "…",
                                    _ => "",
                                }}
                            </span>
                            <div class="min-w-0 flex-1 break-words">
                                <p class="text-sm">{s.label.clone()}</p>
                                {move || status.get().and_then(|(st, d, msg)| match st {
                                    EventStatus::Failed => Some(view! { <p class="text-xs text-rose-600 dark:text-rose-400">{msg}</p> }.into_any()),
                                    EventStatus::Undone => Some(view! { <p class="text-xs text-amber-600">"Rolled back"</p> }.into_any()),
                                    _ => d.map(|d| view! { <p class="text-xs text-slate-500">{human_duration(d)}</p> }.into_any()),
                                })}
                            </div>
                        </li>
                    }
                }).collect_view()}
            </ol>
            {move || (hosting.get().state == HostingState::Stopped).then(|| hosting.get().state_reason).flatten().map(|r| view! {
                <p class="mt-4 text-sm text-slate-600 dark:text-slate-400" data-testid="stopped-how">{r}</p>
            })}
            {move || (hosting.get().state == HostingState::Failed).then(|| view! {
                <div class="mt-4 rounded-lg border border-rose-200 bg-rose-50 p-3 text-sm text-rose-700 dark:border-rose-900 dark:bg-rose-950 dark:text-rose-300" data-testid="failure-reason">
                    {hosting.get().state_reason.unwrap_or_default()}
                </div>
            })}
        </section>
    }
}

#[component]
fn Running(hosting: RwSignal<HostingView>, samples: RwSignal<Vec<StatSample>>) -> impl IntoView {
    let now = RwSignal::new(js_now() as i64);
    #[cfg(feature = "hydrate")]
    {
        let handle = set_interval_with_handle(move || now.set(js_now() as i64), std::time::Duration::from_secs(1)).ok();
        on_cleanup(move || if let Some(h) = handle { h.clear() });
    }
    let uptime = move || hosting.get().running_since.filter(|_| now.get() > 0).map(|s| human_duration((now.get() - s).max(0)));
    let series = move |f: fn(&StatSample) -> f64| Signal::derive(move || samples.with(|v| v.iter().map(|s| (s.t, f(s))).collect::<Vec<_>>()));
    let cpu = series(|s| s.cpu_percent);
    let mem = series(|s| s.memory_used_kib as f64 * 1024.0);
    let io = series(|s| s.disk_read_bps + s.disk_write_bps);
    let last = move || samples.get().last().cloned();
    view! {
        <section class="mt-6 grid grid-cols-1 gap-4 md:grid-cols-2" data-testid="running-view">
            <div class="card space-y-3 p-5">
                <h2 class="font-semibold">"Your site"</h2>
                <p class="text-sm text-slate-500">
                    {move || match hosting.get().state {
                        HostingState::Running => format!("{}{}", HostingState::Running.label(), uptime().map(|u| format!(" for {u}")).unwrap_or_default()),
                        other => format!("The VM is {}.", other.as_str()),
                    }}
                </p>
                <ul class="space-y-1 text-sm">
                    <li class="break-all"><a class="link" target="_blank" rel="noopener" data-testid="site-url" href=move || hosting.get().site_url>{move || hosting.get().site_url}</a></li>
                    <li class="break-all"><a class="link" target="_blank" rel="noopener" href=move || hosting.get().subdomain_url>{move || hosting.get().subdomain_url}</a></li>
                    <li class="break-all"><a class="link" target="_blank" rel="noopener" href=move || hosting.get().user_url>{move || hosting.get().user_url}</a></li>
                </ul>
            </div>
            <div class="card space-y-3 p-5">
                <h2 class="font-semibold">"SSH and SFTP"</h2>
                {move || hosting.get().ssh_command.map(|c| view! { <CopyLine text=c testid="ssh-command"/> })}
                {move || hosting.get().sftp_command.map(|c| view! { <CopyLine text=c testid="sftp-command"/> })}
                <p class="text-xs text-slate-500">"Upload into /var/www/html: it is your site's web root."</p>
            </div>
        </section>
        <section class="mt-4 grid grid-cols-1 gap-4 md:grid-cols-3" data-testid="charts">
            <Sparkline title="CPU" samples=cpu format=|v| format!("{v:.1} %") label=Signal::derive(move || last().map(|s| format!("{:.1} %", s.cpu_percent)).unwrap_or_else(|| "–".into())) max=100.0/>
            <Sparkline title="Memory" color="stroke-emerald-500" samples=mem format=human_bytes label=Signal::derive(move || last().map(|s| human_bytes(s.memory_used_kib as f64 * 1024.0)).unwrap_or_else(|| "–".into()))/>
            <Sparkline title="Disk IO" color="stroke-amber-500" samples=io format=|v| format!("{}/s", human_bytes(v)) label=Signal::derive(move || last().map(|s| format!("{}/s", human_bytes(s.disk_read_bps + s.disk_write_bps))).unwrap_or_else(|| "–".into()))/>
        </section>
    }
}

/// The console: an interactive terminal on the VM's serial line (xterm.js, mounted by
/// `/console.js` on the `data-vmw-terminal` element, over the console WebSocket), the console
/// password form, and the read-only boot log.
#[component]
fn Console(id: i32, login_user: String, hosting: RwSignal<HostingView>) -> impl IntoView {
    let term_open = RwSignal::new(false);
    let running = move || hosting.get().state == HostingState::Running;
    let user = login_user.clone();
    view! {
        <section class="card mt-6 space-y-4 p-5" id="console" data-testid="console-section">
            <div class="flex flex-wrap items-start justify-between gap-3">
                <div>
                    <h2 class="font-semibold">"Console"</h2>
                    <p class="mt-1 max-w-2xl text-sm text-slate-500">
                        "A terminal on the VM's serial console, right here. Log in as "
                        <code class="font-mono">{user.clone()}</code>
                        " with the console password you set below (SSH keeps using your keys). "
                        "One console at a time: opening it in another tab takes it over."
                    </p>
                </div>
                <button class="btn-primary" data-testid="terminal-open" on:click=move |_| term_open.update(|o| *o = !*o)>
                    {move || if term_open.get() { "Close terminal" } else { "Open terminal" }}
                </button>
            </div>
            <Show when=move || term_open.get()>
                <div class="overflow-hidden rounded-lg bg-black p-2">
                    <div class="h-[28rem] w-full" data-vmw-terminal=id.to_string() data-testid="terminal"></div>
                </div>
            </Show>
            <Show when=running fallback=|| view! {
                <p class="text-sm text-slate-500" data-testid="console-password-later">"Start the site to set its console password."</p>
            }>
                <ConsolePasswordForm id login_user=login_user.clone()/>
            </Show>
            <BootLog id/>
        </section>
    }
}

#[component]
fn ConsolePasswordForm(id: i32, login_user: String) -> impl IntoView {
    let action = ServerAction::<SetConsolePassword>::new();
    let value = action.value();
    view! {
        <ActionForm action=action attr:class="space-y-2 border-t border-slate-200 pt-4 dark:border-slate-800" attr:data-testid="console-password-form">
            <h3 class="text-sm font-semibold">{format!("Console password for {login_user}")}</h3>
            <input type="hidden" name="id" value=id.to_string()/>
            {move || value.get().and_then(|r| r.ok()).map(|m| view! {
                <p class="text-sm text-emerald-700 dark:text-emerald-400" data-testid="console-password-set">{m}</p>
            })}
            <FormError error=general_error(value, &["password", "confirm"])/>
            <div class="grid gap-3 sm:grid-cols-2">
                <Field label="New console password" name="password" id="f-console-password" kind="password" autocomplete="new-password"
                    hint="At least 10 characters. Set inside the VM; not stored by vm-webhoster." error=field_error(value, "password")/>
                <Field label="Confirm" name="confirm" id="f-console-confirm" kind="password" autocomplete="new-password" error=field_error(value, "confirm")/>
            </div>
            <SubmitButton pending=action.pending() idle="Set console password" busy="Setting…" class="btn-secondary" testid="console-password-submit"/>
        </ActionForm>
    }
}

/// What the boot log says when the VM wrote nothing: a clone of the golden snapshot, a woken or
/// started site and a restored snapshot are restored from saved memory, never booted here.
const NO_BOOT_OUTPUT: &str = "(No boot output. This VM was restored from saved memory, not booted: sites are made from a \
     saved snapshot and wake from one, so there is nothing to show until it boots. Restart boots it, and its log appears here.)";

/// The last lines the VM wrote to its serial console (its boot), read-only.
#[component]
fn BootLog(id: i32) -> impl IntoView {
    let open = RwSignal::new(false);
    let lines = RwSignal::new(Vec::<String>::new());
    #[cfg(feature = "hydrate")]
    {
        let fetch = move || {
            if open.get_untracked() {
                leptos::task::spawn_local(async move {
                    if let Ok(l) = hosting_console(id, 200).await {
                        lines.try_set(l);
                    }
                });
            }
        };
        Effect::new(move |_| {
            if open.get() {
                fetch();
            }
        });
        let handle = set_interval_with_handle(fetch, std::time::Duration::from_secs(3)).ok();
        on_cleanup(move || if let Some(h) = handle { h.clear() });
    }
    let _ = (id, hosting_console);
    view! {
        <div class="border-t border-slate-200 pt-4 dark:border-slate-800">
            <div class="flex items-center justify-between">
                <h3 class="text-sm font-semibold">"Boot log"</h3>
                <button class="btn-secondary" data-testid="console-toggle" on:click=move |_| open.update(|o| *o = !*o)>
                    {move || if open.get() { "Hide" } else { "Show" }}
                </button>
            </div>
            <Show when=move || open.get()>
                <pre class="mt-3 max-h-80 overflow-auto rounded-lg bg-black p-3 text-xs leading-relaxed text-emerald-300" data-testid="console">
                    {move || { let l = lines.get(); if l.is_empty() { NO_BOOT_OUTPUT.to_string() } else { l.join("\n") } }}
                </pre>
            </Show>
        </div>
    }
}

#[component]
fn History(events: RwSignal<Vec<EventView>>) -> impl IntoView {
    view! {
        <section class="card mt-6 p-5">
            <h2 class="font-semibold">"Activity"</h2>
            <ul class="mt-3 max-h-72 space-y-1 overflow-auto text-sm" data-testid="events">
                <For each=move || { let mut e: Vec<EventView> = events.get().into_iter().filter(|e| !(e.kind == EventKind::Step && e.status == EventStatus::Started)).collect(); e.reverse(); e } key=|e| e.id let:e>
                    <li class="flex flex-wrap gap-x-3">
                        <span class="shrink-0 font-mono text-xs text-slate-400">{format_time(e.created_at)}</span>
                        <span class="min-w-0 break-words" class:text-rose-600=e.status == EventStatus::Failed>{e.message.clone()}</span>
                        {e.duration_ms.map(|d| view! { <span class="text-xs text-slate-400">{human_duration(d)}</span> })}
                    </li>
                </For>
            </ul>
        </section>
    }
}

#[cfg(feature = "hydrate")]
mod stream {
    use leptos::prelude::*;
    use wasm_bindgen::JsCast;
    use wasm_bindgen::prelude::Closure;
    use web_sys::{EventSource, MessageEvent};

    use crate::model::{EventView, HostingView, LiveMessage, StatSample};

    /// Samples kept for the charts (three minutes at one a second).
    const SAMPLES_KEPT: usize = 180;

    /// Subscribes to `/api/v1/hostings/{id}/stream`. EventSource reconnects by itself and
    /// sends Last-Event-ID, from which the server replays what was missed. Each SSE event
    /// name is one [`LiveMessage`] variant, its data that variant's payload.
    pub fn connect(
        id: i32,
        hosting: RwSignal<HostingView>,
        events: RwSignal<Vec<EventView>>,
        samples: RwSignal<Vec<StatSample>>,
        gone: RwSignal<bool>,
        connected: RwSignal<bool>,
    ) {
        let after = events.get_untracked().last().map(|e| e.id).unwrap_or(0);
        let Ok(es) = EventSource::new(&format!("/api/v1/hostings/{id}/stream?after={after}")) else { return };
        let es_gone = es.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |m: MessageEvent| {
            let data = m.data().as_string().unwrap_or_default();
            match LiveMessage::from_parts(&m.type_(), &data) {
                Some(LiveMessage::Hosting(h)) => hosting.set(h),
                Some(LiveMessage::Event(ev)) => events.update(|v| {
                    if !v.iter().any(|e| e.id == ev.id) {
                        v.push(ev);
                    }
                }),
                Some(LiveMessage::Stats(s)) => samples.update(|v| {
                    v.push(s);
                    let extra = v.len().saturating_sub(SAMPLES_KEPT);
                    v.drain(..extra);
                }),
                Some(LiveMessage::Deleted { .. }) => {
                    gone.set(true);
                    es_gone.close();
                }
                None => {}
            }
        });
        let on_open = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| connected.set(true));
        let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| connected.set(false));
        for name in LiveMessage::NAMES {
            let _ = es.add_event_listener_with_callback(name, on_message.as_ref().unchecked_ref());
        }
        es.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        es.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        let keep = send_wrapper::SendWrapper::new((on_message, on_open, on_error, es.clone()));
        on_cleanup(move || {
            let k = keep.take();
            k.3.close();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: i32, kind: EventKind, step: Option<Step>, status: EventStatus, message: &str) -> EventView {
        EventView { id, hosting_id: 1, user_id: 1, kind, step, status, message: message.into(), duration_ms: None, created_at: 0 }
    }

    /// A first attempt that failed at start_vm and was rolled back.
    fn failed_attempt() -> Vec<EventView> {
        use {EventKind as K, EventStatus as S};
        vec![
            ev(1, K::State, None, S::Queued, "queued"),
            ev(2, K::Step, Some(Step::AllocatePorts), S::Started, ""),
            ev(3, K::Step, Some(Step::AllocatePorts), S::Succeeded, ""),
            ev(4, K::Step, Some(Step::StartVm), S::Started, ""),
            ev(5, K::Step, Some(Step::StartVm), S::Failed, "no memory"),
            ev(6, K::Undo, Some(Step::AllocatePorts), S::Undone, "Undid"),
            ev(7, K::State, None, S::Failed, "no memory"),
        ]
    }

    #[test]
    fn a_failed_attempt_shows_the_failing_step_and_the_rolled_back_ones() {
        let evs = failed_attempt();
        let start_vm = step_outcome(&evs, Step::StartVm).unwrap();
        assert_eq!((start_vm.status, start_vm.message.as_str()), (EventStatus::Failed, "no memory"));
        assert_eq!(step_outcome(&evs, Step::AllocatePorts).unwrap().status, EventStatus::Undone);
        assert!(step_outcome(&evs, Step::WaitReady).is_none(), "a step never reached is pending");
    }

    #[test]
    fn a_retry_starts_the_steps_over() {
        let mut evs = failed_attempt();
        evs.push(ev(8, EventKind::State, None, EventStatus::Queued, "retry"));
        evs.push(ev(9, EventKind::Step, Some(Step::AllocatePorts), EventStatus::Started, ""));
        assert_eq!(step_outcome(&evs, Step::AllocatePorts).unwrap().status, EventStatus::Started);
        assert!(step_outcome(&evs, Step::StartVm).is_none(), "the old failure is not shown on the new attempt");
    }
}
