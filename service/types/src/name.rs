//! The one rule for usernames and site names (they share it: a username is also a user's
//! default site name). Used by the service's validated types and by the browser's live check.

/// Names that can never be a username or a site name: they are (or may become) paths of the
/// app itself, or would be confusing.
pub const RESERVED_NAMES: &[&str] = &[
    "admin", "administrator", "api", "app", "assets", "auth", "dashboard", "docs", "favicon", "favicon-ico",
    "health", "host", "hostings", "login", "logout", "metrics", "new", "nginx", "openapi", "pkg", "public", "root",
    "settings", "signup", "static", "status", "system", "users", "www", "vmw", "webhoster", "hosting", "me",
    // Host labels a dashboard or its mail and name servers commonly use ({slug}.{base-domain}
    // must never look like one of them).
    "localhost", "mail", "smtp", "imap", "pop", "pop3", "ftp", "sftp", "ssh", "ns1", "ns2", "dns", "cdn",
    "webmail", "portal", "console", "panel", "cpanel", "autoconfig", "autodiscover", "wpad",
];

/// The first label of each host name (`host` of `host.example`): a name equal to one would make
/// `{name}.{base-domain}` look like the dashboard itself. IP addresses have none.
pub fn host_labels(hosts: &[&str]) -> Vec<String> {
    hosts
        .iter()
        .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
        .filter(|h| !h.is_empty() && !h.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b':' || b == b'[' || b == b']'))
        .filter_map(|h| h.split('.').next().map(str::to_owned))
        .collect()
}

/// [`check_name`], and not the first label of one of `hosts` (the public host, the base domain).
pub fn check_name_for_hosts(what: &str, raw: &str, hosts: &[&str]) -> Result<String, String> {
    let s = check_name(what, raw)?;
    if host_labels(hosts).contains(&s) {
        return Err(format!("'{s}' is reserved (it is this server's own host name); choose another {}", what.trim_start_matches("a ")));
    }
    Ok(s)
}

/// Checks `raw` (trimmed, lowercased) against the rule: 3-32 of a-z, 0-9 and '-', starting
/// with a letter, no trailing or doubled dash, not reserved. `what` names the thing in the
/// message ("a username", "a site name"). Returns the normalised name, or the message.
pub fn check_name(what: &str, raw: &str) -> Result<String, String> {
    let s = raw.trim().to_ascii_lowercase();
    if s.len() < 3 || s.len() > 32 {
        return Err(format!("{what} must be 3 to 32 characters long"));
    }
    if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err(format!("{what} may contain only letters a-z, digits and dashes"));
    }
    if !s.as_bytes()[0].is_ascii_lowercase() {
        return Err(format!("{what} must start with a letter"));
    }
    if s.ends_with('-') || s.contains("--") {
        return Err(format!("{what} cannot end with a dash or contain two dashes in a row"));
    }
    if RESERVED_NAMES.contains(&s.as_str()) {
        return Err(format!("'{s}' is reserved; choose another {}", what.trim_start_matches("a ")));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names_follow_one_rule() {
        assert_eq!(check_name("a site name", " My-Site ").unwrap(), "my-site");
        for bad in ["ab", "1abc", "a_b_c", "abc-", "a--b", "api", "x".repeat(33).as_str(), "../etc"] {
            assert!(check_name("a site name", bad).is_err(), "{bad} should be refused");
        }
        assert!(check_name("a site name", "api").unwrap_err().contains("reserved"));
        for label in ["www", "mail", "static", "pkg", "admin", "localhost"] {
            assert!(check_name("a username", label).unwrap_err().contains("reserved"), "{label}");
        }
    }

    #[test]
    fn the_servers_own_host_labels_are_reserved() {
        use super::{check_name_for_hosts, host_labels};
        let hosts = ["dash.host.example", "sites.example"];
        assert!(check_name_for_hosts("a site name", "dash", &hosts).unwrap_err().contains("own host name"));
        assert!(check_name_for_hosts("a site name", "Sites", &hosts).is_err());
        assert_eq!(check_name_for_hosts("a site name", "other", &hosts).unwrap(), "other");
        assert!(host_labels(&["127.0.0.1", "[::1]"]).is_empty(), "addresses have no label");
    }
}
