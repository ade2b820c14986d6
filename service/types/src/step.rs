//! The provisioning steps a user sees on the progress view. Which code runs for each, and in
//! which order (cold boot, warm claim, spare), is the service layer's (`hosting::units`).

string_enum! {
    pub enum Step {
        AllocatePorts = "allocate_ports" => "Reserve HTTP and SSH ports",
        CreateDisk = "create_disk" => "Create the VM's disk",
        WriteSeed = "write_seed" => "Write the user's SSH keys and welcome page (a boot: hostname and user too)",
        DefineDomain = "define_domain" => "Define the virtual machine",
        StartVm = "start_vm" => "Start the virtual machine",
        WaitReady = "wait_ready" => "Wait for the web server and SSH",
        AddRoute = "add_route" => "Publish the site through nginx",
        /// A spare's last step: its memory saved to disk, so it waits holding no RAM.
        SaveSpare = "save_spare" => "Save the spare VM to disk",
        /// A spare's last step in the fast tier: paused in RAM (resumes in ~0.02 s).
        PauseSpare = "pause_spare" => "Pause the spare VM in memory",
        /// A new VM made from the golden snapshot of the guest image (no boot).
        CloneVm = "clone_vm" => "Clone the VM from the golden snapshot",
        /// A clone gets its own machine-id and SSH host keys, and sshd starts.
        Reidentify = "reidentify" => "Give the VM its own SSH host keys and machine-id",
        /// A claimed spare or a clone takes its owner's hostname once its site is live.
        SetHostname = "set_hostname" => "Set the VM's hostname",
    }
}
