use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::accounts::{Availability, Signup, check_signup_field};
use crate::components::ui::{Field, FormError, SubmitButton, field_error, general_error};

/// Checks a field 400 ms after the person stops typing and keeps the latest answer.
fn live_check(field: &'static str) -> (Callback<String>, RwSignal<Option<String>>) {
    let msg = RwSignal::new(None::<String>);
    let seq = StoredValue::new(0u64);
    let cb = Callback::new(move |value: String| {
        // try_*: the page may be gone (navigated away) when a timer or answer arrives.
        seq.try_update_value(|s| *s += 1);
        let Some(mine) = seq.try_get_value() else { return };
        if value.trim().is_empty() {
            msg.try_set(None);
            return;
        }
        set_timeout(
            move || {
                if seq.try_get_value() != Some(mine) {
                    return;
                }
                leptos::task::spawn_local(async move {
                    let answer = check_signup_field(field.to_string(), value).await;
                    if seq.try_get_value() != Some(mine) {
                        return;
                    }
                    msg.try_set(match answer {
                        Ok(Availability::Available) | Err(_) => None,
                        Ok(Availability::Taken(m)) | Ok(Availability::Invalid(m)) => Some(m),
                    });
                });
            },
            std::time::Duration::from_millis(400),
        );
    });
    (cb, msg)
}

#[component]
pub fn SignupPage() -> impl IntoView {
    let action = ServerAction::<Signup>::new();
    let value = action.value();
    let (email_cb, email_live) = live_check("email");
    let (user_cb, user_live) = live_check("username");
    let email_err = {
        let server = field_error(value, "email");
        Signal::derive(move || email_live.get().or_else(|| server.get()))
    };
    let user_err = {
        let server = field_error(value, "username");
        Signal::derive(move || user_live.get().or_else(|| server.get()))
    };
    view! {
        <Title text="Sign up · vm-webhoster"/>
        <div class="mx-auto max-w-md">
            <h1 class="text-2xl font-semibold">"Create your account"</h1>
            <p class="mt-1 text-sm text-slate-500 dark:text-slate-400">"Your username becomes your site's address: /username/."</p>
            <ActionForm action=action attr:class="card mt-6 space-y-3 p-6" attr:novalidate=true>
                <FormError error=general_error(value, &["email", "username", "password"])/>
                <Field label="Email" name="email" kind="email" autocomplete="email" error=email_err on_input=email_cb/>
                <Field label="Username" name="username" autocomplete="username" error=user_err on_input=user_cb
                    hint="3-32 characters: letters a-z, digits and dashes, starting with a letter."/>
                <Field label="Password" name="password" kind="password" autocomplete="new-password" error=field_error(value, "password")
                    hint="At least 8 characters."/>
                <SubmitButton pending=action.pending() idle="Create account" busy="Creating…" testid="signup-submit"/>
                <p class="text-center text-sm text-slate-500">"Already have an account? " <a href="/login" class="link">"Log in"</a></p>
            </ActionForm>
        </div>
    }
}
