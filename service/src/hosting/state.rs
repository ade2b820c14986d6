//! Hosting states and the operations that move between them.
use serde::{Deserialize, Serialize};

/// `queued -> provisioning -> running <-> stopped`, `failed` (after rollback, with the reason),
/// `deleting -> (row gone)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostingState {
    Queued,
    Provisioning,
    Running,
    Stopped,
    Failed,
    Deleting,
    /// A warm VM of the pool: booted once, then saved to disk, waiting to be claimed.
    Spare,
}

impl HostingState {
    pub const ALL: [HostingState; 7] = [
        Self::Queued,
        Self::Provisioning,
        Self::Running,
        Self::Stopped,
        Self::Failed,
        Self::Deleting,
        Self::Spare,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Provisioning => "provisioning",
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
            Self::Deleting => "deleting",
            Self::Spare => "spare",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for HostingState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a user (or the system) asked a hosting to do. One runs at a time per hosting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Create,
    Start,
    Stop,
    Restart,
    Delete,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Restart => "restart",
            Self::Delete => "delete",
        }
    }

    /// States from which this operation may begin.
    pub fn allowed_from(self) -> &'static [HostingState] {
        use HostingState::*;
        match self {
            Self::Create => &[],
            Self::Start => &[Stopped],
            Self::Stop => &[Running],
            Self::Restart => &[Running, Stopped],
            Self::Delete => &[Running, Stopped, Failed],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_names() {
        for st in HostingState::ALL {
            assert_eq!(HostingState::parse(st.as_str()), Some(st));
        }
        assert_eq!(HostingState::parse("gone"), None);
    }

    #[test]
    fn a_running_hosting_cannot_be_started_and_a_queued_one_cannot_be_deleted() {
        assert!(!Operation::Start.allowed_from().contains(&HostingState::Running));
        assert!(!Operation::Delete.allowed_from().contains(&HostingState::Queued));
        assert!(Operation::Delete.allowed_from().contains(&HostingState::Failed));
    }
}
