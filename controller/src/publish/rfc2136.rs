//! Publication by RFC 2136 dynamic updates, signed with TSIG (RFC 8945).
//!
//! The zone stays on the operator's own primary (Knot, BIND, PowerDNS, …); we only send it
//! UPDATE messages over TCP, in the change set's order, a batch of changes per message, and
//! wait for each answer before sending the next, so new leaves are committed before the root
//! that points at them. Every message is atomic on the server.
//!
//! - Create → add the RR (class IN). Adding an RR that is already there is ignored by the
//!   server (RFC 2136 §3.4.2.2), so a repeated creation is harmless.
//! - Update → delete the name's TXT RRset (class ANY), then add the new RR, in one message, so
//!   no client ever sees the name without a value or with two.
//! - Delete → delete that one RR (class NONE); deleting what is not there is silently ignored
//!   (RFC 2136 §3.4.2.4).
//!
//! The change set's serial is not sent: primaries taking updates bump the SOA serial
//! themselves (Knot and BIND by one per UPDATE message), and pushing our own SOA would need the
//! rest of the SOA fields, which the operator owns.
//!
//! With a TSIG key every request is signed and every answer must carry a valid signature by
//! the same key; unsigned or badly signed answers are not trusted, even when they say NOERROR.

use std::{fmt, net::SocketAddr, str::FromStr, time::Duration};

use futures::future::BoxFuture;
use hickory_proto::{
    op::{Message, MessageType, OpCode, Query, ResponseCode},
    rr::{
        DNSClass, Name, RData, Record, RecordType, TSigVerifier, TSigner,
        rdata::tsig::{TsigAlgorithm as WireAlgorithm, TsigError},
    },
};
use node::enrtree::wire::name_wire_len;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::{
    ChangeSet, PublishError, Publisher, RecordChange,
    zone::{TxtRecord, absolute_name},
};

/// How long one UPDATE exchange (connect, send, answer) may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Budget for the records of one UPDATE message. A DNS message over TCP can be 65,535 bytes;
/// staying at half of that leaves room for the header, zone section and TSIG, and keeps each
/// message (one zone transaction and one journal entry on the server) modest.
const BATCH_BUDGET: usize = 32 * 1024;

/// The hard limit of a DNS message over TCP (two-byte length prefix).
const MAX_MESSAGE: usize = u16::MAX as usize;

/// Allowed clock difference between us and the server, in seconds (RFC 8945 recommends 300).
const TSIG_FUDGE: u16 = 300;

/// Fixed bytes of one RR besides its owner name and RDATA: type, class, TTL, RDLENGTH.
const RR_FIXED: usize = 10;

/// A TSIG MAC algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsigAlgorithm {
    /// HMAC-SHA256: what `keymgr -t` and `tsig-keygen` generate by default.
    HmacSha256,
    /// HMAC-SHA384.
    HmacSha384,
    /// HMAC-SHA512.
    HmacSha512,
}

impl TsigAlgorithm {
    /// The algorithm's name as BIND and Knot spell it (`hmac-sha256`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac-sha256",
            Self::HmacSha384 => "hmac-sha384",
            Self::HmacSha512 => "hmac-sha512",
        }
    }

    fn wire(self) -> WireAlgorithm {
        match self {
            Self::HmacSha256 => WireAlgorithm::HmacSha256,
            Self::HmacSha384 => WireAlgorithm::HmacSha384,
            Self::HmacSha512 => WireAlgorithm::HmacSha512,
        }
    }
}

impl fmt::Display for TsigAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TsigAlgorithm {
    type Err = Rfc2136ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim_end_matches('.').to_ascii_lowercase().as_str() {
            "hmac-sha256" => Ok(Self::HmacSha256),
            "hmac-sha384" => Ok(Self::HmacSha384),
            "hmac-sha512" => Ok(Self::HmacSha512),
            _ => Err(Rfc2136ConfigError::UnsupportedAlgorithm(s.to_owned())),
        }
    }
}

/// A TSIG key shared with the DNS server. Its `Debug` output never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    /// The key's name, as configured on the server (`wakufleet.` or `wakufleet`).
    pub name: String,
    /// The MAC algorithm.
    pub algorithm: TsigAlgorithm,
    secret: Vec<u8>,
}

