//! The provisioning steps a user sees on the progress view. Which code runs for each, and in
//! which order (cold boot, warm claim, spare), is the service layer's (`hosting::units`).

string_enum! {
    pub enum Step {
        AllocatePorts = "allocate_ports" => "Reserve HTTP and SSH ports",
        CreateDisk = "create_disk" => "Create the VM's disk",
        WriteSeed = "write_seed" => "Write hostname, user, SSH keys and welcome page",
        DefineDomain = "define_domain" => "Define the virtual machine",
        StartVm = "start_vm" => "Start the virtual machine",
        WaitReady = "wait_ready" => "Wait for the web server and SSH",
        AddRoute = "add_route" => "Publish the site through nginx",
        /// A spare's last step: its memory saved to disk, so it waits holding no RAM.
        SaveSpare = "save_spare" => "Save the spare VM to disk",
    }
}
