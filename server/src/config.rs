//! Configuration in one place: CLI flags with environment fallbacks and defaults that run out
//! of the box. `Settings` is what the application is built from (tests fill it directly).
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use service::{DomainType, ServiceConfig};

#[derive(Parser, Debug, Clone)]
#[command(name = "vm-webhoster", version, about = "Self-hosted VM web hosting: one button, one VM, one live site.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Folder for everything the service writes: database, guest images, VM disks, nginx files.
    #[arg(long, env = "VMW_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    /// Database URL: sqlite://PATH?mode=rwc (default: a file in the data dir) or postgres://...
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Address the app listens on (nginx proxies to it).
    #[arg(long, env = "VMW_LISTEN", default_value = "127.0.0.1:3000", global = true)]
    pub listen: SocketAddr,
    /// Log filter, e.g. info or vm_webhoster=debug,info (RUST_LOG wins when set).
    #[arg(long, env = "VMW_LOG", default_value = "info", global = true)]
    pub log_level: String,
    /// Log format: text (for people) or json (one object per line, for log collectors).
    #[arg(long, env = "VMW_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// libvirt URI of this node's hypervisor.
    #[arg(long, env = "VMW_LIBVIRT_URI", default_value = "qemu:///system", global = true)]
    pub libvirt_uri: String,
    /// Domain type: auto (kvm only where KVM really works, else qemu/TCG), kvm or qemu.
    #[arg(long, env = "VMW_DOMAIN_TYPE", value_enum, default_value_t = DomainTypeArg::Auto, global = true)]
    pub domain_type: DomainTypeArg,
    /// Sites also answer at http://{slug}.{base-domain}/ (*.localhost resolves to loopback).
    #[arg(long, env = "VMW_BASE_DOMAIN", default_value = "localhost", global = true)]
    pub base_domain: String,
    /// Host name shown to users in site URLs and ssh/sftp commands.
    #[arg(long, env = "VMW_PUBLIC_HOST", default_value = "127.0.0.1", global = true)]
    pub public_host: String,
    /// Where nginx, the front door, listens.
    #[arg(long, env = "VMW_NGINX_LISTEN", default_value = "127.0.0.1:80", global = true)]
    pub nginx_listen: SocketAddr,
    /// Address the VMs' SSH forwards (for users) bind to.
    #[arg(long, env = "VMW_FORWARD_BIND", default_value = "127.0.0.1", global = true)]
    pub forward_bind: IpAddr,
    /// Address the VMs' HTTP forwards (for nginx, the waker and the app's probes only) bind
    /// to: not the dashboard's host, so a tenant's page never answers under the dashboard's
    /// name (its cookies). Linux routes all of 127.0.0.0/8 to loopback.
    #[arg(long, env = "VMW_HTTP_FORWARD_BIND", default_value = "127.0.0.2", global = true)]
    pub http_forward_bind: IpAddr,
    /// Allow adding a node by a plaintext `qemu+tcp://` URI (no authentication, no encryption:
    /// anyone on the network could drive its hypervisor).
    #[arg(long, env = "VMW_ALLOW_PLAINTEXT_LIBVIRT", global = true)]
    pub allow_plaintext_libvirt: bool,
    /// Allow adding a node whose URI reaches the libvirt daemon of a node already added
    /// (refused by default: one daemon added twice is a mistake); for labs with one daemon.
    #[arg(long, env = "VMW_ALLOW_SHARED_LIBVIRT_DAEMON", global = true)]
    pub allow_shared_libvirt_daemon: bool,
    /// The folder a node URI's key files (`keyfile`, `known_hosts`, `pkipath`) must be in;
    /// unset: a node URI naming a key file is refused.
    #[arg(long, env = "VMW_NODE_KEY_DIR", global = true)]
    pub node_key_dir: Option<PathBuf>,
    /// Guest image folder (base.qcow2 [+ vmlinuz, initrd.img]); default: DATA_DIR/images/current.
    #[arg(long, env = "VMW_GUEST_IMAGE", global = true)]
    pub guest_image: Option<PathBuf>,
    /// Login user inside the VMs.
    #[arg(long, env = "VMW_GUEST_USER", default_value = "ubuntu", global = true)]
    pub guest_user: String,
    /// First loopback port for VM HTTP forwards (nginx's upstreams).
    #[arg(long, env = "VMW_HTTP_PORT_BASE", default_value_t = 20000, global = true)]
    pub http_port_base: u16,
    /// First loopback port for VM SSH forwards (the original system started at 10001).
    #[arg(long, env = "VMW_SSH_PORT_BASE", default_value_t = 10001, global = true)]
    pub ssh_port_base: u16,
    /// Name of this node (hypervisor) in the database.
    #[arg(long, env = "VMW_NODE_NAME", default_value = "local", global = true)]
    pub node_name: String,
    /// The name of this app instance: the prefix of the leases it holds on hostings while it
    /// works on them (1-64 of a-z, 0-9, '-', '.'). Replicas on one database need distinct ones.
    /// Default: `main` on SQLite (one process: a restart treats its previous leases as dead at
    /// once); on PostgreSQL `{hostname}-{pid}`, distinct for every replica and every start
    /// (the leases of a replica that died are taken over once they expire, 30 s).
    #[arg(long, env = "VMW_INSTANCE_ID", global = true)]
    pub instance_id: Option<String>,
    /// Prefix of libvirt domain names (prefix + hosting id). Two instances sharing one libvirt
    /// must use different prefixes: each reconciles away domains of its prefix it does not know.
    #[arg(long, env = "VMW_DOMAIN_PREFIX", default_value = "vmw-", global = true)]
    pub domain_prefix: String,
    /// Warm spare VMs kept ready (booted once, saved to disk, no RAM held): a create claims one
    /// and the site is live in about a second. 0 turns the pool off.
    #[arg(long, env = "VMW_POOL_SIZE", default_value_t = 2, global = true)]
    pub pool_size: usize,
    /// Warm spares kept paused in RAM in front of the saved ones (a claim resumes one in
    /// ~0.02 s; each holds its guest's memory, ~280 MiB under TCG). Six: ten creates in a row
    /// are live in about half a second each while the pool refills behind them (BENCHMARKS.md).
    /// 0 turns this tier off.
    #[arg(long, env = "VMW_POOL_PAUSED", default_value_t = 6, global = true)]
    pub pool_paused: usize,
    /// The CPU weight (cgroup `cpu.shares`, libvirt's default 1024) of a warm spare while it
    /// is made: a refill yields the CPU to users' creates. 1024 turns the yielding off.
    #[arg(long, env = "VMW_SPARE_CPU_SHARES", default_value_t = 32, value_parser = clap::value_parser!(u64).range(2..=262144), global = true)]
    pub spare_cpu_shares: u64,
    /// Connections to each node's libvirtd (1-16): libvirtd serves five calls of one
    /// connection at a time, and a guest-agent call holds one for as long as the guest takes.
    #[arg(long, env = "VMW_LIBVIRT_CONNECTIONS", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=16), global = true)]
    pub libvirt_connections: u16,
    /// Seconds a call into a guest that its tenant can trigger (console password, console
    /// size) may take, waiting for the site's previous one included, before it answers 504
    /// `guest_timeout` (1-300): a tenant's stuck guest agent holds nothing longer.
    #[arg(long, env = "VMW_GUEST_CALL_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300), global = true)]
    pub guest_call_timeout_secs: u64,
    /// How many such guest calls may run at once over all sites (1-4), each on a libvirt
    /// connection of their own: other sites' starts, stops and wakes never queue behind them.
    #[arg(long, env = "VMW_GUEST_CALLS_MAX", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=4), global = true)]
    pub guest_calls_max: u16,
    /// Do not make a golden snapshot of the guest image: every VM boots cold (30-50 s under
    /// TCG) instead of being cloned from saved memory (under a second).
    #[arg(long, env = "VMW_NO_GOLDEN", global = true)]
    pub no_golden: bool,
    /// How many VMs may be provisioned at once (boots are CPU-bound).
    #[arg(long, env = "VMW_PROVISION_CONCURRENCY", default_value_t = 2, global = true)]
    pub provision_concurrency: usize,
    /// Hostings per user.
    #[arg(long, env = "VMW_MAX_HOSTINGS_PER_USER", default_value_t = 3, global = true)]
    pub max_hostings_per_user: u32,
    /// Memory (MiB) of this node the hostings' plans may commit, before the overcommit ratio
    /// (default: the host's RAM).
    #[arg(long, env = "VMW_NODE_MEMORY_MIB", global = true)]
    pub node_memory_mib: Option<u64>,
    /// Disk (GiB) the hostings' plans may commit, before the overcommit ratio (default: the
    /// size of the file system holding the data dir).
    #[arg(long, env = "VMW_NODE_DISK_GIB", global = true)]
    pub node_disk_gib: Option<u64>,
    /// A create is refused (507, `node_full`) when the plans' memory would pass the node's
    /// memory times this.
    #[arg(long, env = "VMW_MEMORY_OVERCOMMIT", default_value_t = 1.5, global = true)]
    pub memory_overcommit: f64,
    /// The same for disk (plan disk sizes against the node's disk times this).
    #[arg(long, env = "VMW_DISK_OVERCOMMIT", default_value_t = 1.0, global = true)]
    pub disk_overcommit: f64,
    /// Where the app's waker listens: nginx's backup upstream for every site. It wakes a sleeping
    /// site and holds its first requests until it runs. Port 0 picks a free one.
    #[arg(long, env = "VMW_WAKE_LISTEN", default_value = "127.0.0.1:0", global = true)]
    pub wake_listen: SocketAddr,
    /// How often (seconds) the leader reconciles the database with libvirt, the disks and
    /// nginx; it is also how soon after a dead replica's lease expires (30 s) its work is taken over.
    #[arg(long, env = "VMW_RECONCILE_INTERVAL_SECS", default_value_t = 60, global = true)]
    pub reconcile_interval_secs: u64,
    /// App replicas behind one nginx: every replica's `--listen` address (comma-separated; this
    /// one's is added). nginx's upstream for the dashboard and API lists them all.
    #[arg(long, env = "VMW_APP_UPSTREAMS", value_delimiter = ',', global = true)]
    pub app_upstreams: Vec<SocketAddr>,
    /// Every replica's `--wake-listen` address (fixed ports, comma-separated; this one's is
    /// added): every site's backup upstreams, so a sleeping site wakes while any replica runs.
    #[arg(long, env = "VMW_WAKER_UPSTREAMS", value_delimiter = ',', global = true)]
    pub waker_upstreams: Vec<SocketAddr>,
    /// A running site with no visit (HTTP through nginx, or an open SSH session) for this many
    /// minutes goes to sleep: saved to disk, no RAM, woken by its next visitor. 0: never.
    #[arg(long, env = "VMW_IDLE_SLEEP_MINUTES", default_value_t = 15, global = true)]
    pub idle_sleep_minutes: u64,
    /// How often (seconds) running sites are checked for visits.
    #[arg(long, env = "VMW_IDLE_CHECK_SECS", default_value_t = 60, global = true)]
    pub idle_check_secs: u64,
    /// Save a site going to sleep as it is: without this, its guest first drops its page cache,
    /// so fewer pages are saved (the guest kernel zeroes what it frees: saved as zero pages).
    #[arg(long, env = "VMW_NO_SLEEP_TRIM", global = true)]
    pub no_sleep_trim: bool,
    /// Keep a sleeping site's saved memory (and a snapshot's) uncompressed: without this it is
    /// compressed with lzop (about a third of the disk; restored through `lzop -dc`,
    /// BENCHMARKS.md).
    #[arg(long, env = "VMW_NO_SLEEP_COMPRESS", global = true)]
    pub no_sleep_compress: bool,
    /// Compress a sleeping clone's saved memory with lzop too: without this it is stored as its
    /// difference to the golden snapshot's memory (zstd; ~2.3 MB instead of ~37 MB a site,
    /// expanded in ~0.1 s at its wake; BENCHMARKS.md).
    #[arg(long, env = "VMW_NO_SLEEP_DELTA", global = true)]
    pub no_sleep_delta: bool,
    /// Let libvirt check each starting VM's x86 CPU with its per-property probe (~400 monitor
    /// calls, 0.2-0.4 s of every start and wake under TCG): without this it reads the same
    /// features in two calls (libvirt's own pre-QEMU-4.1 path; README, "How a site is born").
    #[arg(long, env = "VMW_FULL_CPU_CHECK", global = true)]
    pub full_cpu_check: bool,
    /// Distinct sleeping sites one client address may wake per minute (HTTP visits and SSH
    /// connections); over it a visit gets 429 and an SSH connection is closed. 0: no limit.
    #[arg(long, env = "VMW_WAKES_PER_CLIENT_PER_MINUTE", default_value_t = 10, global = true)]
    pub wakes_per_client_per_minute: u32,
    /// Connections a sleeping site's SSH port holds at once (until the client identifies itself
    /// as SSH and the site wakes); more are closed.
    #[arg(long, env = "VMW_SSH_WAKER_HELD_PER_SITE", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub ssh_waker_held_per_site: u32,
    /// Connections held at once from one source address over every sleeping site's SSH port.
    #[arg(long, env = "VMW_SSH_WAKER_HELD_PER_SOURCE", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub ssh_waker_held_per_source: u32,
    /// How many of a user's sites may be "always on" (never put to sleep); admins have no limit.
    #[arg(long, env = "VMW_ALWAYS_ON_PER_USER", default_value_t = 1, global = true)]
    pub always_on_per_user: u32,
    /// How many snapshots (disk and memory of a running site) each user may keep.
    #[arg(long, env = "VMW_SNAPSHOTS_PER_USER", default_value_t = 5, global = true)]
    pub snapshots_per_user: u32,
    /// How much disk (MiB) each user's snapshots may take together.
    #[arg(long, env = "VMW_SNAPSHOT_DISK_PER_USER_MIB", default_value_t = 4096, global = true)]
    pub snapshot_disk_per_user_mib: u64,
    /// The backup repository (restic): an absolute folder or a URL (`sftp:user@host:/path`,
    /// `rest:http://...`, `s3:...`). Default: the folder {data-dir}/backups/repository, on the
    /// node's own disk.
    #[arg(long, env = "VMW_BACKUP_REPOSITORY", global = true)]
    pub backup_repository: Option<String>,
    /// The repository's password file. Default {data-dir}/backups/password, made (random) at
    /// first use: keep a copy off the node, the backups cannot be read without it.
    #[arg(long, env = "VMW_BACKUP_PASSWORD_FILE", global = true)]
    pub backup_password_file: Option<PathBuf>,
    /// For an sftp: repository, the command restic runs to reach it (plain words, e.g.
    /// "ssh -p 2222 -i /etc/vmw/backup_key backup@host -s sftp").
    #[arg(long, env = "VMW_BACKUP_SFTP_COMMAND", global = true)]
    pub backup_sftp_command: Option<String>,
    /// Scheduled backups that run at once on each node; more start at a later tick.
    #[arg(long, env = "VMW_BACKUP_CONCURRENCY", default_value_t = 2, global = true)]
    pub backup_concurrency: u32,
    /// Days a deleted site's backups are kept in the repository before they are forgotten.
    #[arg(long, env = "VMW_BACKUP_KEEP_DELETED_DAYS", default_value_t = 30, global = true)]
    pub backup_keep_deleted_days: u32,
    /// What each user's backups may take in the repository (MiB, counted from what restic says
    /// each site's backups add); 0: unlimited.
    #[arg(long, env = "VMW_BACKUP_QUOTA_MIB", default_value_t = 20480, global = true)]
    pub backup_quota_mib: u64,
    /// Hosting events older than this many days are deleted (hourly); 0 keeps them.
    #[arg(long, env = "VMW_EVENT_RETENTION_DAYS", default_value_t = 30, global = true)]
    pub event_retention_days: u32,
    /// nginx's access and error logs are rotated (the old one kept as .1, nginx reopens) once
    /// one passes this many MiB; checked every 10 minutes.
    #[arg(long, env = "VMW_NGINX_LOG_MAX_MIB", default_value_t = 64, global = true)]
    pub nginx_log_max_mib: u64,
    /// Event streams and `?wait=` long polls one account may hold open at once (the next gets
    /// 429, `too_many_streams`).
    #[arg(long, env = "VMW_MAX_STREAMS_PER_USER", default_value_t = 8, global = true)]
    pub max_streams_per_user: usize,
    /// Seconds a new VM has to answer HTTP and SSH before provisioning fails and rolls back.
    #[arg(long, env = "VMW_READY_TIMEOUT", default_value_t = 180, global = true)]
    pub ready_timeout_secs: u64,
    /// Folder with the built site assets (pkg/ with wasm, js, css; favicon).
    #[arg(long, env = "VMW_SITE_ROOT", default_value = "target/site", global = true)]
    pub site_root: PathBuf,
    /// Run without libvirt (accounts only; hosting calls answer that hosting is disabled).
    #[arg(long, env = "VMW_NO_LIBVIRT", global = true)]
    pub no_libvirt: bool,
    /// Do not start or manage nginx (implied by --no-libvirt).
    #[arg(long, env = "VMW_NO_NGINX", global = true)]
    pub no_nginx: bool,
    /// Make the first account to sign up an administrator. Off by default (whoever reached a
    /// fresh instance first would own it): run `vm-webhoster grant-admin LOGIN` instead.
    #[arg(long, env = "VMW_FIRST_USER_ADMIN", global = true)]
    pub first_user_admin: bool,
    /// Password hashes (Argon2id, 19 MiB each) computed at once, on threads of their own.
    #[arg(long, env = "VMW_HASH_CONCURRENCY", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64), global = true)]
    pub hash_concurrency: u16,
    /// Sign-ups allowed per client address (IPv6: per /64) per hour.
    #[arg(long, env = "VMW_SIGNUPS_PER_ADDRESS", default_value_t = 5, global = true)]
    pub signups_per_address: usize,
    /// Sign-ups allowed on the whole instance per hour.
    #[arg(long, env = "VMW_SIGNUPS_PER_HOUR", default_value_t = 60, global = true)]
    pub signups_per_hour: usize,
    /// Mark session cookies Secure (behind HTTPS).
    #[arg(long, env = "VMW_SECURE_COOKIES", global = true)]
    pub secure_cookies: bool,
    /// Certificates: `auto` (a DNS name gets one from the ACME server, loopback and IP names from
    /// a local certificate authority made at first start, operator files where given), `files`
    /// (only --tls-cert / --tls-wildcard-cert), or `off` (HTTP only).
    #[arg(long, env = "VMW_TLS", value_enum, default_value_t = TlsArg::Auto, global = true)]
    pub tls: TlsArg,
    /// Where nginx serves HTTPS.
    #[arg(long, env = "VMW_NGINX_LISTEN_TLS", default_value = "127.0.0.1:443", global = true)]
    pub nginx_listen_tls: SocketAddr,
    /// The dashboard's certificate chain (PEM) from the operator, with --tls-key.
    #[arg(long, env = "VMW_TLS_CERT", requires = "tls_key", global = true)]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, env = "VMW_TLS_KEY", requires = "tls_cert", global = true)]
    pub tls_key: Option<PathBuf>,
    /// A `*.{base-domain}` certificate chain (PEM) from the operator, with --tls-wildcard-key.
    #[arg(long, env = "VMW_TLS_WILDCARD_CERT", requires = "tls_wildcard_key", global = true)]
    pub tls_wildcard_cert: Option<PathBuf>,
    #[arg(long, env = "VMW_TLS_WILDCARD_KEY", requires = "tls_wildcard_cert", global = true)]
    pub tls_wildcard_key: Option<PathBuf>,
    /// The ACME server's directory (default: Let's Encrypt's production one).
    #[arg(long, env = "VMW_ACME_DIRECTORY", default_value = service::config::LETS_ENCRYPT, global = true)]
    pub acme_directory: String,
    /// Contact address for the ACME account (expiry warnings from the CA).
    #[arg(long, env = "VMW_ACME_EMAIL", global = true)]
    pub acme_email: Option<String>,
    /// External account binding (CAs that require one): the key id, with --acme-eab-hmac-key.
    #[arg(long, env = "VMW_ACME_EAB_KID", requires = "acme_eab_hmac_key", global = true)]
    pub acme_eab_kid: Option<String>,
    /// External account binding: the base64url HMAC key.
    #[arg(long, env = "VMW_ACME_EAB_HMAC_KEY", requires = "acme_eab_kid", global = true)]
    pub acme_eab_hmac_key: Option<String>,
    /// A PEM root certificate to trust for the ACME server's own HTTPS (a private CA).
    #[arg(long, env = "VMW_ACME_CA_ROOT", global = true)]
    pub acme_ca_root: Option<PathBuf>,
    /// DNS-01 for the base domain's wildcard certificate: the zone's primary server (RFC 2136
    /// dynamic updates), with --dns-tsig-key.
    #[arg(long, env = "VMW_DNS_UPDATE_SERVER", requires = "dns_tsig_key", global = true)]
    pub dns_update_server: Option<SocketAddr>,
    /// The TSIG key file (BIND format, as `tsig-keygen` writes it) that signs the updates.
    #[arg(long, env = "VMW_DNS_TSIG_KEY", requires = "dns_update_server", global = true)]
    pub dns_tsig_key: Option<PathBuf>,
    /// The zone the updates go to (default: found from the server's SOA answer).
    #[arg(long, env = "VMW_DNS_ZONE", global = true)]
    pub dns_zone: Option<String>,
    /// The DNS server custom domains' records are checked with (default: the host's resolver).
    #[arg(long, env = "VMW_DNS_RESOLVER", global = true)]
    pub dns_resolver: Option<SocketAddr>,
    /// `Strict-Transport-Security` max-age (seconds) on the dashboard's HTTPS answers; 0: none.
    /// Once a browser saw it, the dashboard's name is HTTPS-only for it that long.
    #[arg(long, env = "VMW_HSTS_MAX_AGE", default_value_t = 0, global = true)]
    pub hsts_max_age: u64,
    /// Custom domains each user may add (over all their sites).
    #[arg(long, env = "VMW_DOMAINS_PER_USER", default_value_t = 10, global = true)]
    pub domains_per_user: u32,
    /// Testing only: make the next provisioning fail at this step (e.g. wait_ready) to see
    /// the rollback.
    #[arg(long, env = "VMW_FAIL_STEP", hide = true, global = true)]
    pub fail_step: Option<String>,
    /// Testing only: every provisioning step waits this long first (a create in flight).
    #[arg(long, env = "VMW_STEP_DELAY_MS", hide = true, default_value_t = 0, global = true)]
    pub step_delay_ms: u64,
}

