//! The query parameters of the hosting endpoints.
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Wait up to this many seconds (1 to 600; anything else is 400 `invalid_wait`) for the
    /// operation to finish before answering. A wait holds one of the account's places for
    /// streams and long polls (429 `too_many_streams` when none is free).
    #[param(minimum = 1, maximum = 600)]
    pub wait: Option<u64>,
}

#[derive(Deserialize, IntoParams)]
pub struct AfterQuery {
    /// Only events with a larger id.
    pub after: Option<i32>,
}

#[derive(Deserialize, IntoParams)]
pub struct LinesQuery {
    pub lines: Option<usize>,
}
