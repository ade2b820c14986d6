//! Service configuration: one plain struct, filled by the server's CLI/env parsing
//! (server::config), with defaults that run out of the box.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

/// The libvirt domain type: `kvm` (hardware virtualisation) or `qemu` (TCG, emulation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DomainType {
    Kvm,
    Qemu,
}

impl DomainType {
    /// The name libvirt's `<domain type='...'>` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            DomainType::Kvm => "kvm",
            DomainType::Qemu => "qemu",
        }
    }
}

impl std::fmt::Display for DomainType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the front door's certificates come from (`--tls`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Each name the way that works for it: a DNS name from the ACME server, a loopback or IP
    /// name from the local certificate authority, operator files where given.
    Auto,
    /// Operator-supplied files only (`--tls-cert`/`--tls-key`, `--tls-wildcard-*`).
    Files,
    /// No HTTPS.
    #[default]
    Off,
}

/// RFC 2136 dynamic updates for DNS-01 (the base domain's wildcard certificate).
#[derive(Clone, Debug)]
pub struct DnsUpdate {
    /// The zone's primary server.
    pub server: SocketAddr,
    /// A BIND-format TSIG key file (`tsig-keygen`).
    pub tsig_key_file: PathBuf,
    /// The zone updated; None: found from the server's SOA answer.
    pub zone: Option<String>,
}

