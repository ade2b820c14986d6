//! The provisioning steps a user sees on the progress view. Which code runs for each, and in
//! which order (cold boot, warm claim, spare), is the service layer's (`hosting::units`).

string_enum! {
    pub enum Step {
        AllocatePorts = "allocate_ports",
        CreateDisk = "create_disk",
        WriteSeed = "write_seed",
        DefineDomain = "define_domain",
        StartVm = "start_vm",
        WaitReady = "wait_ready",
        AddRoute = "add_route",
        /// A spare's last step: its memory saved to disk, so it waits holding no RAM.
        SaveSpare = "save_spare",
        /// A spare's last step in the fast tier: paused in RAM (resumes in ~0.02 s).
        PauseSpare = "pause_spare",
        /// A new VM made from the golden snapshot of the guest image (no boot).
        CloneVm = "clone_vm",
        /// A clone gets its own machine-id and SSH host keys, and sshd starts.
        Reidentify = "reidentify",
    }
}

impl Step {
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
            Step::SaveSpare => "Save the spare VM to disk",
            Step::PauseSpare => "Pause the spare VM in memory",
            Step::CloneVm => "Clone the VM from the golden snapshot",
            Step::Reidentify => "Give the VM its own SSH host keys and machine-id",
        }
    }
}