impl TsigKey {
    /// A key from its raw secret bytes.
    pub fn new(
        name: &str,
        algorithm: TsigAlgorithm,
        secret: Vec<u8>,
    ) -> Result<Self, Rfc2136ConfigError> {
        if secret.is_empty() {
            return Err(Rfc2136ConfigError::EmptySecret);
        }
        key_name(name)?;
        Ok(Self { name: name.to_owned(), algorithm, secret })
    }

    /// A key from the base64 secret that `keymgr -t` and `tsig-keygen` print.
    pub fn from_base64(
        name: &str,
        algorithm: TsigAlgorithm,
        secret: &str,
    ) -> Result<Self, Rfc2136ConfigError> {
        // The decode error is dropped on purpose: it would quote part of the secret.
        let secret = data_encoding::BASE64
            .decode(secret.trim().as_bytes())
            .map_err(|_| Rfc2136ConfigError::BadSecret)?;
        Self::new(name, algorithm, secret)
    }

    /// The shared secret.
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }
}

/// Knot's `-y` form, `[algorithm:]name:base64secret` (hmac-sha256 when the algorithm is left
/// out, as in `knsupdate` and `kdig`).
impl FromStr for TsigKey {
    type Err = Rfc2136ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.trim().split(':').collect();
        match parts.as_slice() {
            [algorithm, name, secret] => Self::from_base64(name, algorithm.parse()?, secret),
            [name, secret] => Self::from_base64(name, TsigAlgorithm::HmacSha256, secret),
            _ => Err(Rfc2136ConfigError::KeyFormat),
        }
    }
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A bad RFC 2136 publisher configuration.
#[derive(Debug, thiserror::Error)]
pub enum Rfc2136ConfigError {
    /// The TSIG key string is not `[algorithm:]name:secret`.
    #[error("TSIG key must look like [hmac-sha256:]name:base64secret")]
    KeyFormat,
    /// Not one of the algorithms we sign with.
    #[error("unsupported TSIG algorithm {0:?} (hmac-sha256, hmac-sha384 or hmac-sha512)")]
    UnsupportedAlgorithm(String),
    /// The secret is not base64.
    #[error("TSIG secret is not valid base64")]
    BadSecret,
    /// The secret is empty.
    #[error("TSIG secret is empty")]
    EmptySecret,
    /// The key name is not a domain name.
    #[error("invalid TSIG key name {0:?}")]
    KeyName(String),
    /// The zone is not a domain name.
    #[error("invalid zone name {0:?}")]
    Zone(String),
}

/// Where and how to send updates.
#[derive(Debug, Clone)]
pub struct Rfc2136Config {
    /// The primary server taking updates (TCP).
    pub server: SocketAddr,
    /// The zone the server is authoritative for; every record name must lie inside it. The
    /// tree's domain may be the apex or any name below it.
    pub zone: String,
    /// The key to sign with; `None` sends unsigned updates (for servers that allow updates by
    /// address only).
    pub tsig: Option<TsigKey>,
    /// How long one exchange may take.
    pub timeout: Duration,
}

impl Rfc2136Config {
    /// A configuration with the default timeout.
    pub fn new(server: SocketAddr, zone: &str, tsig: Option<TsigKey>) -> Self {
        Self { server, zone: zone.to_owned(), tsig, timeout: DEFAULT_TIMEOUT }
    }
}

/// Publishes change sets to a DNS primary by RFC 2136 UPDATE over TCP.
pub struct Rfc2136Publisher {
    config: Rfc2136Config,
    zone: Name,
    signer: Option<TSigner>,
}

impl fmt::Debug for Rfc2136Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `config` redacts the secret; the signer, which holds it too, is left out.
        f.debug_struct("Rfc2136Publisher").field("config", &self.config).finish()
    }
}