/// `--domain-type`: `auto` detects (`service::vm::detect_domain_type`).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainTypeArg {
    Auto,
    Kvm,
    Qemu,
}

impl DomainTypeArg {
    /// The configured type; None = detect at start-up.
    pub fn configured(self) -> Option<DomainType> {
        match self {
            DomainTypeArg::Auto => None,
            DomainTypeArg::Kvm => Some(DomainType::Kvm),
            DomainTypeArg::Qemu => Some(DomainType::Qemu),
        }
    }
}

/// `--tls`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsArg {
    Auto,
    Files,
    Off,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Run the service (default).
    Serve,
    /// Make an existing account an administrator.
    GrantAdmin {
        /// Email or username.
        login: String,
    },
    /// Rebuild this node from the backup repository after a disaster: the service's database
    /// and secrets from the newest state backup, then every site of the node from its newest
    /// backup. Run on a fresh data dir (and an empty database), then start the service.
    RestoreNode {
        /// The repository to restore from (default: --backup-repository). Its password file is
        /// --backup-password-file (default {data-dir}/backups/password): it must exist.
        #[arg(long)]
        from_repository: Option<String>,
        /// A state snapshot's id (default: the newest).
        #[arg(long)]
        state_snapshot: Option<String>,
        /// Overwrite a database that already holds accounts.
        #[arg(long)]
        force: bool,
    },
}

