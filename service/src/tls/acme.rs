//! ACME (RFC 8555) over instant-acme: one account per directory, kept on disk, and an
//! issuance that publishes every challenge through the app's publishers, waits for the CA
//! with a deadline, and withdraws the challenges whatever happened.
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, CertificateIdentifier, ChallengeType, ExternalAccountKey,
    Identifier, NewAccount, NewOrder, OrderStatus,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::files::{private_dir, write_atomic};
use super::{AcmeError, Dns01Publisher, Http01Publisher, IssuedCert, validity};

/// How long an issuance may take, from the new order to the chain, unless configured.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);

/// Where and as whom to ask for certificates.
#[derive(Clone)]
pub struct AcmeSettings {
    /// The directory URL (`https://acme-v02.api.letsencrypt.org/directory`).
    pub directory: String,
    /// Sent as `mailto:` contact at account creation (expiry notices).
    pub contact_email: Option<String>,
    /// External account binding: key id and base64url HMAC key (CAs that require one).
    pub eab: Option<(String, String)>,
    /// A PEM root to trust for the directory's HTTPS instead of the system roots (Pebble,
    /// a private CA). None: the system's trust store.
    pub extra_root: Option<PathBuf>,
    /// Where the account credentials are kept (a file per directory URL, 0600).
    pub account_dir: PathBuf,
    /// The most an issuance may take ([`DEFAULT_DEADLINE`]).
    pub deadline: Duration,
}

impl AcmeSettings {
    /// Settings for `directory` with no contact, no EAB, system roots and the default deadline.
    pub fn new(directory: impl Into<String>, account_dir: impl Into<PathBuf>) -> Self {
        Self {
            directory: directory.into(),
            contact_email: None,
            eab: None,
            extra_root: None,
            account_dir: account_dir.into(),
            deadline: DEFAULT_DEADLINE,
        }
    }
}

impl std::fmt::Debug for AcmeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The EAB HMAC key never reaches a log.
        f.debug_struct("AcmeSettings")
            .field("directory", &self.directory)
            .field("contact_email", &self.contact_email)
            .field("eab_kid", &self.eab.as_ref().map(|(kid, _)| kid))
            .field("extra_root", &self.extra_root)
            .field("account_dir", &self.account_dir)
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// How the CA checks that we control the names.
#[derive(Clone, Copy)]
pub enum Challenge<'a> {
    /// A file under `/.well-known/acme-challenge/` on port 80 of every name.
    Http01(&'a dyn Http01Publisher),
    /// A TXT record at `_acme-challenge.{name}` (the only way to a wildcard).
    Dns01(&'a dyn Dns01Publisher),
}

/// An ACME account on one directory. Cheap to clone; orders may run concurrently.
#[derive(Clone)]
pub struct Acme {
    account: Account,
    directory: String,
    account_file: PathBuf,
    deadline: Duration,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme").field("directory", &self.directory).field("account", &self.account.id()).finish_non_exhaustive()
    }
}

/// A challenge to withdraw once the order is over.
enum Published {
    Http(String),
    Dns(String, String),
}

fn from_acme(name: Option<&str>) -> impl FnOnce(instant_acme::Error) -> AcmeError + '_ {
    move |e| AcmeError::from_acme(e, name)
}

/// The account file of a directory URL: the first 16 bytes of its SHA-256, so two directories
/// (staging, production) never share credentials.
fn account_file(dir: &Path, directory: &str) -> PathBuf {
    dir.join(format!("account-{}.json", &hex::encode(Sha256::digest(directory.as_bytes()))[..32]))
}

