use leptos::form::ActionForm;
use leptos::prelude::*;

use super::RequireUser;
use crate::api::accounts::{
    AddSshKey, ChangePassword, CreateApiToken, DeleteAccount, EndOtherSessions, account_activity, delete_ssh_key, end_session,
    list_api_tokens, list_sessions, list_ssh_keys, revoke_api_token,
};
use crate::components::ui::{Field, FormError, ListOr, RemoveButton, SubmitButton, field_error, format_time, general_error};
use crate::model::{AccountEventKind, AccountEventView, SessionView, SshKeyView, UserView};

#[component]
pub fn SettingsPage() -> impl IntoView {
    view! { <RequireUser title="Settings" child=|u: UserView| view! { <Settings user=u/> }/> }
}

#[component]
fn Settings(user: UserView) -> impl IntoView {
    view! {
        <h1 class="text-2xl font-semibold">"Settings"</h1>
        <p class="break-all text-sm text-slate-500">{user.email.clone()}</p>
        <div class="mt-6 grid grid-cols-1 gap-6 lg:grid-cols-2">
            <SshKeys/>
            <ApiTokens/>
            <PasswordForm/>
            <DeleteAccountForm/>
            <Https/>
            <Sessions/>
            <Activity/>
        </div>
    }
}

#[component]
fn SshKeys() -> impl IntoView {
    let add = ServerAction::<AddSshKey>::new();
    let removed = RwSignal::new(0u32);
    let keys = Resource::new(move || (add.version().get(), removed.get()), |_| list_ssh_keys());
    let value = add.value();
    let no_keys = || view! { <p class="text-sm text-slate-500" data-testid="no-keys">"No keys yet."</p> };
    let key_list = move |list: Vec<SshKeyView>| {
        view! {
            <ul class="divide-y divide-slate-200 dark:divide-slate-800" data-testid="ssh-keys">
                {list.into_iter().map(|k| {
                    let id = k.id;
                    view! {
                        <li class="flex items-center gap-3 py-2 text-sm">
                            <div class="min-w-0 flex-1">
                                <p class="font-medium">{k.name}</p>
                                <p class="break-all font-mono text-xs text-slate-500" data-testid="fingerprint">{k.fingerprint}</p>
                            </div>
                            <RemoveButton label="Remove" remove=move || delete_ssh_key(id) removed=removed/>
                        </li>
                    }
                }).collect_view()}
            </ul>
        }
    };
    view! {
        <section class="card space-y-4 p-5">
            <h2 class="text-lg font-semibold">"SSH keys"</h2>
            <Transition fallback=|| ()>
                <ListOr list=keys empty=no_keys each=key_list/>
            </Transition>
            <ActionForm action=add attr:class="space-y-2" attr:data-testid="add-key-form">
                <FormError error=general_error(value, &["name", "public_key"])/>
                <Field label="Name" name="name" error=field_error(value, "name") hint="For example: laptop"/>
                <div class="space-y-1">
                    <label for="f-public_key" class="block text-sm font-medium">"Public key"</label>
                    <textarea id="f-public_key" name="public_key" rows="3" class="input font-mono text-xs"
                        placeholder="ssh-ed25519 AAAA… you@laptop"></textarea>
                    <p class="min-h-4 text-sm text-rose-600" data-field-error="public_key">{move || field_error(value, "public_key").get()}</p>
                </div>
                <button type="submit" class="btn-primary" data-testid="add-key-submit">"Add key"</button>
            </ActionForm>
        </section>
    }
}