/// Everything the application is built from.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    /// The waker's address (see `Cli::wake_listen`).
    pub wake_listen: SocketAddr,
    pub database_url: String,
    pub site_root: PathBuf,
    pub service: ServiceConfig,
    pub hosting_enabled: bool,
    pub nginx_enabled: bool,
    pub secure_cookies: bool,
    pub fail_step: Option<String>,
    pub step_delay_ms: u64,
    /// Admin bootstrap, login and sign-up limits, password hashing.
    pub accounts: service::accounts::Options,
    pub max_streams_per_user: usize,
}

impl Cli {
    fn accounts_options(&self) -> service::accounts::Options {
        use service::accounts::{Limits, Options, Rate};
        let hour = std::time::Duration::from_secs(3600);
        let limits = Limits {
            signup_per_client: Rate::new(self.signups_per_address, hour),
            signup_overall: Rate::new(self.signups_per_hour, hour),
            ..Limits::default()
        };
        Options { limits, first_user_admin: self.first_user_admin, hash_concurrency: usize::from(self.hash_concurrency) }
    }

    fn tls_settings(&self) -> service::config::TlsSettings {
        use service::config::{DnsUpdate, TlsMode, TlsSettings};
        TlsSettings {
            mode: match self.tls {
                TlsArg::Auto => TlsMode::Auto,
                TlsArg::Files => TlsMode::Files,
                TlsArg::Off => TlsMode::Off,
            },
            dashboard_files: self.tls_cert.clone().zip(self.tls_key.clone()),
            sites_files: self.tls_wildcard_cert.clone().zip(self.tls_wildcard_key.clone()),
            acme_directory: self.acme_directory.clone(),
            acme_email: self.acme_email.clone(),
            acme_eab: self.acme_eab_kid.clone().zip(self.acme_eab_hmac_key.clone()),
            acme_ca_root: self.acme_ca_root.clone(),
            dns_update: self
                .dns_update_server
                .zip(self.dns_tsig_key.clone())
                .map(|(server, tsig_key_file)| DnsUpdate { server, tsig_key_file, zone: self.dns_zone.clone() }),
        }
    }

