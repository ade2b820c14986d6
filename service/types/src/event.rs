//! Hosting events (audit trail and live progress) and the event stream's one message type.
use serde::{Deserialize, Serialize};

use crate::{HostingState, HostingView, StatSample, Step};

string_enum! {
    pub enum EventKind {
        /// A provisioning step started, succeeded or failed.
        Step,
        /// A finished step was undone (rollback).
        Undo,
        /// The hosting changed state.
        State,
        /// A user asked for an operation.
        Action,
    }
}

string_enum! {
    /// A step's outcome, or (for `state` events) the state the hosting moved to.
    pub enum EventStatus {
        Started,
        Succeeded,
        Failed,
        Undone,
        Info,
        Queued,
        Provisioning,
        Running,
        Stopped,
        Sleeping,
        Deleting,
        /// The hosting is gone (its row was removed).
        Deleted,
    }
}

/// A `state` event's status is the state's own name; a spare's (which no one sees) is `info`.
impl From<HostingState> for EventStatus {
    fn from(s: HostingState) -> Self {
        Self::parse(s.as_str()).unwrap_or(Self::Info)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventView {
    pub id: i32,
    pub hosting_id: i32,
    pub user_id: i32,
    pub kind: EventKind,
    pub step: Option<Step>,
    pub status: EventStatus,
    pub message: String,
    pub duration_ms: Option<i64>,
    pub created_at: i64,
}

impl EventView {
    /// A `state` event that says the hosting was queued: where a create (or a retry) begins.
    pub fn is_queued(&self) -> bool {
        self.kind == EventKind::State && self.status == EventStatus::Queued
    }
}

/// One message of a hosting's live stream. The SSE event name is [`LiveMessage::name`]; the
/// data is the variant's payload as JSON.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum LiveMessage {
    /// The hosting as it is now (sent first, and after every state change).
    Hosting(HostingView),
    Event(EventView),
    Stats(StatSample),
    /// The hosting no longer exists.
    Deleted { hosting_id: i32 },
}

impl LiveMessage {
    pub const NAMES: [&'static str; 4] = ["hosting", "event", "stats", "deleted"];

    pub fn name(&self) -> &'static str {
        match self {
            Self::Hosting(_) => "hosting",
            Self::Event(_) => "event",
            Self::Stats(_) => "stats",
            Self::Deleted { .. } => "deleted",
        }
    }

    /// The payload alone, as the stream sends it under [`LiveMessage::name`].
    pub fn data_json(&self) -> String {
        let v = match self {
            Self::Hosting(h) => serde_json::to_string(h),
            Self::Event(e) => serde_json::to_string(e),
            Self::Stats(s) => serde_json::to_string(s),
            Self::Deleted { hosting_id } => Ok(format!("{{\"hosting_id\":{hosting_id}}}")),
        };
        v.unwrap_or_default()
    }

    /// Reads a message back from its SSE event name and data (the browser's side).
    pub fn from_parts(name: &str, data: &str) -> Option<Self> {
        Some(match name {
            "hosting" => Self::Hosting(serde_json::from_str(data).ok()?),
            "event" => Self::Event(serde_json::from_str(data).ok()?),
            "stats" => Self::Stats(serde_json::from_str(data).ok()?),
            "deleted" => {
                #[derive(Deserialize)]
                struct D {
                    #[serde(default)]
                    hosting_id: i32,
                }
                Self::Deleted { hosting_id: serde_json::from_str::<D>(data).map(|d| d.hosting_id).unwrap_or(0) }
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_event_says_the_state_it_moved_to() {
        for st in HostingState::ALL.iter().filter(|s| **s != HostingState::Spare) {
            assert_eq!(EventStatus::from(*st).as_str(), st.as_str());
        }
        assert_eq!(EventStatus::from(HostingState::Spare), EventStatus::Info);
    }

    #[test]
    fn live_messages_round_trip_through_their_sse_name_and_data() {
        let ev = EventView {
            id: 7,
            hosting_id: 3,
            user_id: 1,
            kind: EventKind::Step,
            step: Some(Step::WaitReady),
            status: EventStatus::Succeeded,
            message: "ok".into(),
            duration_ms: Some(12),
            created_at: 1,
        };
        let msg = LiveMessage::Event(ev.clone());
        assert_eq!(msg.name(), "event");
        let back = LiveMessage::from_parts(msg.name(), &msg.data_json()).unwrap();
        assert_eq!(back, msg);
        assert!(msg.data_json().contains("\"step\":\"wait_ready\""));
        let gone = LiveMessage::Deleted { hosting_id: 3 };
        assert_eq!(LiveMessage::from_parts("deleted", &gone.data_json()), Some(gone));
        assert_eq!(LiveMessage::from_parts("nope", "{}"), None);
    }
}
