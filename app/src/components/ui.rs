//! Small building blocks: form fields with their error, state badges, toasts, copy buttons.
use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{HostingState, Operation};

/// A labelled input whose error (from a server action) is shown beneath it.
#[component]
pub fn Field(
    label: &'static str,
    name: &'static str,
    #[prop(default = "text")] kind: &'static str,
    #[prop(optional, into)] error: Signal<Option<String>>,
    #[prop(optional, into)] hint: Option<String>,
    #[prop(optional, into)] value: Option<String>,
    #[prop(optional)] autocomplete: Option<&'static str>,
    #[prop(optional)] on_input: Option<Callback<String>>,
    /// The input's id when `f-{name}` would repeat one on the page (two forms, one field name).
    #[prop(optional)] id: Option<&'static str>,
) -> impl IntoView {
    let id = id.map(str::to_owned).unwrap_or_else(|| format!("f-{name}"));
    let err_id = format!("{id}-error");
    view! {
        <div class="space-y-1">
            <label for=id.clone() class="block text-sm font-medium">{label}</label>
            <input
                id=id
                name=name
                type=kind
                value=value
                autocomplete=autocomplete
                aria-describedby=err_id.clone()
                class="input"
                class:input-error=move || error.get().is_some()
                on:input=move |ev| {
                    if let Some(cb) = on_input {
                        cb.run(event_target_value(&ev));
                    }
                }
            />
            {hint.map(|h| view! { <p class="text-xs text-slate-500 dark:text-slate-400">{h}</p> })}
            <p id=err_id class="min-h-4 text-sm text-rose-600 dark:text-rose-400" data-field-error=name>{move || error.get()}</p>
        </div>
    }
}

/// The message of an action's error for one field.
pub fn field_error<T, S>(value: S, field: &'static str) -> Signal<Option<String>>
where
    T: Clone + Send + Sync + 'static,
    S: Get<Value = Option<Result<T, AppError>>> + Clone + Send + Sync + 'static,
{
    Signal::derive(move || value.get().and_then(|r| r.err()).and_then(|e| e.for_field(field)))
}

/// An error not tied to a field, shown above a form.
#[component]
pub fn FormError(#[prop(into)] error: Signal<Option<String>>) -> impl IntoView {
    view! {
        <Show when=move || error.get().is_some()>
            <div role="alert" class="rounded-lg border border-rose-200 bg-rose-50 px-3 py-2 text-sm text-rose-700 dark:border-rose-900 dark:bg-rose-950 dark:text-rose-300" data-testid="form-error">
                {move || error.get()}
            </div>
        </Show>
    }
}

pub fn general_error<T, S>(value: S, fields: &'static [&'static str]) -> Signal<Option<String>>
where
    T: Clone + Send + Sync + 'static,
    S: Get<Value = Option<Result<T, AppError>>> + Clone + Send + Sync + 'static,
{
    Signal::derive(move || {
        value.get().and_then(|r| r.err()).filter(|e| !e.is_field_error(fields)).map(|e| e.to_string())
    })
}

/// A form's submit button: disabled, and saying `busy` instead of `idle`, while `pending`.
#[component]
pub fn SubmitButton(
    #[prop(into)] pending: Signal<bool>,
    idle: &'static str,
    busy: &'static str,
    #[prop(default = "btn-primary w-full")] class: &'static str,
    #[prop(optional)] testid: Option<&'static str>,
) -> impl IntoView {
    view! {
        <button type="submit" class=class disabled=move || pending.get() data-testid=testid>
            {move || if pending.get() { busy } else { idle }}
        </button>
    }
}

/// A button that removes one item with `remove`, then bumps `removed` (lists keyed on it load
/// again); a failure is shown as a toast.
#[component]
pub fn RemoveButton<F, Fut>(label: &'static str, remove: F, removed: RwSignal<u32>) -> impl IntoView
where
    F: Fn() -> Fut + Copy + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), AppError>> + 'static,
{
    let q = toasts();
    view! {
        <button class="btn-ghost text-rose-600" on:click=move |_| {
            leptos::task::spawn_local(async move {
                match remove().await {
                    Ok(()) => { removed.try_update(|n| *n += 1); }
                    Err(e) => q.push(e.to_string()),
                }
            });
        }>{label}</button>
    }
}

