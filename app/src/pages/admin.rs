//! The administrator's page: nodes with their capacity, every hosting with its owner and the
//! actions on it, recent events of all users, and accounts with disable/enable. Laid out as
//! wrapping rows, not wide tables, so it fits a phone.
use leptos::prelude::*;

use super::RequireUser;
use leptos::form::ActionForm;

use crate::api::admin::{AdminAddNode, admin_overview, admin_remove_node, admin_set_disabled, admin_set_node_drained};
use crate::api::hostings::hosting_action;
use crate::components::charts::human_bytes;
use crate::components::ui::{Field, FormError, StateBadge, SubmitButton, field_error, format_time, general_error, toasts};
use crate::model::{HostingView, NodeView, Operation, UserView};

#[component]
pub fn AdminPage() -> impl IntoView {
    view! { <RequireUser title="Admin" child=|_u: UserView| view! { <Admin/> }/> }
}

#[component]
fn Admin() -> impl IntoView {
    let add = ServerAction::<AdminAddNode>::new();
    // The overview loads again after each node added (not after a refused one: the form and
    // what was typed stay, with the errors).
    let added = RwSignal::new(0u32);
    Effect::new(move |_| {
        if matches!(add.value().get(), Some(Ok(_))) {
            added.update(|n| *n += 1);
        }
    });
    let data = Resource::new_blocking(move || added.get(), |_| admin_overview());
    view! {
        <h1 class="text-2xl font-semibold">"Administration"</h1>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <p class="mt-4 text-rose-600" data-testid="admin-error">{e.to_string()}</p> }.into_any(),
                    Ok(o) => {
                        let me = o.me;
                        view! {
                            <section class="mt-6" data-testid="admin-nodes">
                                <h2 class="font-semibold">"Nodes"</h2>
                                <div class="mt-3 grid grid-cols-1 gap-4">
                                    {o.nodes.into_iter().map(|n| view! { <NodeCard n/> }).collect_view()}
                                </div>
                                <AddNodeForm add/>
                            </section>
                            <Certificates tls=o.tls/>
                            <crate::pages::backup_schedule::StaleBackupsSection/>
                            <section class="card mt-6 p-4 sm:p-5">
                                <h2 class="font-semibold">"All hostings"</h2>
                                <ul class="mt-3 divide-y divide-slate-200 dark:divide-slate-800" data-testid="admin-hostings">
                                    {o.hostings.into_iter().map(|(h, owner)| view! { <HostingRow h owner/> }).collect_view()}
                                </ul>
                            </section>
                            <section class="card mt-6 p-4 sm:p-5">
                                <h2 class="font-semibold">{format!("Users ({})", o.users.len())}</h2>
                                <ul class="mt-3 divide-y divide-slate-200 dark:divide-slate-800" data-testid="admin-users">
                                    {o.users.into_iter().map(|u| view! { <UserRow u me/> }).collect_view()}
                                </ul>
                            </section>
                            <section class="card mt-6 p-4 sm:p-5">
                                <h2 class="font-semibold">"Recent events"</h2>
                                <ul class="mt-3 space-y-2 text-sm sm:space-y-1" data-testid="admin-events">
                                    {o.events.into_iter().map(|e| view! {
                                        <li class="flex flex-wrap gap-x-3">
                                            <span class="font-mono text-xs text-slate-400">{format_time(e.created_at)}</span>
                                            <span class="text-xs text-slate-500">{format!("#{}", e.hosting_id)}</span>
                                            <span class="min-w-0 break-words">{e.message}</span>
                                        </li>
                                    }).collect_view()}
                                </ul>
                            </section>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

/// Adding a node (a hypervisor) by its libvirt URI. The node is checked before anything is
/// stored: it must answer, have the guest image in a storage pool and see this host's node
/// folder (shared storage); each refusal is shown at its field.
#[component]
fn AddNodeForm(add: ServerAction<AdminAddNode>) -> impl IntoView {
    let value = add.value();
    let fields: &'static [&'static str] = &["name", "libvirt_uri", "address", "memory_mib", "disk_gib"];
    let done = move || match value.get() {
        Some(Ok(n)) => Some(n.name),
        _ => None,
    };
    view! {
        <details class="card mt-4 p-4 sm:p-5" data-testid="add-node" open=move || value.with(|v| v.is_some())>
            <summary class="cursor-pointer font-semibold">"Add a node"</summary>
            <p class="mt-2 text-xs text-slate-500">
                "A hypervisor reached over libvirt. It needs the guest image as a volume of one of its storage pools and this host's node folder at the same path (shared storage): see the README, \"More than one node\". Nothing is stored unless the node passes these checks."
            </p>
            <ActionForm action=add attr:class="mt-3 grid grid-cols-1 gap-x-4 sm:grid-cols-2" attr:data-testid="add-node-form">
                <div class="sm:col-span-2"><FormError error=general_error(value, fields)/></div>
                <Field label="Name" name="name" id="f-node-name" error=field_error(value, "name") hint="1-32 of a-z, 0-9 and '-', e.g. node-2"/>
                <Field label="libvirt URI" name="libvirt_uri" error=field_error(value, "libvirt_uri")
                    hint="qemu+ssh://root@10.0.0.12/system?keyfile=/etc/vmw/id_ed25519 or qemu+tls://host/system"/>
                <Field label="Address" name="address" error=field_error(value, "address") hint="The IP nginx reaches the node's VM forwards on"/>
                <div class="grid grid-cols-2 gap-x-4">
                    <Field label="Memory (MiB)" name="memory_mib" kind="number" value="65536" error=field_error(value, "memory_mib")/>
                    <Field label="Disk (GiB)" name="disk_gib" kind="number" value="500" error=field_error(value, "disk_gib")/>
                </div>
                <div class="flex items-center gap-3 sm:col-span-2">
                    <SubmitButton pending=add.pending() idle="Add node" busy="Checking the node…" class="btn-primary" testid="add-node-submit"/>
                    {move || done().map(|n| view! { <p class="text-sm text-emerald-600" data-testid="node-added">{format!("Node {n} added.")}</p> })}
                </div>
            </ActionForm>
        </details>
    }
}

/// A used-of-limit bar with the numbers beneath it.
#[component]
fn Meter(label: &'static str, used: u64, limit: u64, unit: &'static str, testid: &'static str) -> impl IntoView {
    let pct = if limit > 0 { (used as f64 / limit as f64 * 100.0).min(100.0) } else { 0.0 };
    let free = limit.saturating_sub(used);
    let color = if pct >= 90.0 { "bg-rose-500" } else if pct >= 70.0 { "bg-amber-500" } else { "bg-emerald-500" };
    view! {
        <div data-testid=testid>
            <p class="text-xs text-slate-500">{label}</p>
            <div class="mt-1 h-2 w-full overflow-hidden rounded-full bg-slate-200 dark:bg-slate-800">
                <div class=format!("h-full {color}") style=format!("width: {pct:.1}%")></div>
            </div>
            <p class="mt-1 text-sm">
                <span class="font-semibold">{format!("{used} {unit}")}</span>
                {format!(" committed of {limit} {unit} · ")}
                <span data-testid=format!("{testid}-free")>{format!("{free} {unit} free")}</span>
            </p>
        </div>
    }
}

/// A node's health line: connected (with its libvirt version) or unreachable (with why).
#[component]
fn NodeHealthLine(n: NodeView) -> impl IntoView {
    let h = n.health.clone();
    let (text, class) = if h.connected {
        let v = h.libvirt_version.clone().unwrap_or_default();
        let image = if h.image_ok { "guest image present" } else { "guest image missing" };
        (format!("connected · libvirt {v} · {image}"), if h.image_ok { "text-emerald-600" } else { "text-amber-600" })
    } else {
        ("unreachable: its sites are kept and come back with it".to_owned(), "text-rose-600")
    };
    view! {
        <p class=format!("text-xs {class}") data-testid="node-health" data-connected=h.connected.to_string()>{text}</p>
        {h.last_error.map(|e| view! { <p class="break-all text-xs text-rose-600" data-testid="node-error">{e}</p> })}
        {n.drained.then(|| view! { <p class="text-xs font-semibold text-amber-600" data-testid="node-drained">"drained: takes no new sites"</p> })}
    }
}

#[component]
fn NodeCard(n: NodeView) -> impl IntoView {
    let used = n.memory_total_kib.saturating_sub(n.memory_available_kib);
    let pct = if n.memory_total_kib > 0 { used as f64 / n.memory_total_kib as f64 * 100.0 } else { 0.0 };
    let q = toasts();
    let drained = RwSignal::new(n.drained);
    let gone = RwSignal::new(false);
    let id = n.id;
    let drain = move |_| {
        let want = !drained.get_untracked();
        leptos::task::spawn_local(async move {
            match admin_set_node_drained(id, want).await {
                Ok(v) => drained.set(v.drained),
                Err(e) => q.push(e.to_string()),
            }
        });
    };
    let remove = move |_| {
        leptos::task::spawn_local(async move {
            match admin_remove_node(id).await {
                Ok(()) => gone.set(true),
                Err(e) => q.push(e.to_string()),
            }
        });
    };
    let sites = n.sites.clone();
    let added = n.added;
    view! {
        <div class="card grid grid-cols-1 gap-4 p-4 sm:grid-cols-2 sm:p-5 lg:grid-cols-4" data-testid="node" data-node=n.name.clone() class:hidden=move || gone.get()>
            <div>
                <p class="text-lg font-semibold">{n.name.clone()}</p>
                <p class="text-xs text-slate-500">{format!("domain type: {} · forwards on {}", n.domain_type, n.address)}</p>
                <p class="break-all font-mono text-xs text-slate-500">{n.libvirt_uri.clone()}</p>
                <NodeHealthLine n=n.clone()/>
                <div class="mt-2 flex flex-wrap gap-2">
                    <button class="btn-secondary px-3 py-1 text-xs" data-testid="node-drain" on:click=drain>
                        {move || if drained.get() { "Take new sites" } else { "Drain" }}
                    </button>
                    {added.then(|| view! { <button class="btn-secondary px-3 py-1 text-xs" data-testid="node-remove" on:click=remove>"Remove"</button> })}
                </div>
            </div>
            <div class="flex flex-wrap gap-4">
                <div><p class="text-xs text-slate-500">"Running"</p><p class="text-lg font-semibold" data-testid="node-running">{n.hostings_running}</p></div>
                <div><p class="text-xs text-slate-500">"Stopped"</p><p class="text-lg font-semibold" data-testid="node-stopped">{n.hostings_stopped}</p></div>
                <div><p class="text-xs text-slate-500">"Asleep"</p><p class="text-lg font-semibold" data-testid="node-sleeping">{n.hostings_sleeping}</p></div>
                <div><p class="text-xs text-slate-500">"Hostings"</p><p class="text-lg font-semibold" data-testid="node-hostings">{n.hostings_total}</p></div>
                <div><p class="text-xs text-slate-500">"VMs (spares too)"</p><p class="text-lg font-semibold" data-testid="vms-running">{n.vms_running}</p></div>
            </div>
            <Meter label="Plan memory" used=n.memory_committed_mib limit=n.memory_limit_mib unit="MiB" testid="node-memory"/>
            <Meter label="Plan disk" used=n.disk_committed_gib limit=n.disk_limit_gib unit="GiB" testid="node-disk"/>
            <p class="text-xs text-slate-500 sm:col-span-2 lg:col-span-4">
                {format!("Host memory in use: {:.0} % ({} of {})", pct, human_bytes(used as f64 * 1024.0), human_bytes(n.memory_total_kib as f64 * 1024.0))}
            </p>
            <ul class="flex flex-wrap gap-2 text-xs sm:col-span-2 lg:col-span-4" data-testid="node-sites">
                {sites.into_iter().map(|s| view! {
                    <li class="rounded bg-slate-100 px-2 py-0.5 dark:bg-slate-800" data-testid="node-site" data-slug=s.slug.clone()>
                        {format!("{} · {}", s.slug, s.state)}
                    </li>
                }).collect_view()}
            </ul>
        </div>
    }
}

/// One hosting with its owner and the actions an administrator may take on it (the service lets
/// an administrator act on anyone's hosting).
#[component]
fn HostingRow(h: HostingView, owner: String) -> impl IntoView {
    let hosting = RwSignal::new(h);
    let confirm = RwSignal::new(false);
    let gone = RwSignal::new(false);
    let q = toasts();
    let run = move |op: Operation| {
        let id = hosting.get_untracked().id;
        leptos::task::spawn_local(async move {
            match hosting_action(id, op).await {
                Ok(h) => {
                    hosting.try_set(h);
                }
                Err(e) => q.push(e.to_string()),
            }
        });
    };
    let may = move |op: Operation| {
        let h = hosting.get();
        !h.busy() && op.allowed_from().contains(&h.state)
    };
    let slug = move || hosting.get().slug;
    let button = move |op: Operation, testid: &'static str| {
        view! {
            <button class="btn-secondary px-3 py-1 text-xs" data-testid=testid disabled=move || !may(op) on:click=move |_| run(op)>
                {op.label()}
            </button>
        }
    };
    view! {
        <li class="space-y-2 py-3" data-testid="admin-hosting-row" data-slug=slug class:opacity-50=move || gone.get()>
            <div class="flex flex-wrap items-center gap-x-3 gap-y-1">
                <a class="link font-medium" href=move || format!("/hostings/{}", hosting.get().id)>{slug}</a>
                <StateBadge state=Signal::derive(move || hosting.get().state) operation=Signal::derive(move || hosting.get().operation)/>
                <span class="text-sm text-slate-600 dark:text-slate-300" data-testid="owner">{owner}</span>
                <span class="text-xs text-slate-500">{move || {
                    let h = hosting.get();
                    format!("{} plan{} · created {}", h.plan, h.ssh_port.map(|p| format!(" · SSH {p}")).unwrap_or_default(), format_time(h.created_at))
                }}</span>
            </div>
            <div class="flex flex-wrap gap-2">
                {button(Operation::Start, "admin-action-start")}
                {button(Operation::Stop, "admin-action-stop")}
                {button(Operation::Restart, "admin-action-restart")}
                {button(Operation::PowerOff, "admin-action-power-off")}
                <Show when=move || !confirm.get() fallback=move || view! {
                    <button class="btn-danger px-3 py-1 text-xs" data-testid="admin-delete-confirm"
                        on:click=move |_| { confirm.set(false); gone.set(true); run(Operation::Delete); }>
                        {move || format!("Delete {} for good", slug())}
                    </button>
                    <button class="btn-secondary px-3 py-1 text-xs" on:click=move |_| confirm.set(false)>"Cancel"</button>
                }>
                    <button class="btn-danger px-3 py-1 text-xs" data-testid="admin-action-delete" disabled=move || !may(Operation::Delete)
                        on:click=move |_| confirm.set(true)>"Delete…"</button>
                </Show>
            </div>
        </li>
    }
}

/// One account, with disable/enable (not for the administrator's own account).
#[component]
fn UserRow(u: UserView, me: i32) -> impl IntoView {
    let user = RwSignal::new(u);
    let pending = RwSignal::new(false);
    let q = toasts();
    let set = move |disabled: bool| {
        let id = user.get_untracked().id;
        pending.set(true);
        leptos::task::spawn_local(async move {
            match admin_set_disabled(id, disabled).await {
                Ok(u) => {
                    user.try_set(u);
                }
                Err(e) => q.push(e.to_string()),
            }
            pending.try_set(false);
        });
    };
    let disabled = move || user.get().disabled_at.is_some();
    let is_me = user.get_untracked().id == me;
    view! {
        <li class="flex flex-wrap items-center gap-x-3 gap-y-2 py-3" data-testid="user-row" data-username=move || user.get().username
            data-disabled=move || disabled().to_string()>
            <div class="min-w-0 flex-1">
                <p class="font-medium">
                    {move || user.get().username}
                    {move || user.get().is_admin.then(|| view! { <span class="ml-2 rounded bg-indigo-100 px-1.5 py-0.5 text-xs text-indigo-800 dark:bg-indigo-900/50 dark:text-indigo-300">"admin"</span> })}
                </p>
                <p class="break-all text-xs text-slate-500">{move || user.get().email}</p>
                <p class="text-xs text-slate-500" data-testid="user-status">{move || match user.get().disabled_at {
                    Some(at) => format!("Disabled since {}", format_time(at)),
                    None => format!("Active · joined {}", format_time(user.get().created_at)),
                }}</p>
            </div>
            {if is_me {
                view! { <span class="text-xs text-slate-500">"(you)"</span> }.into_any()
            } else {
                view! {
                    <Show when=disabled fallback=move || view! {
                        <button class="btn-secondary px-3 py-1 text-xs text-rose-700 dark:text-rose-400" data-testid="user-disable"
                            disabled=move || pending.get() on:click=move |_| set(true)>"Disable"</button>
                    }>
                        <button class="btn-secondary px-3 py-1 text-xs" data-testid="user-enable"
                            disabled=move || pending.get() on:click=move |_| set(false)>"Enable"</button>
                    </Show>
                }.into_any()
            }}
        </li>
    }
}

/// The certificates: a line each, the troubled ones first and marked (could not be renewed and
/// expiring within 14 days, expired, or never issued), and the HTTPS notes.
#[component]
fn Certificates(tls: crate::model::TlsOverview) -> impl IntoView {
    let troubled = tls.certificates.iter().filter(|c| c.trouble).count();
    view! {
        <section class="card mt-6 p-4 sm:p-5" data-testid="admin-certificates" aria-labelledby="certs-title">
            <h2 class="font-semibold" id="certs-title">
                {format!("Certificates ({})", tls.certificates.len())}
                {(troubled > 0).then(|| view! { <span class="ml-2 text-sm text-rose-600" data-testid="certs-trouble">{format!("{troubled} need attention")}</span> })}
            </h2>
            {tls.notes.into_iter().map(|n| view! { <p class="mt-2 text-sm text-slate-500" data-testid="tls-note">{n}</p> }).collect_view()}
            <ul class="mt-3 divide-y divide-slate-200 text-sm dark:divide-slate-800">
                {tls.certificates.into_iter().map(|c| {
                    let class = if c.trouble { "py-2 text-rose-700 dark:text-rose-400" } else { "py-2" };
                    view! {
                        <li class=class data-testid="certificate" data-label=c.label.clone() data-trouble=c.trouble.to_string()>
                            <div class="flex flex-wrap gap-x-3">
                                <span class="font-medium">{c.label.clone()}</span>
                                <span class="min-w-0 break-all">{c.names.join(", ")}</span>
                                <span class="text-slate-500">{c.source.label()}</span>
                                <span class="text-slate-500">{c.not_after.map(|t| format!("expires {}", format_time(t))).unwrap_or_else(|| "not issued".into())}</span>
                            </div>
                            {c.last_error.map(|e| view! {
                                <p class="break-words text-xs">{format!("{} failure(s) in a row: {e}", c.failures)}
                                    {c.next_try_at.map(|t| format!(" (next try {})", format_time(t)))}</p>
                            })}
                        </li>
                    }
                }).collect_view()}
            </ul>
        </section>
    }
}
