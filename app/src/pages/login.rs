use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::accounts::Login;
use crate::components::ui::{Field, FormError, SubmitButton, field_error, general_error};

#[component]
pub fn LoginPage() -> impl IntoView {
    let action = ServerAction::<Login>::new();
    let value = action.value();
    view! {
        <Title text="Log in · vm-webhoster"/>
        <div class="mx-auto max-w-md">
            <h1 class="text-2xl font-semibold">"Log in"</h1>
            <ActionForm action=action attr:class="card mt-6 space-y-3 p-6" attr:novalidate=true>
                <FormError error=general_error(value, &["login", "password"])/>
                <Field label="Email or username" name="login" autocomplete="username" error=field_error(value, "login")/>
                <Field label="Password" name="password" kind="password" autocomplete="current-password" error=field_error(value, "password")/>
                <SubmitButton pending=action.pending() idle="Log in" busy="Logging in…" testid="login-submit"/>
                <p class="text-center text-sm text-slate-500">"New here? " <a href="/signup" class="link">"Create an account"</a></p>
            </ActionForm>
        </div>
    }
}
