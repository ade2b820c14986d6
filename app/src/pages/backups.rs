//! The backups section of a hosting's page: the last successful backup, "Back up now" (with
//! the memory, as an option, for a running site), the list with each backup's time, what it
//! added to the repository and its state (the reason when it failed). Read again after each
//! action and whenever the hosting's operation changes (a backup ended). The page's event
//! stream shows a running backup's steps and upload percent (History).
use leptos::prelude::*;

use crate::api::backups::{back_up_now, hosting_backups};
use crate::components::charts::human_bytes;
use crate::components::ui::{format_time, toasts};
use crate::model::{BackupState, BackupView, EventView, HostingState, HostingView, Operation};

#[component]
pub fn Backups(hosting: RwSignal<HostingView>, events: RwSignal<Vec<EventView>>) -> impl IntoView {
    let id = hosting.get_untracked().id;
    let changed = RwSignal::new(0u32);
    let overview = Resource::new(move || (changed.get(), hosting.with(|h| h.operation)), move |_| hosting_backups(id));
    let with_memory = RwSignal::new(false);
    let pending = RwSignal::new(false);
    let q = toasts();
    let back_up = move |_| {
        pending.set(true);
        let mem = with_memory.get_untracked();
        leptos::task::spawn_local(async move {
            match back_up_now(id, mem).await {
                Ok(_) => changed.update(|v| *v += 1),
                Err(e) => q.push(e.to_string()),
            }
            pending.set(false);
        });
    };
    let can = move || hosting.with(|h| matches!(h.state, HostingState::Running | HostingState::Sleeping | HostingState::Stopped) && !h.busy()) && !pending.get();
    let running = move || hosting.with(|h| h.state == HostingState::Running);
    let row = move |b: BackupView| {
        let added = b.bytes_added.map(|n| format!("{} added", human_bytes(n as f64))).unwrap_or_default();
        let (class, label) = match b.state {
            BackupState::Succeeded => ("text-xs text-emerald-600", b.state.label()),
            BackupState::Failed => ("text-xs text-rose-600", b.state.label()),
            BackupState::Running => ("text-xs text-amber-600", b.state.label()),
        };
        view! {
            <li class="flex flex-wrap items-center gap-x-3 gap-y-1 py-2" data-testid="backup" data-backup-id=b.id.to_string()>
                <span class="font-medium">{format_time(b.started_at)}</span>
                <span class="text-xs text-slate-500" data-testid="backup-added">{added}</span>
                {b.with_memory.then(|| view! { <span class="text-xs text-slate-500">"with memory"</span> })}
                <span class=class data-testid="backup-state">{label}</span>
                {b.error.clone().map(|e| view! { <span class="w-full text-xs text-rose-600" data-testid="backup-error">{e}</span> })}
                <crate::pages::backup_restore::BackupRestore hosting=hosting backup=b.clone()/>
            </li>
        }
    };
    view! {
        <section class="card mt-6 space-y-3 p-5" data-testid="backups">
            <div>
                <h2 class="font-semibold">"Backups"</h2>
                <p class="mt-1 max-w-2xl text-sm text-slate-500">
                    "A backup copies the site's disk (and, asleep or stopped, its saved memory) to the backup repository, "
                    "deduplicated and encrypted. A running site keeps running; an asleep or stopped one is not woken."
                </p>
            </div>
            <div class="flex flex-wrap items-center gap-3">
                <button class="btn-primary" data-testid="backup-now" disabled=move || !can() on:click=back_up>
                    {move || if pending.get() { "Starting…" } else { "Back up now" }}
                </button>
                <label class=move || if running() { "flex items-center gap-2 text-sm" } else { "hidden" }>
                    <input type="checkbox" data-testid="backup-with-memory" prop:checked=move || with_memory.get()
                        on:change=move |ev| with_memory.set(event_target_checked(&ev))/>
                    "With its memory (the site pauses a few seconds)"
                </label>
            </div>
            <OperationProgress hosting events/>
            <Transition fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match overview.await {
                        Ok(o) => {
                            let last = match &o.last_success {
                                Some(b) => format!("Last successful backup: {}", format_time(b.finished_at.unwrap_or(b.started_at))),
                                None => "No successful backup yet.".to_owned(),
                            };
                            view! {
                                <p class="text-sm" data-testid="backup-last">{last}</p>
                                {o.repository_on_node_disk.then(|| view! {
                                    <p class="text-sm text-amber-600" data-testid="backup-on-node-disk">
                                        "The backup repository shares this node's disk: a lost disk loses the backups too, until an administrator sets an off-node repository."
                                    </p>
                                })}
                                <ul class="divide-y divide-slate-200 dark:divide-slate-800">{o.backups.into_iter().map(row).collect_view()}</ul>
                                <crate::pages::backup_schedule::BackupScheduleForm id view=o.schedule changed/>
                            }.into_any()
                        }
                        Err(e) => view! { <p class="text-sm text-rose-600">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// A backup's or a restore's progress while it runs: a bar and its latest step, from the
/// page's live events (`vmw_types::operation_progress`); after one failed, why (until the site
/// does something else).
#[component]
fn OperationProgress(hosting: RwSignal<HostingView>, events: RwSignal<Vec<EventView>>) -> impl IntoView {
    let running = move || hosting.with(|h| matches!(h.operation, Some(Operation::Backup | Operation::RestoreBackup)));
    let progress = move || events.with(|e| vmw_types::operation_progress(e));
    let failure = move || events.with(|e| vmw_types::last_backup_failure(e));
    move || {
        if !running() {
            return failure().map(|why| view! { <p class="text-sm text-rose-600 dark:text-rose-400" data-testid="operation-failure">{why}</p> }.into_any());
        }
        Some({
            let (pct, msg) = progress().unwrap_or((0, "Starting…".to_owned()));
            let label = hosting.with(|h| h.operation.map(|o| o.label()).unwrap_or_default());
            view! {
                <div class="space-y-1" data-testid="operation-progress" data-percent=pct.to_string()>
                    <div class="flex items-center justify-between text-sm">
                        <span class="font-medium">{label}</span>
                        <span class="text-slate-500">{format!("{pct} %")}</span>
                    </div>
                    <div class="h-2 w-full overflow-hidden rounded bg-slate-200 dark:bg-slate-700" role="progressbar"
                        aria-label="Progress of the running backup or restore" aria-valuemin="0" aria-valuemax="100" aria-valuenow=pct.to_string()>
                        <div class="h-2 bg-indigo-500 transition-all" style=format!("width: {pct}%")></div>
                    </div>
                    <p class="text-xs text-slate-500" data-testid="operation-progress-step">{msg}</p>
                </div>
            }
            .into_any()
        })
    }
}