impl Acme {
    /// Loads the account stored for `settings.directory`, or registers one (terms agreed) and
    /// stores its credentials. Contacts the directory either way.
    pub async fn new(settings: AcmeSettings) -> Result<Self, AcmeError> {
        let builder = || match &settings.extra_root {
            Some(root) => Account::builder_with_root(root),
            None => Account::builder(),
        }
        .map_err(|e| AcmeError::other("the ACME HTTPS client could not be set up", e));
        let file = account_file(&settings.account_dir, &settings.directory);
        let timeout = |_| AcmeError::Unreachable {
            detail: format!("the directory did not answer within {} s", settings.deadline.as_secs()),
            source: None,
        };
        let account = match std::fs::read(&file) {
            Ok(bytes) => {
                let credentials: AccountCredentials = serde_json::from_slice(&bytes)
                    .map_err(|e| AcmeError::other("the stored ACME account could not be read", e))?;
                let account = tokio::time::timeout(settings.deadline, builder()?.from_credentials(credentials))
                    .await
                    .map_err(timeout)?
                    .map_err(from_acme(None))?;
                tracing::info!(directory = %settings.directory, account = account.id(), "ACME account loaded");
                account
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let contact = settings.contact_email.as_ref().map(|m| format!("mailto:{m}"));
                let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
                let eab = match &settings.eab {
                    Some((kid, key)) => {
                        let key = URL_SAFE_NO_PAD
                            .decode(key.trim_end_matches('='))
                            .map_err(|e| AcmeError::other("the EAB HMAC key is not base64url", e))?;
                        Some(ExternalAccountKey::new(kid.clone(), &key))
                    }
                    None => None,
                };
                let new = NewAccount { contact: &contact, terms_of_service_agreed: true, only_return_existing: false };
                let (account, credentials) =
                    tokio::time::timeout(settings.deadline, builder()?.create(&new, settings.directory.clone(), eab.as_ref()))
                        .await
                        .map_err(timeout)?
                        .map_err(from_acme(None))?;
                let json = serde_json::to_vec(&credentials).map_err(|e| AcmeError::other("the ACME account could not be stored", e))?;
                private_dir(&settings.account_dir)
                    .and_then(|()| write_atomic(&file, &json, 0o600))
                    .map_err(|e| AcmeError::other("the ACME account could not be stored", e))?;
                tracing::info!(directory = %settings.directory, account = account.id(), "ACME account created");
                account
            }
            Err(e) => return Err(AcmeError::other("the stored ACME account could not be read", e)),
        };
        Ok(Self { account, directory: settings.directory, account_file: file, deadline: settings.deadline })
    }

    /// The account URL at the CA.
    pub fn account_id(&self) -> &str {
        self.account.id()
    }

    /// The file the account credentials are kept in.
    pub fn account_file(&self) -> &Path {
        &self.account_file
    }

    /// A certificate for `names` (the first is the common name; "*.a.b" needs DNS-01) with a
    /// fresh ECDSA P-256 key. Gives up after the deadline; the published challenges are
    /// withdrawn in every case.
    pub async fn issue(&self, names: &[String], challenge: Challenge<'_>) -> Result<IssuedCert, AcmeError> {
        let deadline = Instant::now() + self.deadline;
        let mut published = Vec::new();
        // The order polls until `deadline` and then says which names were not validated; the
        // grace is for a request that hangs past it.
        let grace = Duration::from_secs(10);
        let result = match tokio::time::timeout(self.deadline + grace, self.order(names, challenge, deadline, &mut published)).await {
            Ok(r) => r,
            Err(_) => Err(AcmeError::Unreachable {
                detail: format!("no answer within {} s", (self.deadline + grace).as_secs()),
                source: None,
            }),
        };
        for p in published {
            match (p, challenge) {
                (Published::Http(token), Challenge::Http01(publisher)) => publisher.withdraw(&token).await,
                (Published::Dns(fqdn, value), Challenge::Dns01(publisher)) => publisher.withdraw(&fqdn, &value).await,
                _ => {}
            }
        }
        match &result {
            Ok(cert) => tracing::info!(?names, not_after = %cert.not_after, "ACME certificate issued"),
            Err(e) => tracing::warn!(?names, error = %e, "ACME issuance failed"),
        }
        result
    }

