//! RFC 2136 dynamic updates signed with TSIG (RFC 8945): how the service puts the
//! `_acme-challenge` TXT records for a wildcard certificate (DNS-01) on the operator's
//! authoritative server, whichever that is (BIND, Knot and PowerDNS all take these).
//!
//! hickory-proto builds and signs the messages; the exchange itself is done here over UDP (TCP
//! when the answer is truncated) so that a refusal keeps its RCODE: a server that does not know
//! the key answers NOTAUTH without a signature, which hickory's client would only report as "the
//! signature did not verify". Answers that say NOERROR must carry a valid signature.
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode, update_message};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{Name, RData, Record, RecordSet, RecordType, TSigVerifier};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};

use super::name::{self, NameError};
use super::tsig_key::TsigKey;
use crate::tls::{Dns01Publisher, PublishError};

/// The TTL of a challenge record: short, so a resolver that saw an old value asks again soon.
pub const CHALLENGE_TTL: u32 = 60;

/// Where and how to update: one authoritative (primary) server, the key it accepts.
#[derive(Debug, Clone)]
pub struct Rfc2136 {
    pub server: SocketAddr,
    /// The zone to update (`example.com`). None: asked of the server (the SOA that holds the name).
    pub zone: Option<String>,
    pub key: TsigKey,
    /// How long one update (or zone lookup) may take, retransmissions included.
    pub timeout: Duration,
}