/// Certificates: where they come from and the ACME account that asks for them.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    pub mode: TlsMode,
    /// The dashboard's certificate chain and key from the operator (instead of ACME/local CA).
    pub dashboard_files: Option<(PathBuf, PathBuf)>,
    /// A `*.{base_domain}` certificate chain and key from the operator.
    pub sites_files: Option<(PathBuf, PathBuf)>,
    /// The ACME server's directory URL.
    pub acme_directory: String,
    pub acme_email: Option<String>,
    /// External account binding: key id and base64url HMAC key.
    pub acme_eab: Option<(String, String)>,
    /// A PEM root to trust for the ACME server's own HTTPS (a private CA such as Pebble).
    pub acme_ca_root: Option<PathBuf>,
    /// DNS-01 for the sites' wildcard; None: no wildcard from ACME.
    pub dns_update: Option<DnsUpdate>,
}

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            mode: TlsMode::Off,
            dashboard_files: None,
            sites_files: None,
            acme_directory: LETS_ENCRYPT.into(),
            acme_email: None,
            acme_eab: None,
            acme_ca_root: None,
            dns_update: None,
        }
    }
}

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
    /// None = detect at start-up (`vm::detect_domain_type`).
    pub domain_type: Option<DomainType>,
    /// Sites answer at http://{slug}.{base_domain}/
    pub base_domain: String,
    /// Host name users are told to ssh/sftp to.
    pub public_host: String,
    /// Address the VMs' SSH forwards bind to (loopback here): users ssh there.
    pub forward_bind: IpAddr,
    /// Address the VMs' HTTP forwards bind to: only nginx, the waker and the app's probes
    /// connect there. Not the dashboard's host (a page served at the dashboard's host name on
    /// another port would get its cookies): another loopback address by default.
    pub http_forward_bind: IpAddr,
    /// Adding a node by a plaintext `qemu+tcp://` URI (no authentication, no encryption).
    pub allow_plaintext_libvirt: bool,
    /// Adding a node whose URI reaches a known node's libvirt daemon (refused by default: the
    /// same daemon twice is an operator's mistake). Each node's domains carry its own name
    /// prefix and marker, so two nodes on one daemon leave each other's domains alone; for
    /// labs and tests that have one daemon only.
    pub allow_shared_libvirt_daemon: bool,
    /// The folder a node URI's key files (`keyfile`, `known_hosts`, `pkipath`) must be in;
    /// None: no URI may name one.
    pub node_key_dir: Option<PathBuf>,
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
    pub nginx_listen: SocketAddr,
    /// Where the app listens (nginx proxies `/` to it).
    pub app_upstream: SocketAddr,
    /// The app's waker (a site's backup upstream in nginx: it wakes sleeping sites and holds
    /// their first requests). None: no backup, a sleeping site shows the site-down page.
    pub waker_upstream: Option<SocketAddr>,
    /// The other app replicas' addresses and wakers (replicas behind one nginx): nginx's
    /// upstreams list them all, sorted, so every replica writes the same files and a request
    /// goes to another replica when one is down.
    pub peer_upstreams: Vec<SocketAddr>,
    pub peer_wakers: Vec<SocketAddr>,
    /// A running site with no visit (HTTP through nginx, or an open SSH session) for this long
    /// goes to sleep. 0: sites never sleep by themselves.
    pub idle_sleep_secs: u64,
    /// Before a site goes to sleep, its guest drops its page cache (freed memory is zeroed by
    /// the guest kernel, so it is saved as zero pages): fewer pages are saved.
    pub sleep_trim: bool,
    /// A sleeping site's saved memory (and a snapshot's) is compressed: a clone's as its
    /// difference to the golden snapshot's (`sleep_delta`, ~2 % of the bytes), else with lzop
    /// (in libvirt's save format; restored through `lzop -dc`): about a third of the bytes.
    pub sleep_compress: bool,
    /// A sleeping clone's memory is stored as a zstd delta to its golden's (`vm::delta`);
    /// false: lzop for every VM.
    pub sleep_delta: bool,
    /// libvirt checks a starting VM's x86 CPU in two monitor calls instead of ~400 (the
    /// `qemu:capabilities` override in `vm::cpu_check`): 0.2-0.4 s off every start, restore and
    /// wake. false: libvirt's default per-property probe.
    pub quick_cpu_check: bool,
    /// How often running sites are checked for visits.
    pub idle_check_secs: u64,
    /// How many of a user's sites may be "always on" (never put to sleep). Admins: no limit.
    pub always_on_per_user: u32,
    /// How many snapshots each user may keep (over all their sites). Admins: the same.
    pub snapshots_per_user: u32,
    /// How much disk (MiB) each user's snapshots may take together (memory + disk copy).
    pub snapshot_disk_per_user_mib: u64,
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
    /// Warm spare VMs kept paused in RAM (a claim resumes one in ~0.02 s): the fastest tier,
    /// in front of the `pool_size` saved ones. Each holds its guest's memory.
    pub pool_paused: usize,
    /// The CPU weight (cgroup `cpu.shares`, 2-262144; libvirt's default is 1024) a warm spare
    /// runs at while it is made, so that a refill yields the CPU to users' VMs. A claimed spare
    /// gets the default weight back. 1024 gives spares no less than users' VMs.
    pub spare_cpu_shares: u64,
    /// Connections to a node's libvirtd (at least 1); each call takes the least busy. libvirtd
    /// serves five calls of one connection at a time and queues the rest (`vm::connections`).
    pub libvirt_connections: usize,
    /// How long a call into a guest that its tenant can trigger (the console password, the
    /// console's size: `vm::guest_calls`) may take, waiting included, before it answers
    /// `guest_timeout` (at least 1 s).
    pub guest_call_timeout_secs: u64,
    /// How many such calls may be in the guests at once, over all sites (1-4), each on a libvirt
    /// connection of the guest calls' own (never one that starts, stops or wakes sites).
    pub guest_calls_max: usize,
    /// Make a golden snapshot of the guest image (one cold boot) and make every new VM a clone
    /// of it (restored in well under a second) instead of booting it.
    pub golden: bool,
    /// Node capacity: memory (MiB) and disk (GiB) the node's hostings may commit before a
    /// create is refused (`node_full`), as the host's size times the overcommit ratio. None:
    /// taken from the host (/proc/meminfo, statvfs of `data_dir`).
    pub node_memory_mib: Option<u64>,
    pub node_disk_gib: Option<u64>,
    pub memory_overcommit: f64,
    pub disk_overcommit: f64,
    /// Hosting events older than this many days are pruned (hourly); 0 keeps them forever.
    pub event_retention_days: u32,
    /// nginx's access and error logs are rotated (to `.1`, nginx reopens) once one passes
    /// this many MiB (checked every 10 minutes).
    pub nginx_log_max_mib: u64,
    /// Distinct sleeping sites one client address may wake per minute (HTTP through the waker,
    /// SSH through a sleeping site's port); over it the wake is refused (HTTP 429). 0: no limit.
    pub wakes_per_client_per_minute: u32,
    /// Connections a sleeping site's SSH port holds at once (waiting for the client's SSH
    /// identification or for the wake); more are closed at once.
    pub ssh_waker_held_per_site: usize,
    /// Connections held at once from one source address, over every sleeping site's SSH port.
    pub ssh_waker_held_per_source: usize,
    /// Where nginx serves HTTPS (the dashboard, `{slug}.{base_domain}`, custom domains). None:
    /// no HTTPS at all (`--tls off`).
    pub nginx_listen_tls: Option<SocketAddr>,
    /// `Strict-Transport-Security` max-age on the dashboard's HTTPS answers; 0: none (default).
    pub hsts_max_age_secs: u64,
    /// Custom domains each user may add over all their sites.
    pub domains_per_user: u32,
    /// The DNS server domain checks ask (CNAME/TXT records); None: the host's resolver.
    pub dns_resolver: Option<SocketAddr>,
    /// Certificates (`--tls` and the ACME settings).
    pub tls: TlsSettings,
    /// The backup repository (issue 31).
    pub backup: BackupSettings,
}

/// Where backups go. Each `None` takes its default under `data_dir`
/// ([`ServiceConfig::backup_repo_settings`]).
#[derive(Clone, Debug)]
pub struct BackupSettings {
    /// A restic repository URL or absolute folder; default `{data_dir}/backups/repository`
    /// (a folder on the node's own disk: the pages say so until another is set).
    pub repository: Option<String>,
    /// The repository password file; default `{data_dir}/backups/password`, made at first use.
    pub password_file: Option<PathBuf>,
    /// For `sftp:` repositories: the command restic runs to reach the server, as plain words
    /// (`ssh -p 2222 -i /key user@host -s sftp`).
    pub sftp_command: Option<String>,
    /// The service's database URL, dumped into every state backup (`crate::state_backup`).
    /// None: the connection's own (SQLite copies without it; PostgreSQL needs it for pg_dump).
    pub database_url: Option<String>,
    /// Scheduled backups running at once per node (more wait for a later tick).
    pub concurrency: u32,
    /// How long a deleted site's backups are kept before they are forgotten (days).
    pub keep_deleted_days: u32,
    /// What each user's backups may take in the repository (MiB); 0: unlimited.
    pub quota_mib: u64,
}