#[component]
fn ApiTokens() -> impl IntoView {
    let create = ServerAction::<CreateApiToken>::new();
    let revoked = RwSignal::new(0u32);
    let tokens = Resource::new(move || (create.version().get(), revoked.get()), |_| list_api_tokens());
    let value = create.value();
    view! {
        <section class="card space-y-4 p-5">
            <h2 class="text-lg font-semibold">"API tokens"</h2>
            <p class="text-sm text-slate-500">"Use them as " <code>"Authorization: Bearer …"</code> " with the " <a class="link" href="/api/v1/docs">"REST API"</a> ". Changing your password revokes them all."</p>
            {move || value.get().and_then(|r| r.ok()).map(|(_, secret)| view! {
                <div class="rounded-lg border border-emerald-300 bg-emerald-50 p-3 text-sm dark:border-emerald-900 dark:bg-emerald-950" data-testid="new-token">
                    <p class="font-medium">"Copy this token now: it is not shown again."</p>
                    <code class="mt-1 block break-all font-mono text-xs">{secret}</code>
                </div>
            })}
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    tokens.await.unwrap_or_default().into_iter().map(|t| {
                        let id = t.id;
                        view! {
                            <div class="flex flex-wrap items-center gap-x-3 gap-y-1 text-sm" data-testid="token-row">
                                <span class="min-w-0 flex-1 break-words font-medium">{t.name}</span>
                                <span class="text-xs text-slate-500" data-testid="token-last-used">{t.last_used_at.map(|l| format!("last used {}", format_time(l))).unwrap_or_else(|| "never used".into())}</span>
                                <span class="text-xs text-slate-500" data-testid="token-expires">{t.expires_at.map(|e| format!("expires {}", format_time(e))).unwrap_or_else(|| "no expiry".into())}</span>
                                <RemoveButton label="Revoke" remove=move || revoke_api_token(id) removed=revoked/>
                            </div>
                        }
                    }).collect_view()
                })}
            </Transition>
            <ActionForm action=create attr:class="space-y-2" attr:data-testid="create-token-form">
                <FormError error=general_error(value, &["name", "password", "expires_in_days"])/>
                <Field label="Token name" name="name" error=field_error(value, "name")/>
                <Field label="Expires after (days)" name="expires_in_days" kind="number" hint="Empty: until you revoke it." error=field_error(value, "expires_in_days")/>
                <Field label="Your password" name="password" id="f-token-password" kind="password" autocomplete="current-password"
                    hint="A new token needs your current password." error=field_error(value, "password")/>
                <button type="submit" class="btn-primary">"Create"</button>
            </ActionForm>
        </section>
    }
}

#[component]
fn PasswordForm() -> impl IntoView {
    let action = ServerAction::<ChangePassword>::new();
    let value = action.value();
    view! {
        <ActionForm action=action attr:class="card space-y-3 p-5">
            <h2 class="text-lg font-semibold">"Change password"</h2>
            {move || value.get().and_then(|r| r.ok()).map(|m| view! { <p class="text-sm text-emerald-700 dark:text-emerald-400" data-testid="password-changed">{m}</p> })}
            <FormError error=general_error(value, &["current_password", "new_password"])/>
            <Field label="Current password" name="current_password" kind="password" autocomplete="current-password" error=field_error(value, "current_password")/>
            <Field label="New password" name="new_password" kind="password" autocomplete="new-password" error=field_error(value, "new_password")/>
            <button type="submit" class="btn-primary">"Change password"</button>
        </ActionForm>
    }
}

#[component]
fn DeleteAccountForm() -> impl IntoView {
    let action = ServerAction::<DeleteAccount>::new();
    let value = action.value();
    view! {
        <ActionForm action=action attr:class="card space-y-3 border-rose-200 p-5 dark:border-rose-900">
            <h2 class="text-lg font-semibold text-rose-700 dark:text-rose-400">"Delete account"</h2>
            <p class="text-sm text-slate-500">"Deletes every site you own (VMs, disks, routes) and then your account. This cannot be undone."</p>
            <FormError error=general_error(value, &["password"])/>
            <Field label="Password" name="password" kind="password" autocomplete="current-password" error=field_error(value, "password")/>
            <SubmitButton pending=action.pending() idle="Delete my account" busy="Deleting…" class="btn-danger"/>
        </ActionForm>
    }
}