    pub fn settings(&self) -> Settings {
        let data_dir = std::path::absolute(&self.data_dir).unwrap_or_else(|_| self.data_dir.clone());
        let database_url = self.database_url.clone().unwrap_or_else(|| {
            format!("sqlite://{}?mode=rwc", data_dir.join("vm-webhoster.sqlite").display())
        });
        let service = ServiceConfig {
            guest_image_dir: self.guest_image.clone().unwrap_or_else(|| data_dir.join("images/current")),
            data_dir,
            libvirt_uri: self.libvirt_uri.clone(),
            domain_type: self.domain_type.configured(),
            base_domain: self.base_domain.clone(),
            public_host: self.public_host.clone(),
            forward_bind: self.forward_bind,
            http_forward_bind: self.http_forward_bind,
            allow_plaintext_libvirt: self.allow_plaintext_libvirt,
            allow_shared_libvirt_daemon: self.allow_shared_libvirt_daemon,
            node_key_dir: self.node_key_dir.clone(),
            guest_user: self.guest_user.clone(),
            max_hostings_per_user: self.max_hostings_per_user,
            provision_concurrency: self.provision_concurrency,
            ready_timeout_secs: self.ready_timeout_secs,
            nginx_listen: self.nginx_listen,
            http_port_base: self.http_port_base,
            node_name: self.node_name.clone(),
            instance_id: self.instance_id.clone().unwrap_or_else(|| default_instance_id(&database_url)),
            pool_size: self.pool_size,
            pool_paused: self.pool_paused,
            spare_cpu_shares: self.spare_cpu_shares,
            libvirt_connections: usize::from(self.libvirt_connections),
            guest_call_timeout_secs: self.guest_call_timeout_secs,
            guest_calls_max: usize::from(self.guest_calls_max),
            golden: !self.no_golden,
            domain_prefix: self.domain_prefix.clone(),
            ssh_port_base: self.ssh_port_base,
            app_upstream: self.listen,
            reconcile_interval_secs: self.reconcile_interval_secs,
            peer_upstreams: self.app_upstreams.clone(),
            peer_wakers: self.waker_upstreams.clone(),
            node_memory_mib: self.node_memory_mib,
            node_disk_gib: self.node_disk_gib,
            memory_overcommit: self.memory_overcommit,
            disk_overcommit: self.disk_overcommit,
            event_retention_days: self.event_retention_days,
            nginx_log_max_mib: self.nginx_log_max_mib,
            idle_sleep_secs: self.idle_sleep_minutes.saturating_mul(60),
            idle_check_secs: self.idle_check_secs.max(1),
            sleep_trim: !self.no_sleep_trim,
            sleep_compress: !self.no_sleep_compress,
            sleep_delta: !self.no_sleep_delta,
            quick_cpu_check: !self.full_cpu_check,
            always_on_per_user: self.always_on_per_user,
            snapshots_per_user: self.snapshots_per_user,
            snapshot_disk_per_user_mib: self.snapshot_disk_per_user_mib,
            wakes_per_client_per_minute: self.wakes_per_client_per_minute,
            ssh_waker_held_per_site: self.ssh_waker_held_per_site as usize,
            ssh_waker_held_per_source: self.ssh_waker_held_per_source as usize,
            nginx_listen_tls: (self.tls != TlsArg::Off).then_some(self.nginx_listen_tls),
            hsts_max_age_secs: self.hsts_max_age,
            domains_per_user: self.domains_per_user,
            dns_resolver: self.dns_resolver,
            tls: self.tls_settings(),
            backup: service::config::BackupSettings {
                repository: self.backup_repository.clone(),
                password_file: self.backup_password_file.clone(),
                sftp_command: self.backup_sftp_command.clone(),
                database_url: Some(database_url.clone()),
                concurrency: self.backup_concurrency,
                keep_deleted_days: self.backup_keep_deleted_days,
                quota_mib: self.backup_quota_mib,
            },
            ..ServiceConfig::default()
        };
        Settings {
            listen: self.listen,
            wake_listen: self.wake_listen,
            database_url,
            site_root: self.site_root.clone(),
            service,
            hosting_enabled: !self.no_libvirt,
            nginx_enabled: !self.no_libvirt && !self.no_nginx,
            secure_cookies: self.secure_cookies,
            fail_step: self.fail_step.clone(),
            step_delay_ms: self.step_delay_ms,
            accounts: self.accounts_options(),
            max_streams_per_user: self.max_streams_per_user,
        }
    }
}