impl Default for BackupSettings {
    fn default() -> Self {
        Self { repository: None, password_file: None, sftp_command: None, database_url: None, concurrency: 2, keep_deleted_days: 30, quota_mib: 20480 }
    }
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
            forward_bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            http_forward_bind: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
            allow_plaintext_libvirt: false,
            allow_shared_libvirt_daemon: false,
            node_key_dir: None,
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
            nginx_listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 80),
            app_upstream: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 3000),
            waker_upstream: None,
            peer_upstreams: Vec::new(),
            peer_wakers: Vec::new(),
            idle_sleep_secs: 15 * 60,
            idle_check_secs: 60,
            sleep_trim: true,
            sleep_compress: true,
            sleep_delta: true,
            quick_cpu_check: true,
            always_on_per_user: 1,
            snapshots_per_user: 5,
            snapshot_disk_per_user_mib: 4096,
            node_name: "local".into(),
            instance_id: "main".into(),
            domain_prefix: "vmw-".into(),
            reconcile_interval_secs: 60,
            stats_interval_secs: 5,
            pool_size: 0,
            pool_paused: 0,
            spare_cpu_shares: 32,
            libvirt_connections: 4,
            guest_call_timeout_secs: 10,
            guest_calls_max: 3,
            golden: false,
            node_memory_mib: None,
            node_disk_gib: None,
            memory_overcommit: 1.5,
            disk_overcommit: 1.0,
            event_retention_days: 30,
            nginx_log_max_mib: 64,
            wakes_per_client_per_minute: 10,
            ssh_waker_held_per_site: 32,
            ssh_waker_held_per_source: 8,
            nginx_listen_tls: None,
            hsts_max_age_secs: 0,
            domains_per_user: 10,
            dns_resolver: None,
            tls: TlsSettings::default(),
            backup: BackupSettings::default(),
        }
    }
}

impl ServiceConfig {
    /// The backup repository's folder under the data dir when none is configured.
    pub fn default_backup_repository(&self) -> PathBuf {
        self.data_dir.join("backups/repository")
    }

    /// The backup password file (configured, or `{data_dir}/backups/password`).
    pub fn backup_password_file(&self) -> PathBuf {
        self.backup.password_file.clone().unwrap_or_else(|| self.data_dir.join("backups/password"))
    }

    /// The restic settings of the backup repository (checked by `Restic::new`). restic's
    /// cache is `{data_dir}/backups/cache`.
    pub fn backup_repo_settings(&self) -> crate::backup::RepoSettings {
        let url = self.backup.repository.clone().unwrap_or_else(|| self.default_backup_repository().display().to_string());
        let mut s = crate::backup::RepoSettings::new(url, self.backup_password_file(), self.data_dir.join("backups/cache"));
        s.sftp_command = self.backup.sftp_command.as_deref().and_then(|c| {
            let mut words = c.split_whitespace();
            words.next().map(|program| crate::backup::SftpCommand::new(program, words))
        });
        s
    }

    pub fn plan(&self, name: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.name == name)
    }

    /// ":8080" when nginx listens on a port other than 80, else "".
    pub fn nginx_port_suffix(&self) -> String {
        match self.nginx_listen.port() {
            80 => String::new(),
            p => format!(":{p}"),
        }
    }

    /// Where this host reaches nginx: its listen address, with a wildcard (0.0.0.0, ::)
    /// replaced by loopback of the same family.
    pub fn nginx_local_addr(&self) -> SocketAddr {
        let ip = match self.nginx_listen.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        SocketAddr::new(ip, self.nginx_listen.port())
    }

    /// The host users type in a browser, with nginx's port when it is not 80.
    pub fn public_host_with_port(&self) -> String {
        format!("{}{}", self.public_host, self.nginx_port_suffix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_is_reached_on_loopback_and_its_port_shown_only_when_not_80() {
        let mut c = ServiceConfig::default();
        assert_eq!(c.public_host_with_port(), "127.0.0.1");
        c.nginx_listen = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(c.public_host_with_port(), "127.0.0.1:8080");
        assert_eq!(c.nginx_local_addr().to_string(), "127.0.0.1:8080");
        c.nginx_listen = "[::]:80".parse().unwrap();
        assert_eq!(c.nginx_port_suffix(), "");
        assert_eq!(c.nginx_local_addr().to_string(), "[::1]:80");
        c.nginx_listen = "127.0.0.5:81".parse().unwrap();
        assert_eq!(c.nginx_local_addr().to_string(), "127.0.0.5:81");
        assert_eq!(DomainType::Kvm.to_string(), "kvm");
        assert_eq!(DomainType::Qemu.to_string(), "qemu");
    }
}
