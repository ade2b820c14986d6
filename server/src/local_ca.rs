//! `/tls/local-ca.pem`: the root certificate of the local certificate authority that certifies
//! the loopback and IP names (made at first start, `service::tls::local_ca`), for visitors to
//! add to their browser or system. A certificate is public; its key never leaves the data dir.
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use app::state::AppState;

pub async fn root(State(state): State<AppState>) -> Response {
    let path = service::hosting::local_ca_root(&state.config);
    match tokio::fs::read(&path).await {
        Ok(pem) => (
            [
                (header::CONTENT_TYPE, "application/x-pem-file"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"vm-webhoster-local-ca.pem\""),
            ],
            pem,
        )
            .into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "this instance has no local certificate authority (--tls auto makes one for loopback and IP names)").into_response(),
    }
}
