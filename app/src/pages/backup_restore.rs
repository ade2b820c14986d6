//! A succeeded backup's actions on the hosting page: "Restore…" (a small dialog: in place, its
//! current state snapshotted first, or as a new site with an optional name) and "Download" (the disk as one standalone qcow2, a plain
//! link to the REST route). The restore's steps show in the page's History as they happen.
use leptos::prelude::*;

use crate::api::backup_restore::restore_backup;
use crate::components::ui::toasts;
use crate::model::{BackupState, BackupView, HostingState, HostingView};

#[component]
pub fn BackupRestore(hosting: RwSignal<HostingView>, backup: BackupView) -> impl IntoView {
    if backup.state != BackupState::Succeeded {
        return ().into_any();
    }
    let (id, bid) = (hosting.get_untracked().id, backup.id);
    let open = RwSignal::new(false);
    let pending = RwSignal::new(false);
    let as_new = RwSignal::new(false);
    let slug = RwSignal::new(String::new());
    let q = toasts();
    let idle = move || hosting.with(|h| matches!(h.state, HostingState::Running | HostingState::Sleeping | HostingState::Stopped) && !h.busy()) && !pending.get();
    let restore = move |_| {
        open.set(false);
        pending.set(true);
        leptos::task::spawn_local(async move {
            let (target, name) = if as_new.get_untracked() { ("new_site", Some(slug.get_untracked())) } else { ("in_place", None) };
            match restore_backup(id, bid, target.into(), name).await {
                // The new site is on the dashboard (its progress on its own page).
                Ok(h) if h.id != id => q.push(format!("Restoring as the new site '{}': it shows on your dashboard", h.slug)),
                Ok(h) => {
                    hosting.try_set(h);
                }
                Err(e) => q.push(e.to_string()),
            }
            pending.set(false);
        });
    };
    let href = format!("/api/v1/hostings/{id}/backups/{bid}/download");
    view! {
        <span class="flex items-center gap-2">
            <button class="btn-secondary" data-testid="backup-restore" disabled=move || !idle() on:click=move |_| open.update(|o| *o = !*o)>"Restore…"</button>
            <a class="btn-secondary" data-testid="backup-download" href=href download>"Download"</a>
        </span>
        <Show when=move || open.get()>
            <div class="w-full rounded-lg border border-amber-300 p-3 text-sm dark:border-amber-800" data-testid="backup-restore-dialog">
                <label class="flex items-center gap-2">
                    <input type="radio" name=format!("restore-{bid}") data-testid="backup-restore-in-place" prop:checked=move || !as_new.get() on:change=move |_| as_new.set(false)/>
                    "In place: the site's disk (and its memory, if the backup has it) become the backup's. A snapshot of the site as it is now is taken first ('before restoring backup " {bid} "'), so you can go back with it."
                </label>
                <label class="mt-1 flex items-center gap-2">
                    <input type="radio" name=format!("restore-{bid}") data-testid="backup-restore-new-site" prop:checked=move || as_new.get() on:change=move |_| as_new.set(true)/>
                    "As a new site (this one is not touched), named"
                    <input class="input w-48" data-testid="backup-restore-slug" placeholder="default: {this site}-restored" prop:value=move || slug.get()
                        on:input=move |ev| slug.set(event_target_value(&ev))/>
                </label>
                <div class="mt-2 flex gap-2">
                    <button class="btn-danger" data-testid="backup-restore-confirm" on:click=restore>"Restore"</button>
                    <button class="btn-secondary" on:click=move |_| open.set(false)>"Cancel"</button>
                </div>
            </div>
        </Show>
    }
    .into_any()
}
