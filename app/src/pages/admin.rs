use leptos::prelude::*;

use super::RequireUser;
use crate::api::admin::admin_overview;
use crate::components::charts::human_bytes;
use crate::components::ui::{StateBadge, format_time};
use crate::model::UserView;

#[component]
pub fn AdminPage() -> impl IntoView {
    view! { <RequireUser title="Admin" child=|_u: UserView| view! { <Admin/> }/> }
}

#[component]
fn Admin() -> impl IntoView {
    let data = Resource::new_blocking(|| (), |_| admin_overview());
    view! {
        <h1 class="text-2xl font-semibold">"Administration"</h1>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <p class="mt-4 text-rose-600" data-testid="admin-error">{e.to_string()}</p> }.into_any(),
                    Ok(o) => {
                        let n = &o.node;
                        let used = n.memory_total_kib.saturating_sub(n.memory_available_kib);
                        let pct = if n.memory_total_kib > 0 { used as f64 / n.memory_total_kib as f64 * 100.0 } else { 0.0 };
                        view! {
                            <div class="mt-6 grid gap-4 sm:grid-cols-4" data-testid="admin-capacity">
                                <div class="card p-4"><p class="text-xs text-slate-500">"Node"</p><p class="text-lg font-semibold">{n.name.clone()}</p><p class="text-xs text-slate-500">{format!("domain type: {}", n.domain_type)}</p></div>
                                <div class="card p-4"><p class="text-xs text-slate-500">"Running VMs"</p><p class="text-lg font-semibold" data-testid="vms-running">{n.vms_running}</p></div>
                                <div class="card p-4"><p class="text-xs text-slate-500">"Host memory used"</p><p class="text-lg font-semibold">{format!("{:.0} %", pct)}</p><p class="text-xs text-slate-500">{format!("{} of {}", human_bytes(used as f64 * 1024.0), human_bytes(n.memory_total_kib as f64 * 1024.0))}</p></div>
                                <div class="card p-4"><p class="text-xs text-slate-500">"Users"</p><p class="text-lg font-semibold">{o.users}</p></div>
                                <div class="card p-4"><p class="text-xs text-slate-500">"Memory committed / limit"</p><p class="text-lg font-semibold" data-testid="memory-committed">{format!("{} / {} MiB", n.memory_committed_mib, n.memory_limit_mib)}</p></div>
                                <div class="card p-4"><p class="text-xs text-slate-500">"Disk committed / limit"</p><p class="text-lg font-semibold" data-testid="disk-committed">{format!("{} / {} GiB", n.disk_committed_gib, n.disk_limit_gib)}</p></div>
                            </div>
                            <section class="card mt-6 overflow-x-auto p-5">
                                <h2 class="font-semibold">"All hostings"</h2>
                                <table class="mt-3 w-full text-left text-sm" data-testid="admin-hostings">
                                    <thead class="text-xs text-slate-500"><tr><th class="py-1">"Site"</th><th>"Owner"</th><th>"State"</th><th>"Plan"</th><th>"SSH port"</th><th>"Created"</th></tr></thead>
                                    <tbody>
                                        {o.hostings.into_iter().map(|(h, owner)| view! {
                                            <tr class="border-t border-slate-200 dark:border-slate-800">
                                                <td class="py-1.5"><a class="link" href=format!("/hostings/{}", h.id)>{h.slug.clone()}</a></td>
                                                <td>{owner}</td>
                                                <td><StateBadge state=h.state operation=h.operation/></td>
                                                <td>{h.plan.clone()}</td>
                                                <td>{h.ssh_port.map(|p| p.to_string()).unwrap_or_default()}</td>
                                                <td class="text-xs">{format_time(h.created_at)}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            </section>
                            <section class="card mt-6 p-5">
                                <h2 class="font-semibold">"Recent events"</h2>
                                <ul class="mt-3 space-y-1 text-sm" data-testid="admin-events">
                                    {o.events.into_iter().map(|e| view! {
                                        <li class="flex gap-3"><span class="font-mono text-xs text-slate-400">{format_time(e.created_at)}</span><span class="text-xs text-slate-500">{format!("#{}", e.hosting_id)}</span><span>{e.message}</span></li>
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
