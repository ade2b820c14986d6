//! The snapshots section of a hosting's page: take one (a name, with its field error), list
//! them, restore one (after a confirmation) and delete one. The list is read again after each
//! action and whenever the hosting's operation changes (a snapshot or restore ended).
use leptos::form::ActionForm;
use leptos::prelude::*;

use crate::api::snapshots::{TakeSnapshot, delete_snapshot, list_snapshots, restore_snapshot};
use crate::components::charts::human_bytes;
use crate::components::ui::{Field, FormError, field_error, format_time, general_error, toasts};
use crate::model::{HostingState, HostingView, SnapshotState, SnapshotView};

#[component]
pub fn Snapshots(hosting: RwSignal<HostingView>) -> impl IntoView {
    let id = hosting.get_untracked().id;
    let take = ServerAction::<TakeSnapshot>::new();
    let value = take.value();
    let changed = RwSignal::new(0u32);
    let list = Resource::new(
        move || (changed.get(), take.version().get(), hosting.with(|h| h.operation)),
        move |_| list_snapshots(id),
    );
    let confirm = RwSignal::new(None::<i32>);
    let q = toasts();
    let restore = move |sid: i32| {
        confirm.set(None);
        leptos::task::spawn_local(async move {
            match restore_snapshot(id, sid).await {
                Ok(h) => { hosting.try_set(h); }
                Err(e) => q.push(e.to_string()),
            }
        });
    };
    let delete = move |sid: i32| {
        leptos::task::spawn_local(async move {
            match delete_snapshot(id, sid).await {
                Ok(()) => changed.update(|v| *v += 1),
                Err(e) => q.push(e.to_string()),
            }
        });
    };
    // Asleep or stopped, a site keeps its memory saved (a powered-off one has none: the
    // server says so when asked).
    let can_take = move || hosting.with(|h| matches!(h.state, HostingState::Running | HostingState::Sleeping | HostingState::Stopped) && !h.busy());
    let idle = move || hosting.with(|h| !h.busy());
    let row = move |s: SnapshotView| {
        let sid = s.id;
        let ready = s.state == SnapshotState::Ready;
        let name = StoredValue::new(s.name.clone());
        view! {
            <li class="flex flex-wrap items-center gap-x-3 gap-y-1 py-2" data-testid="snapshot" data-snapshot-id=sid.to_string()>
                <span class="min-w-0 break-all font-medium" data-testid="snapshot-name">{s.name.clone()}</span>
                <span class="text-xs text-slate-500">{format_time(s.created_at)}</span>
                <span class="text-xs text-slate-500">{human_bytes(s.size_bytes as f64)}</span>
                {(!ready).then(|| view! { <span class="text-xs text-amber-600" data-testid="snapshot-taking">{s.state.label()}</span> })}
                <span class="ml-auto flex gap-2">
                    <button class="btn-secondary" data-testid="snapshot-restore" disabled=move || !ready || !idle() on:click=move |_| confirm.set(Some(sid))>"Restore…"</button>
                    <button class="btn-secondary" data-testid="snapshot-delete" disabled=move || !ready || !idle() on:click=move |_| delete(sid)>"Delete"</button>
                </span>
                <Show when=move || confirm.get() == Some(sid)>
                    <div class="w-full rounded-lg border border-amber-300 p-3 text-sm dark:border-amber-800" data-testid="snapshot-restore-confirm">
                        <p>"The site goes back to snapshot "<strong>{name.get_value()}</strong>
                            ": its disk and running programs as they were then. Changes made since are lost."</p>
                        <div class="mt-2 flex gap-2">
                            <button class="btn-danger" data-testid="snapshot-restore-confirm-button" on:click=move |_| restore(sid)>"Restore"</button>
                            <button class="btn-secondary" on:click=move |_| confirm.set(None)>"Cancel"</button>
                        </div>
                    </div>
                </Show>
            </li>
        }
    };
    view! {
        <section class="card mt-6 space-y-3 p-5" data-testid="snapshots">
            <div>
                <h2 class="font-semibold">"Snapshots"</h2>
                <p class="mt-1 max-w-2xl text-sm text-slate-500">
                    "A snapshot keeps the site's disk and memory: restoring it brings the running site back as it was. "
                    "Taking one pauses a running site for a few seconds; an asleep or stopped site is not woken."
                </p>
            </div>
            <ActionForm action=take attr:class="flex flex-wrap items-end gap-2" attr:data-testid="snapshot-form">
                <input type="hidden" name="id" value=id.to_string()/>
                <div class="min-w-0 flex-1">
                    <Field label="Snapshot name" name="name" id="f-snapshot-name" hint="Up to 64 letters, digits, spaces and - _ . : ( )" error=field_error(value, "name")/>
                </div>
                // The same nodes whatever the state (the state may change between the server's
                // render and hydration): the button is disabled and the hint shown instead.
                <button type="submit" class="btn-primary" disabled=move || take.pending().get() || !can_take() data-testid="snapshot-submit">
                    {move || if take.pending().get() { "Taking…" } else { "Take snapshot" }}
                </button>
                <p class=move || if can_take() { "hidden" } else { "text-sm text-slate-500" } data-testid="snapshot-later">"Start the site to take a snapshot."</p>
            </ActionForm>
            <FormError error=general_error(value, &["name"])/>
            <Transition fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match list.await {
                        Ok(v) if v.is_empty() => view! { <p class="text-sm text-slate-500" data-testid="snapshots-empty">"No snapshots yet."</p> }.into_any(),
                        Ok(v) => view! { <ul class="divide-y divide-slate-200 dark:divide-slate-800">{v.into_iter().map(row).collect_view()}</ul> }.into_any(),
                        Err(e) => view! { <p class="text-sm text-rose-600">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}
