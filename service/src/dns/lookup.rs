//! The lookups that prove a custom domain belongs to the user who adds it: a CNAME from the
//! domain to the site's own `{slug}.{base_domain}`, or a TXT record `_vmw-verify.{name}` holding
//! a token bound to that user and name. A domain merely pointed (A/AAAA) at the host proves
//! nothing: every tenant's domains point there.
//!
//! Only a direct CNAME counts: `www.a.test CNAME slug.sites.test`. A chain
//! (`www.a.test CNAME a.test`, `a.test CNAME slug.sites.test`) does not, because whoever controls
//! the middle name could repoint it without the owner of `www.a.test` having said anything about
//! this site; such an owner uses the TXT record instead.
//!
//! Every check asks the DNS afresh (a new resolver, no cache across checks), so an owner who has
//! just fixed a record sees the fix on "check now", up to their own resolvers' caches upstream.
use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};

use super::name::{self, NameError};

/// How a domain's ownership was shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ownership {
    /// The name is a CNAME to the site's own name.
    Cname,
    /// The TXT record at `_vmw-verify.{name}` holds the token.
    Txt,
}

/// A lookup that got no usable answer: the server failed (SERVFAIL, REFUSED), timed out, or the
/// name could not be asked. Worth retrying; it says nothing about the records.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("looking up {record_type} {name}: {source}")]
    Dns {
        name: String,
        record_type: &'static str,
        #[source]
        source: Box<NetError>,
    },
    #[error("reading the system's DNS configuration (/etc/resolv.conf): {source}")]
    SystemConfig {
        #[source]
        source: Box<NetError>,
    },
    #[error(transparent)]
    Name(#[from] NameError),
}

/// Why ownership is not shown, worded for the domain's owner.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("no DNS record shows this domain is yours yet: add a CNAME record for {name} pointing to {cname_target}, or a TXT record at {txt_name} with your verification token")]
    NoRecords { name: String, cname_target: String, txt_name: String },
    #[error("{name} is a CNAME to {found}, but it must point directly to {expected} (or use the TXT record instead)")]
    WrongCname { name: String, found: String, expected: String },
    #[error("the TXT record at {txt_name} holds {}, not this domain's verification token", found.join(", "))]
    WrongTxt {
        txt_name: String,
        /// The values found, each shortened to 40 characters (quoted).
        found: Vec<String>,
    },
    #[error("the DNS lookup did not answer ({source}); it is tried again")]
    Lookup {
        #[source]
        source: LookupError,
    },
}

/// Asks a DNS server (or the host's resolvers) for CNAME and TXT records.
#[derive(Debug, Clone)]
pub struct Lookup {
    server: Option<SocketAddr>,
    timeout: Duration,
    attempts: usize,
}

impl Lookup {
    /// `server`: one DNS server to ask (tests, or an operator's own resolver); None asks those in
    /// the host's /etc/resolv.conf. 5 s per try, 2 tries.
    pub fn new(server: Option<SocketAddr>) -> Self {
        Self { server, timeout: Duration::from_secs(5), attempts: 2 }
    }

    /// Per-try timeout and number of tries (tests make a dead server fail fast).
    pub fn with_timeout(mut self, timeout: Duration, attempts: usize) -> Self {
        self.timeout = timeout;
        self.attempts = attempts.max(1);
        self
    }

    /// A resolver for one check: nothing cached from an earlier check, no search domains, no
    /// /etc/hosts.
    fn resolver(&self) -> Result<TokioResolver, LookupError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match self.server {
            Some(addr) => {
                let mut ns = hickory_resolver::config::NameServerConfig::udp_and_tcp(addr.ip());
                for conn in &mut ns.connections {
                    conn.port = addr.port();
                }
                TokioResolver::builder_with_config(ResolverConfig::from_name_servers(vec![ns]), provider)
            }
            None => TokioResolver::builder(provider).map_err(|source| LookupError::SystemConfig { source: Box::new(source) })?,
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.timeout = self.timeout;
        opts.attempts = self.attempts;
        opts.cache_size = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ndots = 0;
        builder.build().map_err(|source| LookupError::SystemConfig { source: Box::new(source) })
    }

    /// The CNAME target of `name` (lowercase, no trailing dot), or None when `name` has no CNAME
    /// (or does not exist).
    pub async fn cname(&self, name: &str) -> Result<Option<String>, LookupError> {
        self.cname_with(&self.resolver()?, name).await
    }