    async fn order(
        &self,
        names: &[String],
        challenge: Challenge<'_>,
        deadline: Instant,
        published: &mut Vec<Published>,
    ) -> Result<IssuedCert, AcmeError> {
        let identifiers: Vec<Identifier> = names
            .iter()
            .map(|n| match n.parse() {
                Ok(ip) => Identifier::Ip(ip),
                Err(_) => Identifier::Dns(n.clone()),
            })
            .collect();
        let mut order = self.account.new_order(&NewOrder::new(&identifiers)).await.map_err(from_acme(None))?;
        tracing::info!(?names, order = order.url(), "ACME order created");
        let kind = match challenge {
            Challenge::Http01(_) => ChallengeType::Http01,
            Challenge::Dns01(_) => ChallengeType::Dns01,
        };

        // Publish every pending authorization's challenge...
        let mut pending = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(from_acme(None))?;
            let name = authz.identifier().to_string();
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => return Err(AcmeError::Validation { name, detail: format!("the authorization is {other:?}") }),
            }
            let base = match authz.identifier().identifier {
                Identifier::Dns(d) => d.clone(),
                other => other.authorized(false).to_string(),
            };
            let ch = authz.challenge(kind.clone()).ok_or_else(|| AcmeError::Rejected {
                problem_type: String::new(),
                detail: format!("the CA offers no {kind:?} challenge for {name}"),
            })?;
            let key_authorization = ch.key_authorization();
            let result = match challenge {
                Challenge::Http01(publisher) => {
                    published.push(Published::Http(ch.token.clone()));
                    publisher.publish(&ch.token, key_authorization.as_str()).await
                }
                Challenge::Dns01(publisher) => {
                    let (fqdn, value) = (format!("_acme-challenge.{base}"), key_authorization.dns_value());
                    published.push(Published::Dns(fqdn.clone(), value.clone()));
                    publisher.publish(&fqdn, &value).await
                }
            };
            result.map_err(|e| AcmeError::other(format!("the challenge for {name} could not be published"), e))?;
            tracing::debug!(name, "ACME challenge published");
            pending.push(name);
        }
        if let Challenge::Dns01(publisher) = challenge {
            tokio::time::sleep(publisher.propagation()).await;
        }

        // ...then ask the CA to look (the authorizations are cached: no requests here).
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(from_acme(None))?;
            if authz.status != AuthorizationStatus::Pending {
                continue;
            }
            let name = authz.identifier().to_string();
            if let Some(mut ch) = authz.challenge(kind.clone()) {
                ch.set_ready().await.map_err(from_acme(Some(&name)))?;
            }
        }

        self.wait_ready(&mut order, &kind, &pending, deadline).await?;

        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| AcmeError::other("making a key failed", e))?;
        let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(|e| AcmeError::other("a name is not valid", e))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params.serialize_request(&key).map_err(|e| AcmeError::other("making the signing request failed", e))?;
        order.finalize_csr(csr.der()).await.map_err(from_acme(None))?;
        tracing::debug!(order = order.url(), "ACME order finalized");

        let mut delay = Duration::from_millis(250);
        let chain_pem = loop {
            if let Some(chain) = order.certificate().await.map_err(from_acme(None))? {
                break chain;
            }
            if Instant::now() + delay > deadline {
                return Err(AcmeError::Unreachable {
                    detail: format!("the certificate was not issued within {} s", self.deadline.as_secs()),
                    source: None,
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        };
        let (not_before, not_after) =
            validity::validity(&chain_pem).map_err(|e| AcmeError::other("the CA sent a chain that is not a certificate", e))?;
        Ok(IssuedCert { chain_pem, key_pem: key.serialize_pem(), not_before, not_after })
    }

    /// Polls the order until it is ready. Invalid: the first failed authorization's problem,
    /// naming its name. Past the deadline: the names still not validated.
    async fn wait_ready(
        &self,
        order: &mut instant_acme::Order,
        kind: &ChallengeType,
        pending: &[String],
        deadline: Instant,
    ) -> Result<(), AcmeError> {
        let mut delay = Duration::from_millis(250);
        loop {
            let status = order.refresh().await.map_err(from_acme(None))?.status;
            tracing::debug!(order = order.url(), ?status, "ACME order state");
            match status {
                OrderStatus::Ready | OrderStatus::Processing | OrderStatus::Valid => return Ok(()),
                OrderStatus::Invalid => return Err(failed_authorization(order, kind).await),
                OrderStatus::Pending => {}
            }
            if Instant::now() + delay > deadline {
                let mut still = Vec::new();
                let mut authorizations = order.authorizations();
                while let Some(Ok(mut authz)) = authorizations.next().await {
                    if authz.refresh().await.is_ok_and(|a| a.status == AuthorizationStatus::Pending) {
                        still.push(authz.identifier().to_string());
                    }
                }
                let name = if still.is_empty() { pending.join(", ") } else { still.join(", ") };
                return Err(AcmeError::Validation {
                    name,
                    detail: format!("not validated within {} s", self.deadline.as_secs()),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// The renewal window the CA suggests for a certificate it issued (ACME Renewal
    /// Information, RFC 9773); None when the CA has no ARI (Pebble 2.4) or did not answer.
    pub async fn renewal_window(&self, chain_pem: &str) -> Option<(OffsetDateTime, OffsetDateTime)> {
        let id = certificate_identifier(chain_pem)?;
        let answer = tokio::time::timeout(self.deadline, self.account.renewal_info(&id)).await;
        match answer {
            Ok(Ok((info, _))) => Some((info.suggested_window.start, info.suggested_window.end)),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "no ACME renewal information");
                None
            }
            Err(_) => None,
        }
    }
}

/// The problem of the first invalid authorization (refreshed), as a validation error naming it.
async fn failed_authorization(order: &mut instant_acme::Order, kind: &ChallengeType) -> AcmeError {
    let order_error = order.state().error.clone();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        let Ok(state) = authz.refresh().await else { continue };
        if state.status != AuthorizationStatus::Invalid {
            continue;
        }
        let name = state.identifier().to_string();
        let problem = state.challenges.iter().filter(|c| &c.r#type == kind).find_map(|c| c.error.clone());
        return match problem {
            Some(p) => match AcmeError::from_problem(&p, Some(&name)) {
                AcmeError::Rejected { detail, .. } => AcmeError::Validation { name, detail },
                other => other,
            },
            None => AcmeError::Validation { name, detail: "the authorization is invalid".into() },
        };
    }
    match order_error {
        Some(p) => AcmeError::from_problem(&p, None),
        None => AcmeError::Rejected { problem_type: String::new(), detail: "the order became invalid".into() },
    }
}

/// The ARI identifier of the leaf: base64url(authority key id) "." base64url(serial DER).
fn certificate_identifier(chain_pem: &str) -> Option<CertificateIdentifier<'static>> {
    use x509_parser::prelude::*;
    let ders = validity::chain_der(chain_pem).ok()?;
    let (_, leaf) = X509Certificate::from_der(&ders[0]).ok()?;
    let aki = leaf.extensions().iter().find_map(|ext| match ext.parsed_extension() {
        ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.as_ref().map(|k| k.0.to_vec()),
        _ => None,
    })?;
    Some(CertificateIdentifier {
        authority_key_identifier: Cow::Owned(URL_SAFE_NO_PAD.encode(aki)),
        serial: Cow::Owned(URL_SAFE_NO_PAD.encode(leaf.tbs_certificate.raw_serial())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_directory_has_its_own_account_file() {
        let dir = Path::new("/x");
        let a = account_file(dir, "https://a/dir");
        assert_ne!(a, account_file(dir, "https://b/dir"));
        assert_eq!(a, account_file(dir, "https://a/dir"));
        assert!(a.file_name().unwrap().to_str().unwrap().starts_with("account-"));
    }

    #[test]
    fn settings_debug_hides_the_eab_key() {
        let mut s = AcmeSettings::new("https://a/dir", "/x");
        s.eab = Some(("kid-1".into(), "c2VjcmV0LWhtYWM".into()));
        let shown = format!("{s:?}");
        assert!(shown.contains("kid-1") && !shown.contains("c2VjcmV0LWhtYWM"), "{shown}");
    }
}
