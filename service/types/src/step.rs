//! The provisioning steps a user sees on the progress view. Which code runs for each, and in
//! which order (cold boot, warm claim, spare), is the service layer's (`hosting::units`).

string_enum! {
    pub enum Step {
        AllocatePorts => "Reserve HTTP and SSH ports",
        CreateDisk => "Create the VM's disk",
        WriteSeed => "Write the user's SSH keys and welcome page (a boot: hostname and user too)",
        DefineDomain => "Define the virtual machine",
        StartVm => "Start the virtual machine",
        WaitReady => "Wait for the web server and SSH",
        AddRoute => "Publish the site through nginx",
        /// A spare's last step: its memory saved to disk, so it waits holding no RAM.
        SaveSpare => "Save the spare VM to disk",
        /// A spare's last step in the fast tier: paused in RAM (resumes in ~0.02 s).
        PauseSpare => "Pause the spare VM in memory",
        /// A new VM made from the golden snapshot of the guest image (no boot).
        CloneVm => "Clone the VM from the golden snapshot",
        /// A clone gets its own machine-id and SSH host keys, and sshd starts.
        Reidentify => "Give the VM its own SSH host keys and machine-id",
        /// A claimed spare or a clone takes its owner's hostname once its site is live.
        SetHostname => "Set the VM's hostname",
    }
}