    /// The TXT values at `name` (each record's strings joined), empty when there are none.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, LookupError> {
        self.txt_with(&self.resolver()?, name).await
    }

    async fn cname_with(&self, resolver: &TokioResolver, name: &str) -> Result<Option<String>, LookupError> {
        let owner = name::to_hickory(name)?;
        match resolver.lookup(owner.clone(), RecordType::CNAME).await {
            Ok(found) => Ok(found.answers().iter().find_map(|r| match &r.data {
                RData::CNAME(target) if r.name.eq_ignore_root(&owner) => Some(name::from_hickory(&target.0)),
                _ => None,
            })),
            Err(e) if e.is_no_records_found() => Ok(None),
            Err(source) => Err(LookupError::Dns { name: name.to_owned(), record_type: "CNAME", source: Box::new(source) }),
        }
    }

    async fn txt_with(&self, resolver: &TokioResolver, name: &str) -> Result<Vec<String>, LookupError> {
        let owner = name::to_hickory(name)?;
        match resolver.lookup(owner, RecordType::TXT).await {
            Ok(found) => Ok(found
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(txt) => Some(txt.txt_data.iter().map(|s| String::from_utf8_lossy(s)).collect::<String>()),
                    _ => None,
                })
                .collect()),
            Err(e) if e.is_no_records_found() => Ok(Vec::new()),
            Err(source) => Err(LookupError::Dns { name: name.to_owned(), record_type: "TXT", source: Box::new(source) }),
        }
    }

    /// Whether `name` is shown to be this user's: a CNAME straight to `cname_target`, or
    /// `txt_token` among the TXT values at `txt_name`. The CNAME is asked first; a failed lookup
    /// of one is only reported when the other does not prove ownership either.
    pub async fn verify(&self, name: &str, cname_target: &str, txt_name: &str, txt_token: &str) -> Result<Ownership, VerifyError> {
        let lookup_err = |source| VerifyError::Lookup { source };
        let expected = name::normalize(cname_target).map_err(|e| lookup_err(e.into()))?;
        let resolver = self.resolver().map_err(lookup_err)?;

        let cname = self.cname_with(&resolver, name).await;
        if let Ok(Some(target)) = &cname
            && *target == expected
        {
            return Ok(Ownership::Cname);
        }
        let txt = self.txt_with(&resolver, txt_name).await;
        if let Ok(values) = &txt
            && values.iter().any(|v| v.trim() == txt_token)
        {
            return Ok(Ownership::Txt);
        }
        let name_n = name::normalize(name).map_err(|e| lookup_err(e.into()))?;
        let txt_name_n = name::normalize(txt_name).map_err(|e| lookup_err(e.into()))?;
        match (cname, txt) {
            (Ok(Some(found)), _) => Err(VerifyError::WrongCname { name: name_n, found, expected }),
            (Err(e), _) | (_, Err(e)) => Err(lookup_err(e)),
            (Ok(None), Ok(values)) if !values.is_empty() => {
                Err(VerifyError::WrongTxt { txt_name: txt_name_n, found: values.iter().map(|v| shorten(v)).collect() })
            }
            (Ok(None), Ok(_)) => Err(VerifyError::NoRecords { name: name_n, cname_target: expected, txt_name: txt_name_n }),
        }
    }
}

/// A TXT value as shown back to an owner: quoted, at most 40 characters.
fn shorten(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(40).collect();
    if chars.next().is_some() { format!("{head:?}…") } else { format!("{head:?}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_is_snake_case_on_the_wire() {
        assert_eq!(serde_json::to_string(&Ownership::Cname).unwrap(), "\"cname\"");
        assert_eq!(serde_json::from_str::<Ownership>("\"txt\"").unwrap(), Ownership::Txt);
    }

    #[test]
    fn long_txt_values_are_shortened() {
        assert_eq!(shorten("tok"), "\"tok\"");
        let long = "x".repeat(100);
        let s = shorten(&long);
        assert!(s.len() < 50 && s.ends_with('…'), "{s}");
    }

    #[test]
    fn messages_tell_the_owner_what_to_add() {
        let e = VerifyError::NoRecords { name: "www.example.com".into(), cname_target: "shop.sites.test".into(), txt_name: "_vmw-verify.www.example.com".into() };
        let s = e.to_string();
        assert!(s.contains("CNAME record for www.example.com pointing to shop.sites.test") && s.contains("TXT record at _vmw-verify.www.example.com"), "{s}");
    }
}