impl Rfc2136Publisher {
    /// A publisher for `config`; checks the zone and key names.
    pub fn new(config: Rfc2136Config) -> Result<Self, Rfc2136ConfigError> {
        let zone = absolute_name(&config.zone)
            .ok_or_else(|| Rfc2136ConfigError::Zone(config.zone.clone()))?;
        let signer = match &config.tsig {
            None => None,
            Some(key) => Some(
                TSigner::new(
                    key.secret.clone(),
                    key.algorithm.wire(),
                    key_name(&key.name)?,
                    TSIG_FUDGE,
                )
                // Only reachable with an algorithm hickory cannot sign with; ours all can.
                .map_err(|_| Rfc2136ConfigError::UnsupportedAlgorithm(key.algorithm.to_string()))?,
            ),
        };
        Ok(Self { config, zone, signer })
    }

    fn refused(&self, message: impl Into<String>) -> PublishError {
        PublishError::Refused { target: self.name(), message: message.into() }
    }

    fn unreachable(&self, message: impl Into<String>) -> PublishError {
        PublishError::Unreachable { target: self.name(), message: message.into() }
    }

    fn invalid(&self, message: impl Into<String>) -> PublishError {
        PublishError::Invalid { target: self.name(), message: message.into() }
    }

    /// The update-section records of one change, and their size on the wire (uncompressed,
    /// so an upper bound).
    fn records(&self, change: &RecordChange) -> Result<(Vec<Record>, usize), PublishError> {
        let record = change.record();
        let name = absolute_name(&record.name)
            .ok_or_else(|| self.invalid(format!("{:?} is not a domain name", record.name)))?;
        if !self.zone.zone_of(&name) {
            return Err(self.invalid(format!("{} is outside the zone {}", record.name, self.zone)));
        }
        let owner = name_wire_len(&record.name);
        let (rdata, rdata_len) = txt(record);
        if rdata_len > usize::from(u16::MAX) {
            return Err(self
                .invalid(format!("TXT value of {} is too long ({rdata_len} bytes)", record.name)));
        }
        let rr_len = owner + RR_FIXED + rdata_len;
        Ok(match change {
            RecordChange::Create(r) => (vec![Record::from_rdata(name, r.ttl, rdata)], rr_len),
            RecordChange::Update(r) => {
                // RFC 2136 §2.5.2: class ANY, TTL 0, empty RDATA deletes the whole RRset.
                let mut delete = Record::update0(name.clone(), 0, RecordType::TXT);
                delete.dns_class = DNSClass::ANY;
                let add = Record::from_rdata(name, r.ttl, rdata);
                (vec![delete, add], owner + RR_FIXED + rr_len)
            }
            RecordChange::Delete(_) => {
                // RFC 2136 §2.5.4: class NONE, TTL 0, the RDATA to remove.
                let mut delete = Record::from_rdata(name, 0, rdata);
                delete.dns_class = DNSClass::NONE;
                (vec![delete], rr_len)
            }
        })
    }

    /// Splits the changes, in order, into messages of at most [`BATCH_BUDGET`] bytes of
    /// records. An Update's two records always share a message.
    fn batches(&self, changes: &ChangeSet) -> Result<Vec<Batch>, PublishError> {
        let origin = changes.origin.trim_end_matches('.');
        if !origin.is_empty() {
            let apex = absolute_name(origin)
                .ok_or_else(|| self.invalid(format!("{origin:?} is not a domain name")))?;
            if !self.zone.zone_of(&apex) {
                return Err(self.invalid(format!("{origin} is outside the zone {}", self.zone)));
            }
        }
        let mut batches: Vec<Batch> = Vec::new();
        let mut current = Batch::default();
        for change in &changes.changes {
            let (records, len) = self.records(change)?;
            if !current.records.is_empty() && current.bytes + len > BATCH_BUDGET {
                batches.push(std::mem::take(&mut current));
            }
            current.records.extend(records);
            current.bytes += len;
            current.changes += 1;
        }
        if !current.records.is_empty() {
            batches.push(current);
        }
        Ok(batches)
    }

