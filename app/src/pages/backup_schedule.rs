//! The backup schedule of a hosting's page (inside its Backups section): when the next scheduled
//! backup runs (in the reader's time), what the owner's backups take against the quota, and the
//! form: off, daily or weekly at a UTC time, which backups are kept, with or without memory.
//! The admin page's list of sites whose backups are stale is [`StaleBackupsSection`].
use leptos::prelude::*;
use vmw_types::{BackupFrequency, BackupSchedule, BackupScheduleView, Weekday};

use crate::api::backup_schedule::{admin_stale_backups, set_backup_schedule};
use crate::components::charts::human_bytes;
use crate::components::ui::{format_time, toasts};

const WEEKDAYS: [Weekday; 7] = [Weekday::Monday, Weekday::Tuesday, Weekday::Wednesday, Weekday::Thursday, Weekday::Friday, Weekday::Saturday, Weekday::Sunday];

/// `02:00 UTC, daily` and the like.
fn when(s: &BackupSchedule) -> String {
    match (s.frequency, s.weekday) {
        (BackupFrequency::Off, _) => "Off: this site is backed up only when you press \"Back up now\".".to_owned(),
        (BackupFrequency::Weekly, Some(d)) => format!("Weekly on {}, {:02}:{:02} UTC.", d.label(), s.hour, s.minute),
        _ => format!("Daily, {:02}:{:02} UTC.", s.hour, s.minute),
    }
}

#[component]
pub fn BackupScheduleForm(id: i32, view: Option<BackupScheduleView>, changed: RwSignal<u32>) -> impl IntoView {
    let Some(v) = view else { return ().into_any() };
    let s = v.schedule.clone();
    let frequency = RwSignal::new(s.frequency);
    let weekday = RwSignal::new(s.weekday.unwrap_or(Weekday::Sunday));
    let time = RwSignal::new(format!("{:02}:{:02}", s.hour, s.minute));
    let keep = [RwSignal::new(s.keep_daily.to_string()), RwSignal::new(s.keep_weekly.to_string()), RwSignal::new(s.keep_monthly.to_string())];
    let with_memory = RwSignal::new(s.with_memory);
    let pending = RwSignal::new(false);
    let q = toasts();
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let t = time.get_untracked();
        let (h, m) = t.split_once(':').unwrap_or(("", ""));
        let num = |s: &str| s.trim().parse::<u32>().ok();
        let (Some(hour), Some(minute)) = (num(h), num(m)) else { return q.push("The time is HH:MM (UTC).".to_owned()) };
        let counts: Vec<Option<u32>> = keep.iter().map(|k| num(&k.get_untracked())).collect();
        let [Some(d), Some(w), Some(mo)] = counts[..] else { return q.push("How many backups to keep: whole numbers.".to_owned()) };
        let f = frequency.get_untracked();
        let schedule = BackupSchedule {
            frequency: f,
            weekday: (f == BackupFrequency::Weekly).then(|| weekday.get_untracked()),
            hour: hour.min(255) as u8,
            minute: minute.min(255) as u8,
            keep_daily: d,
            keep_weekly: w,
            keep_monthly: mo,
            with_memory: with_memory.get_untracked(),
        };
        pending.set(true);
        leptos::task::spawn_local(async move {
            match set_backup_schedule(id, schedule).await {
                Ok(_) => changed.update(|v| *v += 1),
                Err(e) => q.push(e.to_string()),
            }
            pending.set(false);
        });
    };
    let next = v.next_run_at.map(|t| format!("Next scheduled backup: {} (your time; sites start up to 30 minutes after the time chosen, so that they do not all start at once).", format_time(t)));
    let usage = match v.quota_bytes {
        Some(q) => format!("Your backups take {} of your {} of backup storage.", human_bytes(v.user_usage_bytes as f64), human_bytes(q as f64)),
        None => format!("Your backups take {}.", human_bytes(v.user_usage_bytes as f64)),
    };
    let keep_input = |label: &'static str, testid: &'static str, sig: RwSignal<String>| {
        view! {
            <label class="flex flex-col text-xs text-slate-500">{label}
                <input class="input w-20" type="number" min="0" data-testid=testid prop:value=move || sig.get() on:input=move |ev| sig.set(event_target_value(&ev))/>
            </label>
        }
    };
    view! {
        <div class="space-y-2 border-t border-slate-200 pt-3 dark:border-slate-800" data-testid="backup-schedule">
            <h3 class="text-sm font-semibold">"Schedule"</h3>
            <p class="text-sm" data-testid="backup-schedule-when">{when(&s)}</p>
            {next.map(|n| view! { <p class="text-sm" data-testid="backup-next">{n}</p> })}
            <p class="text-sm text-slate-500" data-testid="backup-usage">{usage}</p>
            <form class="flex flex-wrap items-end gap-3" on:submit=save>
                <label class="flex flex-col text-xs text-slate-500">"How often"
                    <select class="input" data-testid="backup-frequency" on:change=move |ev| {
                        frequency.set(match event_target_value(&ev).as_str() { "daily" => BackupFrequency::Daily, "weekly" => BackupFrequency::Weekly, _ => BackupFrequency::Off })
                    }>
                        {[BackupFrequency::Off, BackupFrequency::Daily, BackupFrequency::Weekly].into_iter().map(|f| view! {
                            <option value=f.to_string() selected=move || frequency.get() == f>{f.label()}</option>
                        }).collect_view()}
                    </select>
                </label>
                <label class=move || if frequency.get() == BackupFrequency::Weekly { "flex flex-col text-xs text-slate-500" } else { "hidden" }>"Day"
                    <select class="input" data-testid="backup-weekday" on:change=move |ev| {
                        let v = event_target_value(&ev);
                        if let Some(d) = WEEKDAYS.into_iter().find(|d| d.to_string() == v) { weekday.set(d) }
                    }>
                        {WEEKDAYS.into_iter().map(|d| view! { <option value=d.to_string() selected=move || weekday.get() == d>{d.label()}</option> }).collect_view()}
                    </select>
                </label>
                <label class="flex flex-col text-xs text-slate-500">"Time (UTC)"
                    <input class="input" type="time" data-testid="backup-time" prop:value=move || time.get() on:input=move |ev| time.set(event_target_value(&ev))/>
                </label>
                {keep_input("Keep daily", "backup-keep-daily", keep[0])}
                {keep_input("Keep weekly", "backup-keep-weekly", keep[1])}
                {keep_input("Keep monthly", "backup-keep-monthly", keep[2])}
                <label class="flex items-center gap-2 text-sm">
                    <input type="checkbox" data-testid="backup-schedule-memory" prop:checked=move || with_memory.get() on:change=move |ev| with_memory.set(event_target_checked(&ev))/>
                    "With its memory"
                </label>
                <button class="btn-secondary" type="submit" data-testid="backup-schedule-save" disabled=move || pending.get()>
                    {move || if pending.get() { "Saving…" } else { "Save schedule" }}
                </button>
            </form>
            <p class="text-xs text-slate-500">"Retention applies to every backup of the site, \"Back up now\" ones too: the newest of each of the last days, weeks and months are kept, older ones are forgotten."</p>
        </div>
    }
    .into_any()
}

