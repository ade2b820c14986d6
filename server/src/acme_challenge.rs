//! `/.well-known/acme-challenge/{token}`: the HTTP-01 answers of the ACME orders in flight
//! (`service::store::acme_challenges`). nginx hands this path to the app on every name it
//! serves over plain HTTP (the dashboard's, every site's, every custom domain's and any other).
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use app::state::AppState;

pub async fn answer(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    // RFC 8555 tokens are base64url; anything else is nobody's.
    let valid = !token.is_empty() && token.len() <= 128 && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return StatusCode::NOT_FOUND.into_response();
    }
    match service::store::acme_challenges::key_authorization(&state.db, &token).await {
        Ok(Some(answer)) => ([(header::CONTENT_TYPE, "text/plain")], answer).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(err) => {
            tracing::warn!(%err, "could not read an ACME challenge");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}
