//! The provisioning steps, in order. Each one knows how to undo itself (see provision.rs).
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    AllocatePorts,
    CreateDisk,
    WriteSeed,
    DefineDomain,
    StartVm,
    WaitReady,
    AddRoute,
}

impl Step {
    pub const ALL: [Step; 7] = [
        Step::AllocatePorts,
        Step::CreateDisk,
        Step::WriteSeed,
        Step::DefineDomain,
        Step::StartVm,
        Step::WaitReady,
        Step::AddRoute,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::AllocatePorts => "allocate_ports",
            Step::CreateDisk => "create_disk",
            Step::WriteSeed => "write_seed",
            Step::DefineDomain => "define_domain",
            Step::StartVm => "start_vm",
            Step::WaitReady => "wait_ready",
            Step::AddRoute => "add_route",
        }
    }

    /// Human label for progress views.
    pub fn label(self) -> &'static str {
        match self {
            Step::AllocatePorts => "Reserve HTTP and SSH ports",
            Step::CreateDisk => "Create the VM's disk",
            Step::WriteSeed => "Write hostname, user, SSH keys and welcome page",
            Step::DefineDomain => "Define the virtual machine",
            Step::StartVm => "Start the virtual machine",
            Step::WaitReady => "Wait for the web server and SSH",
            Step::AddRoute => "Publish the site through nginx",
        }
    }

    pub fn parse(s: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_round_trip_and_routes_come_last() {
        for st in Step::ALL {
            assert_eq!(Step::parse(st.as_str()), Some(st));
        }
        // The site is published only once the VM answers: nginx never routes to a VM that is not ready.
        assert_eq!(Step::ALL.last(), Some(&Step::AddRoute));
        let ready = Step::ALL.iter().position(|s| *s == Step::WaitReady).unwrap();
        let route = Step::ALL.iter().position(|s| *s == Step::AddRoute).unwrap();
        assert!(ready < route);
    }
}