/// `main` on SQLite; `{hostname}-{pid}` (as a valid instance id) on PostgreSQL, where replicas
/// share the database.
fn default_instance_id(database_url: &str) -> String {
    if !database_url.starts_with("postgres") {
        return "main".into();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' })
        .take(40)
        .collect();
    let host = if host.is_empty() { "replica".to_owned() } else { host };
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("vm-webhoster").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn defaults_run_out_of_the_box() {
        let cli = parse(&["--data-dir", "/srv/vmw"]);
        assert!(cli.command.is_none(), "serve is the default");
        let s = cli.settings();
        assert_eq!(s.database_url, "sqlite:///srv/vmw/vm-webhoster.sqlite?mode=rwc");
        assert_eq!(s.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(s.service.data_dir, PathBuf::from("/srv/vmw"));
        assert_eq!(s.service.guest_image_dir, PathBuf::from("/srv/vmw/images/current"));
        assert_eq!(s.service.domain_type, None, "auto detects");
        assert!(s.hosting_enabled && s.nginx_enabled && !s.secure_cookies);
        assert_eq!(s.accounts, service::accounts::Options::default(), "the service's defaults");
        assert!(!s.accounts.first_user_admin, "nobody becomes an administrator by signing up first");
        assert_eq!(s.accounts.hash_concurrency, 2);
        assert_eq!(s.accounts.limits.signup_per_client.max, 5);
        assert_eq!(s.accounts.limits.signup_overall.max, 60);
        let s = parse(&["--first-user-admin", "--hash-concurrency", "4", "--signups-per-address", "1", "--signups-per-hour", "9"]).settings();
        assert!(s.accounts.first_user_admin);
        assert_eq!(s.service.instance_id, "main", "one process on SQLite");
        assert_eq!((s.accounts.hash_concurrency, s.accounts.limits.signup_per_client.max, s.accounts.limits.signup_overall.max), (4, 1, 9));
        assert!(Cli::try_parse_from(["vm-webhoster", "--hash-concurrency", "0"]).is_err());
    }

    #[test]
    fn flags_reach_the_service_config() {
        let s = parse(&[
            "--database-url", "postgres://db/vmw", "--domain-type", "qemu", "--no-libvirt",
            "--max-hostings-per-user", "1", "--listen", "127.0.0.1:0", "--log-format", "json",
        ])
        .settings();
        assert_eq!(s.database_url, "postgres://db/vmw");
        let id = &s.service.instance_id;
        assert!(id.ends_with(&format!("-{}", std::process::id())), "a replica's own id by default: {id}");
        assert!(id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'), "{id}");
        assert_eq!(parse(&["--database-url", "postgres://db/vmw", "--instance-id", "web-1"]).settings().service.instance_id, "web-1");
        assert_eq!(s.service.domain_type, Some(DomainType::Qemu));
        assert_eq!(s.service.max_hostings_per_user, 1);
        assert!(!s.hosting_enabled && !s.nginx_enabled, "--no-libvirt implies no nginx");
        assert!(parse(&["grant-admin", "ann"]).command.is_some());
        assert!(Cli::try_parse_from(["vm-webhoster", "--log-format", "xml"]).is_err());
    }

    #[test]
    fn addresses_and_the_domain_type_are_parsed_once_and_bad_ones_refused() {
        let s = parse(&["--nginx-listen", "0.0.0.0:8080", "--forward-bind", "127.0.0.2", "--domain-type", "kvm"]).settings();
        assert_eq!(s.service.nginx_listen, "0.0.0.0:8080".parse::<SocketAddr>().unwrap());
        assert_eq!(s.service.forward_bind, "127.0.0.2".parse::<IpAddr>().unwrap());
        let d = parse(&[]).settings();
        assert_eq!((d.service.forward_bind.to_string(), d.service.http_forward_bind.to_string()), ("127.0.0.1".into(), "127.0.0.2".into()), "HTTP forwards are not on the dashboard's host");
        assert!(!d.service.allow_plaintext_libvirt && d.service.node_key_dir.is_none());
        let o = parse(&["--http-forward-bind", "127.0.0.9", "--allow-plaintext-libvirt", "--node-key-dir", "/etc/vmw/keys"]).settings();
        assert_eq!(o.service.http_forward_bind, "127.0.0.9".parse::<IpAddr>().unwrap());
        assert!(o.service.allow_plaintext_libvirt && o.service.node_key_dir == Some(PathBuf::from("/etc/vmw/keys")));
        assert_eq!(s.service.domain_type, Some(DomainType::Kvm));
        assert_eq!(s.service.app_upstream, s.listen, "nginx proxies to the app's own address");
        let refused = |args: &[&str]| Cli::try_parse_from(std::iter::once("vm-webhoster").chain(args.iter().copied())).is_err();
        // Nothing but an address reaches QEMU's hostfwd option or nginx's listen directive.
        assert!(refused(&["--forward-bind", "127.0.0.1,hostfwd=tcp::1-:22"]));
        assert!(refused(&["--forward-bind", "localhost"]));
        assert!(refused(&["--http-forward-bind", "127.0.0.2,hostfwd=tcp::1-:22"]));
        assert!(refused(&["--nginx-listen", "80; evil"]));
        assert!(refused(&["--nginx-listen", "127.0.0.1"]), "a port is required");
        assert!(refused(&["--domain-type", "xen"]));
    }

    #[test]
    fn tls_is_on_by_default_and_its_settings_come_in_pairs() {
        use service::config::TlsMode;
        let d = parse(&[]).settings();
        assert_eq!(d.service.tls.mode, TlsMode::Auto);
        assert_eq!(d.service.nginx_listen_tls, Some("127.0.0.1:443".parse().unwrap()));
        assert_eq!(d.service.tls.acme_directory, service::config::LETS_ENCRYPT);
        assert_eq!(d.service.hsts_max_age_secs, 0, "HSTS is never on by default");
        assert_eq!(parse(&["--tls", "off"]).settings().service.nginx_listen_tls, None);
        let s = parse(&[
            "--tls-cert", "/c.pem", "--tls-key", "/k.pem", "--dns-update-server", "127.0.0.1:5353",
            "--dns-tsig-key", "/t.key", "--acme-eab-kid", "kid", "--acme-eab-hmac-key", "aGk",
        ])
        .settings();
        assert_eq!(s.service.tls.dashboard_files, Some((PathBuf::from("/c.pem"), PathBuf::from("/k.pem"))));
        let u = s.service.tls.dns_update.unwrap();
        assert_eq!((u.server.to_string(), u.tsig_key_file, u.zone), ("127.0.0.1:5353".into(), PathBuf::from("/t.key"), None));
        assert_eq!(s.service.tls.acme_eab, Some(("kid".into(), "aGk".into())));
        let refused = |args: &[&str]| Cli::try_parse_from(std::iter::once("vm-webhoster").chain(args.iter().copied())).is_err();
        assert!(refused(&["--tls-cert", "/c.pem"]), "a certificate without its key");
        assert!(refused(&["--dns-update-server", "127.0.0.1:53"]), "updates without a key");
        assert!(refused(&["--tls", "sometimes"]));
        assert!(refused(&["--nginx-listen-tls", "443"]));
    }

    #[test]
    fn backups_go_to_a_folder_under_the_data_dir_unless_a_repository_is_set() {
        use std::path::Path;
        let d = parse(&["--data-dir", "/srv/vmw"]).settings().service;
        let r = d.backup_repo_settings();
        assert_eq!((r.url.as_str(), r.password_file.as_path()), ("/srv/vmw/backups/repository", Path::new("/srv/vmw/backups/password")));
        assert!(r.is_local() && r.sftp_command.is_none());
        let s = parse(&[
            "--backup-repository", "sftp:backup@127.0.0.1:/repo", "--backup-password-file", "/etc/vmw/backup.pw",
            "--backup-sftp-command", "ssh -p 2222 backup@127.0.0.1 -s sftp",
        ])
        .settings()
        .service;
        let r = s.backup_repo_settings();
        assert_eq!((r.url.as_str(), r.password_file.as_path()), ("sftp:backup@127.0.0.1:/repo", Path::new("/etc/vmw/backup.pw")));
        let cmd = r.sftp_command.clone().unwrap();
        assert_eq!((cmd.program.as_str(), cmd.args.len()), ("ssh", 5));
        assert!(!r.is_local());
        service::backup::Restic::new(r).expect("valid settings");
    }
}