/// Where the account is logged in: each browser session (created, last seen, address,
/// browser; this one marked), each with "End", and "End all other sessions".
#[component]
fn Sessions() -> impl IntoView {
    let end_others = ServerAction::<EndOtherSessions>::new();
    let ended = RwSignal::new(0u32);
    let list = Resource::new(move || (end_others.version().get(), ended.get()), |_| list_sessions());
    let none = || view! { <p class="text-sm text-slate-500">"No sessions."</p> };
    let rows = move |items: Vec<SessionView>| {
        view! {
            <ul class="divide-y divide-slate-200 text-sm dark:divide-slate-800" data-testid="sessions">
                {items.into_iter().map(|s| {
                    let id = StoredValue::new(s.id.clone());
                    let current = s.current;
                    view! {
                        <li class="flex flex-wrap items-center gap-x-3 gap-y-1 py-2" data-testid="session-row" data-current=current.to_string()>
                            <div class="min-w-0 flex-1">
                                <p class="font-medium">
                                    {s.browser}
                                    {current.then(|| view! { <span class="ml-2 rounded bg-emerald-100 px-1.5 py-0.5 text-xs text-emerald-800 dark:bg-emerald-950 dark:text-emerald-300" data-testid="session-current">"this session"</span> })}
                                </p>
                                <p class="text-xs text-slate-500">
                                    {s.client_ip.map(|ip| format!("from {ip} · ")).unwrap_or_default()}
                                    {format!("logged in {} · last seen {}", format_time(s.created_at), format_time(s.last_seen_at))}
                                </p>
                            </div>
                            {(!current).then(|| view! { <RemoveButton label="End" remove=move || end_session(id.get_value()) removed=ended/> })}
                        </li>
                    }
                }).collect_view()}
            </ul>
        }
    };
    let value = end_others.value();
    view! {
        <section class="card space-y-3 p-5 lg:col-span-2" data-testid="sessions-section">
            <h2 class="text-lg font-semibold">"Sessions"</h2>
            <p class="text-sm text-slate-500">"Where you are logged in. Ending a session logs that browser out at its next request."</p>
            <Transition fallback=|| ()>
                <ListOr list empty=none each=rows/>
            </Transition>
            {move || value.get().and_then(|r| r.ok()).map(|n| view! {
                <p class="text-sm text-emerald-700 dark:text-emerald-400" data-testid="sessions-ended">{format!("{n} other session(s) ended.")}</p>
            })}
            <ActionForm action=end_others attr:data-testid="end-other-sessions-form">
                <FormError error=general_error(value, &[])/>
                <SubmitButton pending=end_others.pending() idle="End all other sessions" busy="Ending…" class="btn-secondary"/>
            </ActionForm>
        </section>
    }
}

/// The account's own activity, newest first: logins (with the address and whether they
/// succeeded), tokens made and revoked, password changes.
#[component]
fn Activity() -> impl IntoView {
    let list = Resource::new(|| (), |_| account_activity());
    let none = || view! { <p class="text-sm text-slate-500">"Nothing yet."</p> };
    let rows = |items: Vec<AccountEventView>| {
        view! {
            <ul class="divide-y divide-slate-200 text-sm dark:divide-slate-800" data-testid="activity">
                {items.into_iter().map(|e| {
                    let failed = e.kind == AccountEventKind::LoginFailed;
                    view! {
                        <li class="flex flex-wrap items-baseline gap-x-3 gap-y-0.5 py-2" data-testid="activity-row" data-kind=e.kind.as_str()>
                            <span class="font-mono text-xs text-slate-400">{format_time(e.created_at)}</span>
                            <span class="font-medium" class:text-rose-600=failed class:dark:text-rose-400=failed>{e.kind.label()}</span>
                            {e.client_ip.map(|ip| view! { <span class="break-all font-mono text-xs text-slate-500" data-testid="activity-ip">{format!("from {ip}")}</span> })}
                            {e.detail.map(|d| view! { <span class="min-w-0 break-words text-xs text-slate-500">{d}</span> })}
                        </li>
                    }
                }).collect_view()}
            </ul>
        }
    };
    view! {
        <section class="card space-y-3 p-5 lg:col-span-2">
            <h2 class="text-lg font-semibold">"Account activity"</h2>
            <p class="text-sm text-slate-500">"Logins, API tokens and password changes, newest first (the last 50)."</p>
            <Transition fallback=|| ()>
                <ListOr list empty=none each=rows/>
            </Transition>
        </section>
    }
}

/// HTTPS: the dashboard's https address and, when this instance certifies its local names
/// itself, its root certificate to add to a browser or system (with its fingerprint).
#[component]
fn Https() -> impl IntoView {
    let info = Resource::new(|| (), |_| crate::api::tls::https_info());
    view! {
        <Transition fallback=|| ()>
            {move || info.get().and_then(|r| r.ok()).filter(|i| i.https_url.is_some()).map(|i| view! {
                <section class="card space-y-3 p-5" data-testid="https">
                    <h2 class="text-lg font-semibold">"HTTPS"</h2>
                    {i.https_url.clone().map(|u| view! { <p class="text-sm">"This dashboard also answers at " <a class="link break-all" href=u.clone()>{u.clone()}</a></p> })}
                    {i.local_ca_fingerprint.map(|fp| view! {
                        <p class="text-sm text-slate-500">
                            "Its local names are certified by this instance's own certificate authority. Add its root certificate to your browser or system to trust them."
                        </p>
                        <a class="btn-secondary inline-block" href="/tls/local-ca.pem" download="vm-webhoster-local-ca.pem" data-testid="local-ca-download">"Download root certificate"</a>
                        <p class="break-all font-mono text-xs text-slate-500" data-testid="local-ca-fingerprint">{format!("SHA-256 {fp}")}</p>
                    })}
                </section>
            })}
        </Transition>
    }
}
