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
    /// `?wait=`: seconds, 1 to 600 (400 `invalid_wait` otherwise); absent: no wait.
    wait: Option<u64>,
    /// The account's place for this long poll (taken before the handler runs, so a refused
    /// poll changes nothing).
    _held: Option<app::state::HeldSlot>,
}

/// The longest `?wait=`, in seconds.
pub const MAX_WAIT_SECS: u64 = 600;

#[derive(serde::Deserialize)]
struct RawWait {
    wait: Option<String>,
}

/// `?wait=` of a query string: None when absent, else 1 to 600 seconds.
pub fn parse_wait(uri: &axum::http::Uri) -> Result<Option<u64>, super::ApiError> {
    let bad = || super::ApiError::bad("invalid_wait", format!("wait must be a whole number of seconds from 1 to {MAX_WAIT_SECS}"));
    let axum::extract::Query(raw) = axum::extract::Query::<RawWait>::try_from_uri(uri).map_err(|_| bad())?;
    match raw.wait {
        None => Ok(None),
        Some(w) => match w.trim().parse::<u64>() {
            Ok(n) if (1..=MAX_WAIT_SECS).contains(&n) => Ok(Some(n)),
            _ => Err(bad()),
        },
    }
}

impl FromRequestParts<AppState> for HostingCaller {
    type Rejection = super::ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let user = ApiUser::from_request_parts(parts, state).await?;
        let wait = parse_wait(&parts.uri)?;
        let actor = user.actor();
        let hostings = hosting(state)?;
        let _held = match wait {
            None => None,
            Some(_) => Some(
                state.held.try_hold(actor.user_id).ok_or(super::ApiError::TooManyStreams { max: state.held.max() })?,
            ),
        };
        Ok(HostingCaller { actor, hostings, wait, _held })
    }
}

impl HostingCaller {
    /// Hosting `id` once its operation is over, waiting up to `?wait=` seconds (none: as it is
    /// now). None: it is gone.
    pub async fn settled(&self, id: i32) -> ApiResult<Option<HostingView>> {
        let h = &self.hostings;
        match self.wait {
            Some(secs) => match h.wait_settled(&self.actor, id, Duration::from_secs(secs.min(MAX_WAIT_SECS))).await {
                Ok(v) => Ok(v),
                Err(service::Error::Busy(_)) => Ok(Some(h.get(&self.actor, id).await?)),
                Err(e) => Err(e.into()),
            },
            None => Ok(Some(h.get(&self.actor, id).await?)),
        }
    }
}

/// 202 with the body: the operation was started (or, with `?wait`, finished).
pub type Accepted<T> = (StatusCode, axum::Json<T>);

pub fn accepted<T>(body: T) -> Accepted<T> {
    (StatusCode::ACCEPTED, axum::Json(body))
}