/// The admin page's list of sites whose last successful backup is older than their schedule's
/// period plus six hours, and whether the repository shares the node's disk.
#[component]
pub fn StaleBackupsSection() -> impl IntoView {
    // Read in the browser only, after hydration: a resource of its own inside the admin page's
    // Suspense, rendered on the server too, made hydration fail (e2e accounts.test.mjs, an
    // instance without hosting, whose answer is an error).
    let hydrated = RwSignal::new(false);
    Effect::new(move || hydrated.set(true));
    move || hydrated.get().then(StaleBackupsList)
}

#[component]
fn StaleBackupsList() -> impl IntoView {
    let stale = Resource::new(|| (), |_| admin_stale_backups());
    view! {
        <section class="card mt-6 p-4 sm:p-5" data-testid="admin-backups">
            <h2 class="font-semibold">"Backups"</h2>
            <Transition fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match stale.await {
                        Ok(o) => view! {
                            {o.repository_on_node_disk.then(|| view! {
                                <p class="mt-2 text-sm text-amber-600" data-testid="admin-backup-on-node-disk">
                                    "The backup repository is the default folder on this node's disk: a lost disk loses the sites and their backups. Set --backup-repository to an off-node repository (SFTP, REST, S3)."
                                </p>
                            })}
                            <p class="mt-2 text-sm text-slate-500">{format!("Sites whose last successful backup is older than their schedule allows: {}", o.stale.len())}</p>
                            <ul class="mt-2 divide-y divide-slate-200 dark:divide-slate-800" data-testid="admin-stale-backups">
                                {o.stale.into_iter().map(|s| {
                                    let last = s.last_success_at.map(format_time).unwrap_or_else(|| "never".to_owned());
                                    view! {
                                        <li class="flex flex-wrap gap-x-3 py-2 text-sm" data-testid="admin-stale-backup">
                                            <a class="link font-medium" href=format!("/hostings/{}", s.hosting_id)>{s.slug}</a>
                                            <span class="text-slate-500">{s.owner}</span>
                                            <span>{format!("last success: {last}")}</span>
                                            <span class="text-slate-500">{when(&s.schedule)}</span>
                                        </li>
                                    }
                                }).collect_view()}
                            </ul>
                        }.into_any(),
                        Err(e) => view! { <p class="text-sm text-rose-600">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}
