//! The caller of a hosting endpoint: signed in (401 otherwise), on a server that runs hostings
//! (503 otherwise), and what it may wait for.
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use service::accounts::Actor;
use service::hosting::{HostingService, HostingView};

use super::extract::ApiUser;
use super::{ApiResult, hosting};
use app::state::AppState;

pub struct HostingCaller {
    pub actor: Actor,
    pub hostings: HostingService,
}

impl FromRequestParts<AppState> for HostingCaller {
    type Rejection = super::ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let user = ApiUser::from_request_parts(parts, state).await?;
        Ok(HostingCaller { actor: user.actor(), hostings: hosting(state)? })
    }
}

impl HostingCaller {
    /// Hosting `id` once its operation is over, waiting up to `wait` seconds (at most 600; none:
    /// as it is now). None: it is gone.
    pub async fn settled(&self, id: i32, wait: Option<u64>) -> ApiResult<Option<HostingView>> {
        let h = &self.hostings;
        match wait {
            Some(secs) if secs > 0 => match h.wait_settled(&self.actor, id, Duration::from_secs(secs.min(600))).await {
                Ok(v) => Ok(v),
                Err(service::Error::Busy(_)) => Ok(Some(h.get(&self.actor, id).await?)),
                Err(e) => Err(e.into()),
            },
            _ => Ok(Some(h.get(&self.actor, id).await?)),
        }
    }
}

/// 202 with the body: the operation was started (or, with `?wait`, finished).
pub type Accepted<T> = (StatusCode, axum::Json<T>);

pub fn accepted<T>(body: T) -> Accepted<T> {
    (StatusCode::ACCEPTED, axum::Json(body))
}
