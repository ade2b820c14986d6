//! The hosting state machine's values.

string_enum! {
    /// `queued -> provisioning -> running <-> stopped`, `failed` (after rollback, with the
    /// reason), `deleting -> (row gone)`; `spare` is a warm VM that belongs to no one yet.
    pub enum HostingState {
        Queued,
        Provisioning,
        Running,
        Stopped,
        Failed,
        Deleting,
        /// A warm VM of the pool: booted once, then saved to disk, waiting to be claimed.
        Spare,
        /// Asleep: the VM is saved to disk (no QEMU process, no RAM) and wakes on the next
        /// visit, HTTP or SSH. A stopped site stays down until its owner starts it.
        Sleeping => "Asleep",
    }
}

impl HostingState {
    /// A state in which the hosting is a user's site that exists (not failed, not going away).
    pub fn is_live(self) -> bool {
        matches!(self, Self::Queued | Self::Provisioning | Self::Running | Self::Stopped | Self::Sleeping)
    }
}

string_enum! {
    /// What a user (or the system) asked a hosting to do. One runs at a time per hosting.
    pub enum Operation {
        Create,
        Start,
        Stop,
        Restart,
        Delete,
        /// A real ACPI shutdown: the next start boots. (Stop saves the VM's memory to disk, its
        /// RAM freed, and start restores it in under a second; restart reboots.)
        PowerOff => "Power off",
        /// Saves the VM to disk like stop, but the site wakes by itself on its next visit.
        Sleep,
        /// Restores a sleeping site (its first visitor, or its owner, asked).
        Wake,
        /// Takes a snapshot of a running site: its disk and memory.
        Snapshot => "Take a snapshot",
        /// Brings a site back to one of its snapshots, running.
        RestoreSnapshot => "Restore a snapshot",
        /// Copies the site to the backup repository; its state does not change meanwhile.
        Backup => "Back up",
        /// Brings a site back to one of its backups (its current state snapshotted first).
        RestoreBackup => "Restore a backup",
    }
}

impl Operation {
    /// States from which this operation may begin (a create begins with a new row or a spare).
    pub fn allowed_from(self) -> &'static [HostingState] {
        use HostingState::*;
        match self {
            Self::Create => &[],
            // Start from sleeping is a wake that the owner asked for.
            Self::Start => &[Stopped, Sleeping],
            // Stopping a sleeping site only marks it: it stays saved, and no visit wakes it.
            Self::Stop => &[Running, Sleeping],
            Self::Restart => &[Running, Stopped, Sleeping],
            Self::Delete => &[Running, Stopped, Sleeping, Failed],
            Self::PowerOff => &[Running, Sleeping],
            Self::Sleep => &[Running],
            Self::Wake => &[Sleeping],
            // Memory is part of a snapshot: a running site's is saved for it, a sleeping or
            // stopped site's saved memory is copied (a powered-off one has none: refused).
            Self::Snapshot => &[Running, Stopped, Sleeping],
            Self::RestoreSnapshot => &[Running, Stopped, Sleeping],
            // A sleeping or stopped site is captured as it is, never woken.
            Self::Backup => &[Running, Stopped, Sleeping],
            Self::RestoreBackup => &[Running, Stopped, Sleeping],
        }
    }

    /// The state the hosting shows while the operation runs (delete shows `deleting`).
    pub fn state_while_running(self, from: HostingState) -> HostingState {
        match self {
            Self::Delete => HostingState::Deleting,
            _ => from,
        }
    }
}

string_enum! {
    /// A user snapshot: being taken (its files are not complete), or ready to restore.
    pub enum SnapshotState {
        Taking => "Being taken",
        Ready,
    }
}

string_enum! {
    /// How a create made its VM: booted from the image, cloned from the golden snapshot, or
    /// claimed from the warm spares. Each has its own steps (the progress view lists them).
    pub enum CreateKind {
        Cold => "A full boot",
        Clone => "A clone of the golden snapshot",
        Warm => "A warm spare",
    }
}

string_enum! {
    /// How a warm spare waits: paused in RAM (resumes in ~0.02 s) or saved to disk (restores in
    /// ~0.4 s, holds no RAM).
    pub enum SpareTier {
        Paused,
        Saved,
    }
}

string_enum! {
    /// A bearer token: a short-lived one minted at login, or a named long-lived API token.
    pub enum TokenKind {
        Login,
        Api,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_names_in_json_and_text() {
        for st in HostingState::ALL {
            assert_eq!(HostingState::parse(st.as_str()), Some(*st));
            assert_eq!(serde_json::to_string(st).unwrap(), format!("\"{}\"", st.as_str()));
            assert_eq!(st.as_str().parse::<HostingState>().unwrap(), *st);
        }
        assert_eq!(HostingState::parse("gone"), None);
        assert!("gone".parse::<HostingState>().unwrap_err().to_string().contains("HostingState"));
    }

    /// The OpenAPI schema lists the names the wire carries, not the Rust variants.
    #[cfg(feature = "openapi")]
    #[test]
    fn the_openapi_schema_lists_the_wire_names() {
        use utoipa::PartialSchema;
        let names = |v: serde_json::Value| v["enum"].clone();
        let states = serde_json::to_value(HostingState::schema()).unwrap();
        assert_eq!(names(states), serde_json::to_value(HostingState::ALL).unwrap());
        let ops = serde_json::to_value(Operation::schema()).unwrap();
        assert_eq!(names(ops), serde_json::to_value(Operation::ALL).unwrap());
        assert_eq!(<Operation as utoipa::ToSchema>::name(), "Operation");
    }

    #[test]
    fn badges_buttons_and_progress_views_show_human_labels() {
        assert_eq!(HostingState::Provisioning.label(), "Provisioning");
        assert_eq!(Operation::Restart.label(), "Restart");
        assert_eq!(crate::Step::CreateDisk.label(), "Create the VM's disk");
        assert_eq!(crate::Step::AddRoute.as_str(), "add_route", "the label is not the stored name");
    }

    #[test]
    fn a_running_hosting_cannot_be_started_and_a_queued_one_cannot_be_deleted() {
        assert!(!Operation::Start.allowed_from().contains(&HostingState::Running));
        assert!(!Operation::Delete.allowed_from().contains(&HostingState::Queued));
        assert!(Operation::Delete.allowed_from().contains(&HostingState::Failed));
        assert_eq!(Operation::Delete.state_while_running(HostingState::Running), HostingState::Deleting);
        assert_eq!(Operation::Stop.state_while_running(HostingState::Running), HostingState::Running);
    }
}