    /// The UPDATE message of a batch, encoded and (with a key) signed, with its id and the
    /// verifier for the answer's signature.
    fn encode(&self, batch: &Batch) -> Result<(u16, Vec<u8>, Option<TSigVerifier>), PublishError> {
        let mut message = Message::query();
        message.metadata.op_code = OpCode::Update;
        message.metadata.recursion_desired = false;
        // RFC 2136 §2.3: the zone section names the zone, type SOA.
        let mut zone = Query::query(self.zone.clone(), RecordType::SOA);
        zone.set_query_class(DNSClass::IN);
        message.add_query(zone);
        message.add_authorities(batch.records.iter().cloned());
        let verifier = match &self.signer {
            None => None,
            Some(signer) => message
                .finalize(signer, node::clock::now_secs())
                .map_err(|e| self.invalid(format!("cannot sign the update: {e}")))?,
        };
        let bytes =
            message.to_vec().map_err(|e| self.invalid(format!("cannot encode the update: {e}")))?;
        if bytes.len() > MAX_MESSAGE {
            return Err(
                self.invalid(format!("an update of {} bytes exceeds a DNS message", bytes.len()))
            );
        }
        Ok((message.metadata.id, bytes, verifier))
    }

    /// Sends one batch and checks the answer. A connection kept from the previous batch that
    /// turns out closed is replaced once: servers may drop idle TCP connections, and sending
    /// the same update again is harmless.
    async fn send(
        &self,
        connection: &mut Option<TcpStream>,
        batch: &Batch,
    ) -> Result<(), PublishError> {
        let reused = connection.is_some();
        let (id, bytes, verifier) = self.encode(batch)?;
        match self.exchange_in_time(connection, &bytes).await {
            Ok(answer) => self.check_answer(id, &answer, verifier),
            Err(Exchange::Io(e)) if reused => {
                tracing::debug!(target: "ctl::rfc2136", server = %self.config.server, error = %e,
                    "kept connection failed; reconnecting");
                *connection = None;
                let (id, bytes, verifier) = self.encode(batch)?;
                match self.exchange_in_time(connection, &bytes).await {
                    Ok(answer) => self.check_answer(id, &answer, verifier),
                    Err(e) => Err(self.unreachable(e.to_string())),
                }
            }
            Err(e) => Err(self.unreachable(e.to_string())),
        }
    }

    async fn exchange_in_time(
        &self,
        connection: &mut Option<TcpStream>,
        bytes: &[u8],
    ) -> Result<Vec<u8>, Exchange> {
        let timeout = self.config.timeout;
        let result =
            tokio::time::timeout(timeout, exchange(self.config.server, connection, bytes)).await;
        match result {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                *connection = None;
                Err(Exchange::Io(e))
            }
            Err(_) => {
                *connection = None;
                Err(Exchange::Timeout(timeout))
            }
        }
    }

    /// Checks the answer to the update with `id` (and, when signed, the verifier of its TSIG
    /// signature): it must answer that request, carry a valid signature when we signed, and say
    /// NOERROR. Public for the fuzz target (`fuzz/fuzz_targets/rfc2136_answer.rs`): the answer
    /// is the one input a DNS server controls.
    pub fn check_answer(
        &self,
        id: u16,
        answer: &[u8],
        verifier: Option<TSigVerifier>,
    ) -> Result<(), PublishError> {
        let message = Message::from_vec(answer)
            .map_err(|e| self.unreachable(format!("undecodable answer: {e}")))?;
        if message.metadata.id != id
            || message.metadata.message_type != MessageType::Response
            || message.metadata.op_code != OpCode::Update
        {
            return Err(self.unreachable("the answer does not belong to our update"));
        }
        let rcode = message.metadata.response_code;
        if let Some(mut verifier) = verifier {
            let Some(tsig) = message.signature() else {
                // Unsigned: the server did not take part in TSIG (or someone else answered).
                // An error is reported as such; a success cannot be trusted.
                return Err(if rcode == ResponseCode::NoError {
                    self.refused("unsigned answer to a signed update; not trusted")
                } else {
                    self.refused(format!("{} (unsigned answer)", rcode_name(rcode)))
                });
            };
            if let Some(error) = tsig.data.error {
                // BADSIG and BADKEY answers are unsigned by design (RFC 8945 §5.3.2), so there
                // is nothing to verify; with any TSIG error the update was not applied.
                let hint = match error {
                    TsigError::BadTime => {
                        "our clock and the server's differ by more than the fudge"
                    }
                    _ => "wrong key name, algorithm or secret?",
                };
                return Err(self.refused(format!(
                    "{}, TSIG error {} ({hint})",
                    rcode_name(rcode),
                    tsig_error_name(error)
                )));
            }
            verifier.verify(answer).map_err(|e| {
                self.refused(format!("answer failed TSIG verification ({e}); not trusted"))
            })?;
        }
        if rcode != ResponseCode::NoError {
            let hint = match rcode {
                ResponseCode::NotAuth => {
                    " (the server does not allow this client or key to update the zone)"
                }
                ResponseCode::Refused => " (updates refused by the server's policy)",
                ResponseCode::NotZone => " (a name lies outside the zone)",
                _ => "",
            };
            return Err(self.refused(format!("{}{hint}", rcode_name(rcode))));
        }
        Ok(())
    }
}

