//! The query parameters of the hosting endpoints.
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Deserialize, IntoParams)]
pub struct WaitQuery {
    /// Wait up to this many seconds (max 600) for the operation to finish before answering.
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