/// An update that did not happen. Each tells the operator what to look at.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// NOTAUTH, REFUSED or NOTZONE: the key is not the server's (name, algorithm or secret), the
    /// server does not serve the zone, or the zone does not allow this key to update it.
    #[error("the DNS server {server} refused the update of zone {zone} ({rcode}): check the TSIG key, and that the server is primary for the zone and allows updates with that key")]
    Refused { server: SocketAddr, zone: String, rcode: String },
    /// Any other error RCODE (SERVFAIL, FORMERR, ...).
    #[error("the DNS server {server} answered {rcode} to the update of zone {zone}")]
    Failed { server: SocketAddr, zone: String, rcode: String },
    #[error("no answer from the DNS server {server} within {timeout:?}")]
    Timeout { server: SocketAddr, timeout: Duration },
    #[error("talking to the DNS server {server}: {source}")]
    Io {
        server: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Name(#[from] NameError),
    /// `zone` was given but does not hold the name, or the server named no zone for it.
    #[error("{name} is not in zone {zone}")]
    NotInZone { name: String, zone: String },
    /// An answer that could not be read, or whose TSIG signature did not verify.
    #[error("the DNS server {server} sent an answer that cannot be trusted: {problem}")]
    BadAnswer { server: SocketAddr, problem: String },
    /// The key could not sign (an algorithm this build of hickory does not sign with).
    #[error("the TSIG key {key} cannot sign: {source}")]
    Sign {
        key: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Rfc2136 {
    /// Adds `value` to the TXT records at `fqdn` (TTL 60), leaving the others there: two
    /// challenges for one name (a wildcard and its base) can be pending at once.
    pub async fn add_txt(&self, fqdn: &str, value: &str) -> Result<(), UpdateError> {
        let (owner, zone) = self.owner_and_zone(fqdn).await?;
        let rrset = txt_rrset(owner, value, CHALLENGE_TTL)?;
        let message = update_message::append(rrset, zone.clone(), false, false);
        self.update(message, &zone).await?;
        tracing::info!(server = %self.server, zone = %name::from_hickory(&zone), fqdn, "added a TXT record");
        Ok(())
    }

    /// Deletes exactly the TXT record `fqdn` = `value`; other values at that name stay. Deleting
    /// a record that is not there succeeds (RFC 2136 2.5.4), so a withdraw may be repeated.
    pub async fn delete_txt(&self, fqdn: &str, value: &str) -> Result<(), UpdateError> {
        let (owner, zone) = self.owner_and_zone(fqdn).await?;
        let rrset = txt_rrset(owner, value, 0)?;
        let message = update_message::delete_by_rdata(rrset, zone.clone(), false);
        self.update(message, &zone).await?;
        tracing::info!(server = %self.server, zone = %name::from_hickory(&zone), fqdn, "deleted a TXT record");
        Ok(())
    }

    /// The zone this update goes to: the configured one (which must hold the name), or the one the
    /// server says holds it.
    async fn owner_and_zone(&self, fqdn: &str) -> Result<(Name, Name), UpdateError> {
        let owner = name::to_hickory(fqdn)?;
        let zone = match &self.zone {
            Some(z) => name::to_hickory(z)?,
            None => self.find_zone(&owner).await?,
        };
        if !zone.zone_of(&owner) {
            return Err(UpdateError::NotInZone { name: name::from_hickory(&owner), zone: name::from_hickory(&zone) });
        }
        Ok((owner, zone))
    }

    /// Asks the server for the SOA of `owner`: an authoritative server answers with the zone's SOA,
    /// in the answer (the apex) or the authority section (any name below, existing or not).
    /// Servers that leave the authority section empty are asked again one label up.
    async fn find_zone(&self, owner: &Name) -> Result<Name, UpdateError> {
        let mut candidate = owner.clone();
        loop {
            let mut message = Message::query();
            message.metadata.recursion_desired = false;
            message.add_query(Query::query(candidate.clone(), RecordType::SOA));
            let answer = self.exchange(message, None).await?;
            let zone_text = name::from_hickory(&candidate);
            match answer.response_code {
                ResponseCode::NoError | ResponseCode::NXDomain => {}
                ResponseCode::Refused | ResponseCode::NotAuth | ResponseCode::NotZone => {
                    return Err(UpdateError::Refused { server: self.server, zone: zone_text, rcode: rcode_name(answer.response_code) });
                }
                other => return Err(UpdateError::Failed { server: self.server, zone: zone_text, rcode: rcode_name(other) }),
            }
            let soa = answer.answers.iter().chain(answer.authorities.iter()).find(|r| r.record_type() == RecordType::SOA);
            if let Some(soa) = soa
                && soa.name.zone_of(owner)
            {
                tracing::debug!(server = %self.server, zone = %soa.name, "found the zone by its SOA");
                return Ok(soa.name.clone());
            }
            if candidate.num_labels() <= 1 {
                return Err(UpdateError::NotInZone { name: name::from_hickory(owner), zone: "(none the server named)".into() });
            }
            candidate = candidate.base_name();
        }
    }

    /// Signs and sends one UPDATE and reads its RCODE.
    async fn update(&self, mut message: Message, zone: &Name) -> Result<(), UpdateError> {
        let signer = self.key.signer().map_err(|e| UpdateError::Sign { key: self.key.name.clone(), source: Box::new(e) })?;
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let verifier = message.finalize(&signer, now).map_err(|e| UpdateError::Sign { key: self.key.name.clone(), source: Box::new(e) })?;
        let answer = self.exchange(message, verifier).await?;
        let zone = name::from_hickory(zone);
        match answer.response_code {
            ResponseCode::NoError => Ok(()),
            ResponseCode::Refused | ResponseCode::NotAuth | ResponseCode::NotZone => {
                Err(UpdateError::Refused { server: self.server, zone, rcode: describe_rcode(&answer) })
            }
            _ => Err(UpdateError::Failed { server: self.server, zone, rcode: describe_rcode(&answer) }),
        }
    }

    /// One request and its answer: UDP with retransmission until `timeout`, then TCP if the answer
    /// came back truncated. NOERROR answers to signed requests are verified.
    async fn exchange(&self, message: Message, verifier: Option<TSigVerifier>) -> Result<Message, UpdateError> {
        let deadline = Instant::now() + self.timeout;
        let request = message.to_vec().map_err(|e| self.bad_answer(format!("could not encode the request: {e}")))?;
        let id = message.id;
        let mut bytes = self.udp(&request, id, deadline).await?;
        let mut answer = self.parse(&bytes, id)?;
        if answer.truncation {
            bytes = self.tcp(&request, deadline).await?;
            answer = self.parse(&bytes, id)?;
        }
        if answer.response_code == ResponseCode::NoError
            && let Some(mut verifier) = verifier
        {
            verifier.verify(&bytes).map_err(|e| self.bad_answer(format!("its TSIG signature did not verify: {e}")))?;
        }
        Ok(answer)
    }

    fn parse(&self, bytes: &[u8], id: u16) -> Result<Message, UpdateError> {
        let answer = Message::from_vec(bytes).map_err(|e| self.bad_answer(format!("not a DNS message: {e}")))?;
        if answer.id != id || answer.message_type != MessageType::Response {
            return Err(self.bad_answer("not the answer to this request".into()));
        }
        if answer.op_code != OpCode::Update && answer.op_code != OpCode::Query {
            return Err(self.bad_answer(format!("unexpected opcode {:?}", answer.op_code)));
        }
        Ok(answer)
    }

    /// Sends over an unconnected socket and resends every quarter of the timeout (at most 2 s
    /// apart): an update is idempotent (adding a present record or deleting an absent one is a
    /// no-op), so a lost datagram costs one more try, not a wrong state. Unconnected, so a port
    /// nobody listens on is a timeout, as it is for a host that drops the packets.
    async fn udp(&self, request: &[u8], id: u16, deadline: Instant) -> Result<Vec<u8>, UpdateError> {
        let local: SocketAddr = if self.server.is_ipv4() { "0.0.0.0:0".parse().expect("literal") } else { "[::]:0".parse().expect("literal") };
        let socket = UdpSocket::bind(local).await.map_err(|source| self.io(source))?;
        let resend = (self.timeout / 4).clamp(Duration::from_millis(200), Duration::from_secs(2));
        let mut buf = vec![0u8; 65_535];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(UpdateError::Timeout { server: self.server, timeout: self.timeout });
            }
            socket.send_to(request, self.server).await.map_err(|source| self.io(source))?;
            let wait_until = (now + resend).min(deadline);
            loop {
                let left = wait_until.saturating_duration_since(Instant::now());
                let Ok(received) = tokio::time::timeout(left, socket.recv_from(&mut buf)).await else {
                    break; // resend
                };
                let (len, from) = received.map_err(|source| self.io(source))?;
                // Anything from elsewhere, or with another ID, is not our answer (nor a spoof we act on).
                if from == self.server && len >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                    return Ok(buf[..len].to_vec());
                }
            }
        }
    }

    async fn tcp(&self, request: &[u8], deadline: Instant) -> Result<Vec<u8>, UpdateError> {
        let left = deadline.saturating_duration_since(Instant::now());
        let work = async {
            let mut stream = TcpStream::connect(self.server).await?;
            let len = u16::try_from(request.len()).map_err(|_| std::io::Error::other("request longer than 65535 bytes"))?;
            let mut framed = Vec::with_capacity(request.len() + 2);
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(request);
            stream.write_all(&framed).await?;
            let answer_len = stream.read_u16().await?;
            let mut answer = vec![0u8; usize::from(answer_len)];
            stream.read_exact(&mut answer).await?;
            Ok::<_, std::io::Error>(answer)
        };
        match tokio::time::timeout(left, work).await {
            Ok(result) => result.map_err(|source| self.io(source)),
            Err(_) => Err(UpdateError::Timeout { server: self.server, timeout: self.timeout }),
        }
    }

    fn io(&self, source: std::io::Error) -> UpdateError {
        UpdateError::Io { server: self.server, source }
    }

    fn bad_answer(&self, problem: String) -> UpdateError {
        UpdateError::BadAnswer { server: self.server, problem }
    }
}