impl Publisher for Rfc2136Publisher {
    fn name(&self) -> String {
        format!("rfc2136:{}", self.config.server)
    }

    fn covers(&self, domain: &str) -> bool {
        super::zone::in_zone(domain, &self.config.zone)
    }

    fn apply<'a>(&'a self, changes: &'a ChangeSet) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            let batches = self.batches(changes)?;
            let mut connection = None;
            for (index, batch) in batches.iter().enumerate() {
                tracing::debug!(target: "ctl::rfc2136", server = %self.config.server, zone = %self.zone,
                    batch = index + 1, of = batches.len(), changes = batch.changes, bytes = batch.bytes,
                    "sending update");
                self.send(&mut connection, batch).await.inspect_err(|e| {
                    tracing::debug!(target: "ctl::rfc2136", server = %self.config.server,
                        batch = index + 1, error = %e, "update failed");
                })?;
            }
            if !batches.is_empty() {
                tracing::info!(target: "ctl::rfc2136", server = %self.config.server, zone = %self.zone,
                    changes = changes.changes.len(), messages = batches.len(), "applied");
            }
            Ok(())
        })
    }
}

/// The records of one UPDATE message.
#[derive(Debug, Default)]
struct Batch {
    records: Vec<Record>,
    /// Estimated wire size of `records`.
    bytes: usize,
    /// How many changes the records carry.
    changes: usize,
}

/// Why an exchange failed.
#[derive(Debug)]
enum Exchange {
    Io(std::io::Error),
    Timeout(Duration),
}

impl fmt::Display for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::Timeout(t) => write!(f, "no answer within {} s", t.as_secs_f32()),
        }
    }
}

/// One request and its answer over TCP (RFC 1035 §4.2.2: two-byte length prefix), on the
/// kept connection or a new one.
async fn exchange(
    server: SocketAddr,
    connection: &mut Option<TcpStream>,
    request: &[u8],
) -> std::io::Result<Vec<u8>> {
    let stream = match connection {
        Some(stream) => stream,
        None => connection.insert(TcpStream::connect(server).await?),
    };
    let len = u16::try_from(request.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "message too long"))?;
    let mut framed = Vec::with_capacity(request.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(request);
    stream.write_all(&framed).await?;
    let len = stream.read_u16().await?;
    let mut answer = vec![0; usize::from(len)];
    stream.read_exact(&mut answer).await?;
    Ok(answer)
}

/// The TXT RDATA of a record and its length on the wire (a length byte per string).
fn txt(record: &TxtRecord) -> (RData, usize) {
    let txt = record.rdata();
    let len = txt.txt_data.iter().map(|s| s.len() + 1).sum();
    (RData::TXT(txt), len)
}

fn key_name(name: &str) -> Result<Name, Rfc2136ConfigError> {
    absolute_name(name).ok_or_else(|| Rfc2136ConfigError::KeyName(name.to_owned()))
}

/// The RCODE mnemonic (RFC 6895 registry), which is what operators search for; hickory's
/// `Display` gives prose instead.
fn rcode_name(rcode: ResponseCode) -> String {
    let code = u16::from(rcode);
    match code {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        6 => "YXDOMAIN".into(),
        7 => "YXRRSET".into(),
        8 => "NXRRSET".into(),
        9 => "NOTAUTH".into(),
        10 => "NOTZONE".into(),
        16 => "BADVERS".into(),
        23 => "BADCOOKIE".into(),
        _ => format!("RCODE{code}"),
    }
}

