//! What an administrator sends to add a node, checked: its name, its libvirt URI (an allowed
//! scheme and parameters, nothing that runs a program or names a file outside the key folder),
//! its address and capacities.
use std::net::IpAddr;

use crate::{Error, Result, ServiceConfig};

/// What an administrator sends to add a node.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct NewNode {
    /// 1-32 of a-z, 0-9 and '-'.
    pub name: String,
    /// `qemu+ssh://user@host[:port]/system`, `qemu+tls://host/system` (or `/session`);
    /// `test:///default` for tests.
    pub libvirt_uri: String,
    /// The IP nginx reaches the node's VM forwards on (QEMU binds them there).
    pub address: String,
    /// Memory and disk the node's sites may commit (before the overcommit ratios).
    pub memory_mib: u64,
    pub disk_gib: u64,
}

/// The URI schemes a node may be reached by (no `ext`: it runs a program of the URI's choice).
const SCHEMES: &[&str] = &["qemu", "qemu+ssh", "qemu+libssh", "qemu+libssh2", "qemu+tls", "qemu+tcp", "qemu+unix", "test"];
/// URI parameters allowed (libvirt's `command`, `netcat` and `socket` name programs or paths
/// run on the node, and are refused).
const PARAMS: &[&str] = &["keyfile", "known_hosts", "known_hosts_verify", "no_verify", "no_tty", "sshauth", "pkipath", "mode", "proxy"];

/// Checks a libvirt URI: an allowed scheme, `/system`, `/session` (or `/default` for `test`),
/// a plain `[user@]host[:port]`, allowed parameters with plain values. Nothing of it reaches a
/// shell; libvirt itself runs ssh with these as arguments.
pub fn validate_uri(uri: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::validation("libvirt_uri", format!("libvirt URI '{uri}': {why}")));
    if uri.len() > 400 || !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return bad("must be printable ASCII without spaces, at most 400 characters");
    }
    let Some((scheme, rest)) = uri.split_once("://") else { return bad("has no scheme (qemu+ssh://...)") };
    if !SCHEMES.contains(&scheme) {
        return bad(&format!("scheme '{scheme}' is not one of {}", SCHEMES.join(", ")));
    }
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => return bad("has no path (/system or /session)"),
    };
    let plain = |s: &str, extra: &[u8]| s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b) || extra.contains(&b));
    // libvirt's test driver: its shared `/default`, or a private one from an XML file.
    let test_file = scheme == "test" && authority.is_empty() && path.ends_with(".xml") && plain(path, b"/") && !path.contains("..");
    let paths: &[&str] = if scheme == "test" { &["/default"] } else { &["/system", "/session"] };
    if !paths.contains(&path) && !test_file {
        return bad(&format!("path must be {}", paths.join(" or ")));
    }
    if !plain(authority, b"@:[]") || authority.matches('@').count() > 1 || authority.starts_with('-') {
        return bad("host must be [user@]host[:port]");
    }
    if scheme.contains('+') && scheme != "qemu+unix" && authority.rsplit('@').next().unwrap_or("").is_empty() {
        return bad("a remote scheme needs a host");
    }
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if !PARAMS.contains(&k) {
            return bad(&format!("parameter '{k}' is not allowed (allowed: {})", PARAMS.join(", ")));
        }
        if !plain(v, b"/,") || v.starts_with('-') {
            return bad(&format!("parameter '{k}' has a value with characters that are not allowed"));
        }
    }
    Ok(())
}

/// The parameters of a node URI that name files on this host (libvirt reads them here).
const FILE_PARAMS: &[&str] = &["keyfile", "known_hosts", "pkipath"];

/// What the operator's settings allow of a (valid) node URI: a plaintext `qemu+tcp://` only
/// with `allow_plaintext_libvirt`, key files only inside `node_key_dir` (a plain absolute path,
/// no `..`), so an administrator's form cannot point libvirt at any file the app can read.
pub fn check_uri_policy(uri: &str, cfg: &ServiceConfig) -> Result<()> {
    let bad = |why: String| Err(Error::validation("libvirt_uri", why));
    if uri.starts_with("qemu+tcp://") && !cfg.allow_plaintext_libvirt {
        return bad("qemu+tcp:// is plaintext (no authentication, no encryption); use qemu+ssh:// or qemu+tls://, \
                    or start the app with --allow-plaintext-libvirt"
            .into());
    }
    let query = uri.split_once('?').map_or("", |(_, q)| q);
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if !FILE_PARAMS.contains(&k) {
            continue;
        }
        let Some(dir) = &cfg.node_key_dir else {
            return bad(format!("parameter '{k}' names a file; key files must be in the folder set by --node-key-dir, which is not set"));
        };
        let path = std::path::Path::new(v);
        let plain = path.is_absolute() && path.components().all(|c| matches!(c, std::path::Component::RootDir | std::path::Component::Normal(_)));
        if !plain || !path.starts_with(dir) || path == dir.as_path() && k != "pkipath" {
            return bad(format!("parameter '{k}': '{v}' is not a file inside the key folder {} (--node-key-dir)", dir.display()));
        }
    }
    Ok(())
}

fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok { Ok(()) } else { Err(Error::validation("name", "a node name is 1-32 of a-z, 0-9 and '-'")) }
}