/// The RCODE's mnemonic (`NOTAUTH`), as dig and nsupdate print it.
fn rcode_name(rcode: ResponseCode) -> String {
    format!("{rcode:?}").to_ascii_uppercase()
}

/// The RCODE, and the TSIG error with it when there is one (`NOTAUTH (TSIG BADSIG)`): that is
/// what tells a wrong secret (BADSIG) from an unknown key name (BADKEY) or a clock off (BADTIME).
fn describe_rcode(answer: &Message) -> String {
    let rcode = rcode_name(answer.response_code);
    match answer.signature().and_then(|sig| sig.data.error.as_ref()) {
        Some(tsig_error) => format!("{rcode} (TSIG {})", format!("{tsig_error:?}").to_ascii_uppercase()),
        None => rcode,
    }
}

/// One TXT record as an RRset. The value must be printable ASCII of at most 255 bytes (one TXT
/// string): an ACME key authorization digest is 43.
fn txt_rrset(owner: Name, value: &str, ttl: u32) -> Result<RecordSet, UpdateError> {
    if value.is_empty() || value.len() > 255 || !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(UpdateError::Name(NameError { name: value.to_owned(), problem: "a TXT value must be 1 to 255 printable ASCII characters" }));
    }
    Ok(RecordSet::from(Record::from_rdata(owner, ttl, RData::TXT(TXT::new(vec![value.to_owned()])))))
}

#[async_trait::async_trait]
impl Dns01Publisher for Rfc2136 {
    async fn publish(&self, fqdn: &str, value: &str) -> Result<(), PublishError> {
        self.add_txt(fqdn, value).await.map_err(|e| PublishError { what: format!("adding the TXT record {fqdn} at {}", self.server), source: Box::new(e) })
    }

    /// Logs a failure rather than returning it: a challenge record left behind is harmless (it
    /// proves nothing once the order is done) and is replaced by the next one.
    async fn withdraw(&self, fqdn: &str, value: &str) {
        if let Err(e) = self.delete_txt(fqdn, value).await {
            tracing::warn!(server = %self.server, fqdn, error = %e, "could not delete a challenge TXT record");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TsigKey {
        TsigKey { name: "k".into(), algorithm: super::super::tsig_key::TsigAlgorithm::HmacSha256, secret: b"0123456789abcdef".to_vec() }
    }

    #[tokio::test]
    async fn names_and_values_are_checked_before_anything_is_sent() {
        // Port 9 on loopback: nothing is sent, so nothing needs to listen.
        let u = Rfc2136 { server: "127.0.0.1:9".parse().unwrap(), zone: Some("example.test".into()), key: key(), timeout: Duration::from_millis(100) };
        assert!(matches!(u.add_txt("a b.example.test", "v").await, Err(UpdateError::Name(_))));
        assert!(matches!(u.add_txt("_acme-challenge.example.test", "with \"quote\nnewline").await, Err(UpdateError::Name(_))));
        assert!(matches!(u.add_txt("_acme-challenge.other.test", "v").await, Err(UpdateError::NotInZone { .. })));
    }

    #[test]
    fn the_configuration_debug_hides_the_secret() {
        let u = Rfc2136 { server: "127.0.0.1:53".parse().unwrap(), zone: None, key: key(), timeout: Duration::from_secs(1) };
        assert!(!format!("{u:?}").contains("0123456789abcdef"));
    }
}