/// The items `list` loads, shown by `each`, or `empty` when there are none (a failed load shows
/// as none). Goes inside a `Suspense` or `Transition`.
#[component]
pub fn ListOr<T, F, IV>(list: Resource<Result<Vec<T>, AppError>>, #[prop(into)] empty: ViewFn, each: F) -> impl IntoView
where
    T: Clone + Send + Sync + 'static,
    F: Fn(Vec<T>) -> IV + Clone + Send + Sync + 'static,
    IV: IntoView + 'static,
{
    move || {
        let (empty, each) = (empty.clone(), each.clone());
        Suspend::new(async move {
            let items = list.await.unwrap_or_default();
            if items.is_empty() { empty.run() } else { each(items).into_any() }
        })
    }
}

/// A hosting's state, with the operation in progress (`Running (Stop…)`); `data-state` is the
/// state's stable name (`running`).
#[component]
pub fn StateBadge(#[prop(into)] state: Signal<HostingState>, #[prop(into, optional)] operation: Signal<Option<Operation>>) -> impl IntoView {
    let class = move || {
        let base = "inline-flex items-center gap-1.5 rounded-full px-2.5 py-0.5 text-xs font-medium";
        let color = match state.get() {
            HostingState::Running => "bg-emerald-100 text-emerald-800 dark:bg-emerald-900/50 dark:text-emerald-300",
            HostingState::Stopped => "bg-slate-200 text-slate-700 dark:bg-slate-800 dark:text-slate-300",
            HostingState::Sleeping => "bg-sky-100 text-sky-800 dark:bg-sky-900/50 dark:text-sky-300",
            HostingState::Failed => "bg-rose-100 text-rose-800 dark:bg-rose-900/50 dark:text-rose-300",
            HostingState::Deleting => "bg-amber-100 text-amber-800 dark:bg-amber-900/50 dark:text-amber-300",
            HostingState::Queued | HostingState::Provisioning | HostingState::Spare => {
                "bg-indigo-100 text-indigo-800 dark:bg-indigo-900/50 dark:text-indigo-300"
            }
        };
        format!("{base} {color}")
    };
    // States that are themselves work in progress say so without naming the operation.
    let in_progress = move || matches!(state.get(), HostingState::Queued | HostingState::Provisioning | HostingState::Deleting);
    let busy = move || operation.get().is_some() || in_progress();
    view! {
        <span class=class data-testid="state-badge" data-state=move || state.get().as_str()>
            <span class="h-1.5 w-1.5 rounded-full bg-current" class:animate-pulse=busy></span>
            {move || match operation.get() {
                Some(op) if !in_progress() => format!("{} ({}…)", state.get().label(), op.label()),
                // Asleep is not down: say what brings it back.
                None if state.get() == HostingState::Sleeping => "Asleep: wakes on the next visit".to_string(),
                _ => state.get().label().to_string(),
            }}
        </span>
    }
}

/// A command line with a copy button.
#[component]
pub fn CopyLine(#[prop(into)] text: String, #[prop(optional)] testid: &'static str) -> impl IntoView {
    let copied = RwSignal::new(false);
    let t = text.clone();
    let copy = move |_| {
        #[cfg(feature = "hydrate")]
        {
            let _ = window().navigator().clipboard().write_text(&t);
            copied.set(true);
            set_timeout(move || { copied.try_set(false); }, std::time::Duration::from_millis(1500));
        }
        let _ = &t;
    };
    view! {
        <div class="flex items-center gap-2 rounded-lg bg-slate-900 px-3 py-2 font-mono text-sm text-slate-100 dark:bg-black">
            <code class="min-w-0 flex-1 overflow-x-auto whitespace-nowrap" data-testid=testid>{text}</code>
            <button type="button" on:click=copy class="rounded px-2 py-0.5 text-xs text-slate-300 hover:bg-slate-700">
                {move || if copied.get() { "Copied" } else { "Copy" }}
            </button>
        </div>
    }
}

/// Toast messages (errors of actions), shown bottom right.
#[derive(Clone, Copy)]
pub struct ToastQueue(pub RwSignal<Vec<(u64, String)>>);

impl ToastQueue {
    pub fn push(&self, msg: String) {
        let id = (js_now() as u64) ^ (msg.len() as u64);
        self.0.update(|v| v.push((id, msg)));
        let q = self.0;
        set_timeout(move || q.update(|v| v.retain(|(i, _)| *i != id)), std::time::Duration::from_secs(6));
    }
}

pub fn js_now() -> f64 {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::now()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        0.0
    }
}

pub fn toasts() -> ToastQueue {
    use_context::<ToastQueue>().unwrap_or_else(|| ToastQueue(RwSignal::new(Vec::new())))
}

#[component]
pub fn Toasts() -> impl IntoView {
    let q = ToastQueue(RwSignal::new(Vec::new()));
    provide_context(q);
    view! {
        <div class="pointer-events-none fixed bottom-4 right-4 z-50 flex w-80 flex-col gap-2" aria-live="polite">
            <For each=move || q.0.get() key=|(id, _)| *id let:item>
                <div class="pointer-events-auto rounded-lg border border-rose-200 bg-white px-4 py-3 text-sm shadow-lg dark:border-rose-900 dark:bg-slate-900" role="alert" data-testid="toast">
                    {item.1}
                </div>
            </For>
        </div>
    }
}

pub fn format_time(ms: i64) -> String {
    #[cfg(feature = "hydrate")]
    {
        let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
        return String::from(d.to_locale_string("en-GB", &wasm_bindgen::JsValue::UNDEFINED));
    }
    #[allow(unreachable_code)]
    {
        let secs = ms / 1000;
        let (d, rem) = (secs / 86400, secs % 86400);
        let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
        // Days since the epoch to a civil date (Howard Hinnant's algorithm).
        let z = d + 719468;
        let era = z.div_euclid(146097);
        let doe = z - era * 146097;
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
        format!("{day:02}/{month:02}/{year}, {h:02}:{m:02}:{s:02} UTC")
    }
}

pub fn human_duration(ms: i64) -> String {
    let s = ms / 1000;
    if ms < 1000 {
        format!("{ms} ms")
    } else if s < 60 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if s < 3600 {
        format!("{} min {} s", s / 60, s % 60)
    } else if s < 86400 {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    } else {
        format!("{} d {} h", s / 86400, (s % 86400) / 3600)
    }
}