fn tsig_error_name(error: TsigError) -> String {
    match error {
        TsigError::BadSig => "BADSIG".into(),
        TsigError::BadKey => "BADKEY".into(),
        TsigError::BadTime => "BADTIME".into(),
        TsigError::BadTrunc => "BADTRUNC".into(),
        TsigError::Unknown(code) => format!("{code}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use hickory_proto::rr::TSigResponseContext;
    use tokio::net::TcpListener;

    use super::*;
    use crate::publish::zone::TxtZone;

    const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==";

    #[test]
    fn keys_parse_in_knot_form_and_never_show_their_secret() {
        let key: TsigKey = format!("hmac-sha512:wakufleet.:{SECRET}").parse().unwrap();
        assert_eq!(key.name, "wakufleet.");
        assert_eq!(key.algorithm, TsigAlgorithm::HmacSha512);
        assert_eq!(key.secret(), b"secret-secret-secret-secret-secret");
        let key: TsigKey = format!("wakufleet:{SECRET}").parse().unwrap();
        assert_eq!(key.algorithm, TsigAlgorithm::HmacSha256);

        let shown = format!(
            "{key:?} {:?}",
            Rfc2136Config::new(([127, 0, 0, 1], 53).into(), "x.test", Some(key.clone()))
        );
        assert!(!shown.contains(SECRET) && !shown.contains("secret-secret"), "{shown}");
        assert!(shown.contains("redacted"));

        assert!(matches!(
            "hmac-md5:k:c2VjcmV0".parse::<TsigKey>(),
            Err(Rfc2136ConfigError::UnsupportedAlgorithm(_))
        ));
        assert!(matches!("k:not base64!".parse::<TsigKey>(), Err(Rfc2136ConfigError::BadSecret)));
        assert!(matches!("just-a-name".parse::<TsigKey>(), Err(Rfc2136ConfigError::KeyFormat)));
        assert!(matches!("k:".parse::<TsigKey>(), Err(Rfc2136ConfigError::EmptySecret)));
    }

    fn publisher(server: SocketAddr, key: Option<TsigKey>) -> Rfc2136Publisher {
        let mut config = Rfc2136Config::new(server, "fleet.test", key);
        config.timeout = Duration::from_secs(2);
        Rfc2136Publisher::new(config).unwrap()
    }

    #[test]
    fn batches_keep_order_and_size_and_updates_whole() {
        let mut zone = TxtZone::new("fleet.test", 1);
        for i in 0..300 {
            zone.push(&format!("LEAF{i:03}.fleet.test"), 60, "x".repeat(300));
        }
        let old = {
            let mut z = TxtZone::new("fleet.test", 0);
            z.push("fleet.test", 60, "root0");
            z
        };
        zone.push("fleet.test", 60, "root1");
        let set = ChangeSet::between(Some(&old), &zone);
        let publisher = publisher(([127, 0, 0, 1], 53).into(), None);
        let batches = publisher.batches(&set).unwrap();
        assert!(batches.len() >= 3, "{} batches", batches.len());
        assert_eq!(batches.iter().map(|b| b.changes).sum::<usize>(), 301);
        for batch in &batches {
            assert!(batch.bytes <= BATCH_BUDGET);
            let (_, bytes, _) = publisher.encode(batch).unwrap();
            assert!(bytes.len() <= batch.bytes + 200, "{} vs {}", bytes.len(), batch.bytes);
        }
        // The root's update (delete RRset + add) is last and in one message.
        let last = batches.last().unwrap();
        let n = last.records.len();
        assert_eq!(last.records[n - 2].dns_class, DNSClass::ANY);
        assert_eq!(last.records[n - 1].name.to_ascii(), "fleet.test.");
        // The first record is the first leaf: order kept.
        assert_eq!(batches[0].records[0].name.to_ascii(), "LEAF000.fleet.test.");

        let outside = {
            let mut z = TxtZone::new("other.test", 1);
            z.push("other.test", 60, "r");
            z
        };
        let error = publisher.batches(&ChangeSet::between(None, &outside)).unwrap_err();
        assert!(matches!(error, PublishError::Invalid { .. }), "{error}");
    }

    /// A server answering every request with `respond`.
    async fn fake_server(respond: impl Fn(Message) -> Vec<u8> + Send + 'static) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let Ok(len) = stream.read_u16().await else { continue };
                let mut request = vec![0; usize::from(len)];
                if stream.read_exact(&mut request).await.is_err() {
                    continue;
                }
                let answer = respond(Message::from_vec(&request).unwrap());
                let mut framed = (answer.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&answer);
                let _ = stream.write_all(&framed).await;
            }
        });
        addr
    }

    fn one_change() -> ChangeSet {
        let mut zone = TxtZone::new("fleet.test", 1);
        zone.push("fleet.test", 60, "root");
        ChangeSet::between(None, &zone)
    }

    fn signed_answer(request: Message, key: &[u8]) -> Vec<u8> {
        let request_mac = request.signature().unwrap().data.mac.clone();
        let answer = Message::response(request.metadata.id, OpCode::Update);
        let unsigned = answer.to_vec().unwrap();
        let signer = TSigner::new(
            key.to_vec(),
            WireAlgorithm::HmacSha256,
            Name::from_ascii("k.").unwrap(),
            300,
        )
        .unwrap();
        let tsig = TSigResponseContext::new(
            request.metadata.id,
            node::clock::now_secs(),
            signer,
            request_mac,
            None,
        )
        .sign(&unsigned)
        .unwrap();
        let mut answer = answer;
        answer.set_signature(tsig);
        answer.to_vec().unwrap()
    }

    #[tokio::test]
    async fn answers_must_be_signed_by_our_key() {
        let key = TsigKey::from_base64("k", TsigAlgorithm::HmacSha256, SECRET).unwrap();
        let secret = key.secret().to_vec();

        // Correctly signed: accepted (the positive control for the two below).
        let good = fake_server(move |request| signed_answer(request, &secret)).await;
        publisher(good, Some(key.clone())).apply(&one_change()).await.unwrap();

        // NOERROR without a signature: not trusted.
        let unsigned = fake_server(|request| {
            Message::response(request.metadata.id, OpCode::Update).to_vec().unwrap()
        })
        .await;
        let error = publisher(unsigned, Some(key.clone())).apply(&one_change()).await.unwrap_err();
        assert!(
            matches!(&error, PublishError::Refused { message, .. } if message.contains("unsigned")),
            "{error}"
        );

        // Signed with another secret: not trusted.
        let forged = fake_server(|request| signed_answer(request, b"another secret")).await;
        let error = publisher(forged, Some(key)).apply(&one_change()).await.unwrap_err();
        assert!(
            matches!(&error, PublishError::Refused { message, .. } if message.contains("verification")),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_kept_connection_the_server_closed_is_reopened() {
        use std::sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        };
        // The fake server answers one request per connection, then closes it.
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        let server = fake_server(move |request| {
            counted.fetch_add(1, Ordering::SeqCst);
            Message::response(request.metadata.id, OpCode::Update).to_vec().unwrap()
        })
        .await;
        let mut zone = TxtZone::new("fleet.test", 1);
        for i in 0..200 {
            zone.push(&format!("LEAF{i:03}.fleet.test"), 60, "x".repeat(300));
        }
        let set = ChangeSet::between(None, &zone);
        let publisher = publisher(server, None);
        let messages = publisher.batches(&set).unwrap().len();
        assert!(messages >= 2);
        publisher.apply(&set).await.unwrap();
        assert_eq!(requests.load(Ordering::SeqCst), messages);
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                kept.push(stream);
            }
        });
        let mut config = Rfc2136Config::new(addr, "fleet.test", None);
        config.timeout = Duration::from_millis(500);
        let started = std::time::Instant::now();
        let error = Rfc2136Publisher::new(config).unwrap().apply(&one_change()).await.unwrap_err();
        assert!(
            matches!(&error, PublishError::Unreachable { message, .. } if message.contains("no answer")),
            "{error}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        held.abort();
    }
}
