//! Service configuration: one plain struct, filled by the server's CLI/env parsing
//! (server::config), with defaults that run out of the box.
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct Plan {
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
}

#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Everything the service writes lives under here: images/, vms/, nginx/, logs/.
    pub data_dir: PathBuf,
    /// e.g. qemu:///system, or test:///default for fast tests.
    pub libvirt_uri: String,
    /// "kvm" or "qemu"; None = detect at start-up.
    pub domain_type: Option<String>,
    /// Sites answer at http://{slug}.{base_domain}/
    pub base_domain: String,
    /// Host name users are told to ssh/sftp to.
    pub public_host: String,
    /// Address the VMs' forwarded ports bind to (loopback here).
    pub forward_bind: String,
    /// Guest login user (the original system promised `ubuntu`).
    pub guest_user: String,
    /// Base image directory (built by guest/build-image.sh) or an operator-supplied image.
    pub guest_image_dir: PathBuf,
    pub plans: Vec<Plan>,
    pub max_hostings_per_user: u32,
    pub provision_concurrency: usize,
    /// First loopback port handed out for VM HTTP forwards and SSH forwards.
    pub http_port_base: u16,
    pub ssh_port_base: u16,
    pub port_range_len: u16,
    /// Seconds to wait for a new VM to answer HTTP and SSH.
    pub ready_timeout_secs: u64,
    /// nginx: the binary, and the port the front door listens on.
    pub nginx_bin: PathBuf,
    pub nginx_listen: String,
    /// Where the app listens (nginx proxies `/` to it).
    pub app_upstream: String,
    /// Name of the node this instance manages.
    pub node_name: String,
    /// A stable name of this app instance: the prefix of the leases it takes on hostings.
    /// Replicas on one database need distinct ones; a restarted instance with the same name
    /// knows its previous boot's leases are dead.
    pub instance_id: String,
    /// Prefix of libvirt domain names ("vmw-" + hosting id). Tests use a unique one.
    pub domain_prefix: String,
    /// Interval of the background reconciliation (database vs libvirt vs disk vs nginx).
    pub reconcile_interval_secs: u64,
    /// Interval of the per-VM stats sampler feeding the live charts.
    pub stats_interval_secs: u64,
    /// Warm spare VMs kept ready (booted once, saved to disk): a create claims one and the
    /// site is live in about a second instead of a cold boot. 0 turns the pool off.
    pub pool_size: usize,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        let data_dir = PathBuf::from("./data");
        Self {
            guest_image_dir: data_dir.join("images/current"),
            data_dir,
            libvirt_uri: "qemu:///system".into(),
            domain_type: None,
            base_domain: "localhost".into(),
            public_host: "127.0.0.1".into(),
            forward_bind: "127.0.0.1".into(),
            guest_user: "ubuntu".into(),
            plans: vec![
                Plan { name: "small".into(), vcpus: 1, memory_mib: 256, disk_gib: 4 },
                Plan { name: "medium".into(), vcpus: 1, memory_mib: 512, disk_gib: 8 },
                Plan { name: "large".into(), vcpus: 2, memory_mib: 1024, disk_gib: 20 },
            ],
            max_hostings_per_user: 3,
            provision_concurrency: 2,
            http_port_base: 20000,
            ssh_port_base: 10001,
            port_range_len: 5000,
            ready_timeout_secs: 180,
            nginx_bin: PathBuf::from("/usr/sbin/nginx"),
            nginx_listen: "127.0.0.1:80".into(),
            app_upstream: "127.0.0.1:3000".into(),
            node_name: "local".into(),
            instance_id: "main".into(),
            domain_prefix: "vmw-".into(),
            reconcile_interval_secs: 60,
            stats_interval_secs: 5,
            pool_size: 0,
        }
    }
}

impl ServiceConfig {
    pub fn plan(&self, name: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.name == name)
    }

    /// ":8080" when nginx listens on a port other than 80, else "".
    pub fn nginx_port_suffix(&self) -> String {
        match self.nginx_listen.rsplit_once(':').map(|(_, p)| p) {
            Some("80") | None => String::new(),
            Some(p) => format!(":{p}"),
        }
    }

    /// The host users type in a browser, with nginx's port when it is not 80.
    pub fn public_host_with_port(&self) -> String {
        format!("{}{}", self.public_host, self.nginx_port_suffix())
    }
}