impl NewNode {
    /// The checked input: name, URI, address (an IP), capacities (at least one small site).
    pub fn validate(&self) -> Result<IpAddr> {
        validate_name(&self.name)?;
        validate_uri(&self.libvirt_uri)?;
        let ip: IpAddr = self
            .address
            .trim()
            .parse()
            .map_err(|_| Error::validation("address", format!("'{}' is not an IP address", self.address)))?;
        if ip.is_unspecified() || ip.is_multicast() {
            return Err(Error::validation("address", "the address must be one a forward can bind and nginx can reach"));
        }
        if !(64..=64 * 1024 * 1024).contains(&self.memory_mib) {
            return Err(Error::validation("memory_mib", "memory must be 64 MiB to 64 TiB"));
        }
        if !(1..=1024 * 1024).contains(&self.disk_gib) {
            return Err(Error::validation("disk_gib", "disk must be 1 GiB to 1 PiB"));
        }
        Ok(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_uris_are_remote_libvirt_uris_without_programs_or_shell() {
        for ok in [
            "qemu+ssh://root@10.0.0.5/system",
            "qemu+ssh://vmwnode2@127.0.0.1:2222/session?keyfile=/tmp/k/id_ed25519&known_hosts=/tmp/k/known_hosts",
            "qemu+tls://host.example.com/system",
            "qemu+libssh://root@127.0.0.1:22022/session?keyfile=/var/lib/n2/id_ed25519&known_hosts=/var/lib/n2/known_hosts&sshauth=privkey",
            "qemu:///session",
            "test:///default",
            "test:///tmp/t1/node2.xml",
            "qemu+ssh://[::1]:22/system",
        ] {
            assert!(validate_uri(ok).is_ok(), "{ok}: {:?}", validate_uri(ok));
        }
        for bad in [
            "ext:///system?command=/bin/sh",
            "qemu+ext://host/system?command=/bin/sh",
            "qemu+ssh://host/system?command=rm",
            "qemu+ssh://host/system?netcat=/tmp/x",
            "qemu+ssh://host/system?keyfile=$(id)",
            "qemu+ssh://ho;st/system",
            "qemu+ssh://host/other",
            "qemu+ssh:///system",
            "qemu+ssh://-oProxyCommand=x/system",
            "qemu+ssh://host/system?keyfile=-x",
            "http://host/system",
            "qemu+ssh://host /system",
            "test:///system",
            "qemu+ssh://host",
            "test:///../etc/x.xml",
        ] {
            assert!(validate_uri(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn plaintext_uris_and_key_files_outside_the_key_folder_need_the_operators_setting() {
        let mut cfg = ServiceConfig::default();
        let field_err = |uri: &str, cfg: &ServiceConfig| match check_uri_policy(uri, cfg) {
            Err(Error::Validation { field, message }) => {
                assert_eq!(field, "libvirt_uri");
                message
            }
            other => panic!("{uri}: {other:?}"),
        };
        assert!(field_err("qemu+tcp://10.0.0.5/system", &cfg).contains("--allow-plaintext-libvirt"));
        assert!(check_uri_policy("qemu+ssh://root@10.0.0.5/system", &cfg).is_ok());
        assert!(check_uri_policy("qemu+tls://h.example/system?mode=direct", &cfg).is_ok());
        let keyed = "qemu+ssh://n2@127.0.0.1:2222/session?keyfile=/etc/vmw/keys/id_ed25519&known_hosts=/etc/vmw/keys/known_hosts";
        assert!(field_err(keyed, &cfg).contains("--node-key-dir"), "no key folder set: no key file");
        cfg.node_key_dir = Some("/etc/vmw/keys".into());
        assert!(check_uri_policy(keyed, &cfg).is_ok());
        for outside in [
            "qemu+ssh://h/system?keyfile=/root/.ssh/id_ed25519",
            "qemu+ssh://h/system?keyfile=/etc/vmw/keys/../../../root/.ssh/id_rsa",
            "qemu+ssh://h/system?known_hosts=/etc/vmw/keys2/known_hosts",
            "qemu+ssh://h/system?keyfile=etc/vmw/keys/id",
            "qemu+tls://h/system?pkipath=/etc/pki",
        ] {
            assert!(field_err(outside, &cfg).contains("/etc/vmw/keys"), "{outside}");
        }
        cfg.allow_plaintext_libvirt = true;
        assert!(check_uri_policy("qemu+tcp://10.0.0.5/system", &cfg).is_ok());
    }

    #[test]
    fn a_new_node_needs_a_name_an_ip_and_room() {
        let n = NewNode {
            name: "node-2".into(),
            libvirt_uri: "test:///default".into(),
            address: "127.0.0.1".into(),
            memory_mib: 4096,
            disk_gib: 100,
        };
        assert_eq!(n.validate().unwrap().to_string(), "127.0.0.1");
        let field = |n: NewNode| match n.validate() {
            Err(Error::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(NewNode { address: "example.com".into(), ..n.clone() }), "address");
        assert_eq!(field(NewNode { address: "0.0.0.0".into(), ..n.clone() }), "address");
        assert_eq!(field(NewNode { name: "Node 2".into(), ..n.clone() }), "name");
        assert_eq!(field(NewNode { memory_mib: 0, ..n.clone() }), "memory_mib");
        assert_eq!(field(NewNode { disk_gib: 0, ..n.clone() }), "disk_gib");
        assert_eq!(field(NewNode { libvirt_uri: "ext:///x".into(), ..n }), "libvirt_uri");
    }
}
