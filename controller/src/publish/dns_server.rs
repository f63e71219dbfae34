//! The built-in authoritative DNS server for tree zones (hickory-server).
//!
//! hickory serves what it is given, so the rules that keep clients working live here:
//! - TXT values are split into ≤255-byte character-strings (hickory answers SERVFAIL otherwise);
//! - each zone is replaced as a whole under the zone's write lock, so no query sees half of an
//!   old tree and half of a new one (hickory's `upsert` appends to an RRset instead);
//! - UDP and TCP listen on the same port, so truncated answers can be retried over TCP.
//!
//! [`ZoneCatalog::answer`] runs one request through the same decoding and catalog without
//! sockets, for the fuzz target (`fuzz/fuzz_targets/dns_request.rs`) and its corpus test.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use hickory_proto::{
    op::MessageType,
    rr::{
        LowerName, Name, RData, Record, RecordSet, RrKey,
        rdata::{NS, SOA},
    },
    serialize::binary::BinEncoder,
};
use hickory_server::{
    Server,
    net::{
        NetError,
        runtime::{TokioRuntimeProvider, TokioTime},
        xfer::Protocol,
    },
    server::{Request, RequestHandler, ResponseHandler, ResponseInfo},
    store::in_memory::InMemoryZoneHandler,
    zone_handler::{AxfrPolicy, Catalog, MessageResponse, ZoneHandler, ZoneType},
};
use tokio::net::{TcpListener, UdpSocket};

use super::zone::{TxtZone, absolute_name};

type Handler = InMemoryZoneHandler<TokioRuntimeProvider>;

/// How long an idle TCP connection is kept.
const TCP_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts to find a port free for both UDP and TCP when binding port 0.
const BIND_ATTEMPTS: usize = 20;

/// Errors of the DNS server.
#[derive(Debug, thiserror::Error)]
pub enum DnsServerError {
    /// Binding a socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// A name in the zone is not a valid DNS name.
    #[error("invalid DNS name {name:?}: {message}")]
    Name {
        /// The name.
        name: String,
        /// Why.
        message: String,
    },
    /// A record is outside its zone.
    #[error("record {name} is not inside zone {origin}")]
    OutOfZone {
        /// The record's name.
        name: String,
        /// The zone.
        origin: String,
    },
    /// `replace` was called for a zone this server does not serve.
    #[error("zone {0} is not served here")]
    UnknownZone(String),
}

/// A running authoritative server.
pub struct DnsServer {
    local_addr: SocketAddr,
    zones: HashMap<LowerName, Arc<Handler>>,
    server: Server<Catalog>,
    apex: ApexNames,
}

/// The names a served zone's SOA and NS records give: `[dns] name-servers` and `hostmaster`.
/// Left empty, `ns1.<zone>` and `hostmaster.<zone>` (names that should then exist: a zone's
/// delegation from its parent names its servers, and clients never look at these).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApexNames {
    /// NS records at the apex; the first is the SOA's primary.
    pub name_servers: Vec<String>,
    /// The responsible mailbox, in domain form (`hostmaster.example.org`).
    pub hostmaster: Option<String>,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}

impl DnsServer {
    /// Serves `zones` on `addr` over UDP and TCP. With port 0 a port free for both is chosen.
    pub async fn start(addr: SocketAddr, zones: Vec<TxtZone>) -> Result<Self, DnsServerError> {
        Self::start_with(addr, zones, ApexNames::default()).await
    }

    /// [`DnsServer::start`] with the zones' SOA and NS names.
    pub async fn start_with(
        addr: SocketAddr,
        zones: Vec<TxtZone>,
        apex: ApexNames,
    ) -> Result<Self, DnsServerError> {
        let (udp, tcp) = bind_pair(addr).await?;
        let local_addr =
            udp.local_addr().map_err(|source| DnsServerError::Bind { addr, source })?;
        let (catalog, handlers) = build_catalog(zones, &apex)?;
        let mut server = Server::new(catalog);
        server.register_socket(udp);
        server.register_listener(tcp, TCP_TIMEOUT, 64 * 1024);
        tracing::info!(target: "ctl::dns", %local_addr, zones = handlers.len(), "DNS server listening");
        Ok(Self { local_addr, zones: handlers, server, apex })
    }

    /// The address both sockets listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Replaces the whole record set of a served zone at once.
    pub async fn replace(&self, zone: &TxtZone) -> Result<(), DnsServerError> {
        let origin = LowerName::new(&parse_name(&zone.origin)?);
        let served = self
            .zones
            .get(&origin)
            .ok_or_else(|| DnsServerError::UnknownZone(zone.origin.clone()))?;
        let mut fresh = build_handler(zone, &self.apex)?;
        let records = std::mem::take(fresh.records_get_mut());
        *served.records_mut().await = records;
        tracing::info!(target: "ctl::dns", origin = %zone.origin, serial = zone.serial, "zone replaced");
        Ok(())
    }

    /// Stops serving and waits for in-flight requests.
    pub async fn shutdown(mut self) {
        if let Err(error) = self.server.shutdown_gracefully().await {
            tracing::warn!(target: "ctl::dns", %error, "DNS server did not shut down cleanly");
        }
    }
}

/// The zones as the server answers from them, without sockets.
pub struct ZoneCatalog(Catalog);

impl std::fmt::Debug for ZoneCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneCatalog").finish_non_exhaustive()
    }
}

impl ZoneCatalog {
    /// The catalog [`DnsServer::start`] would serve for `zones`.
    pub fn new(zones: Vec<TxtZone>) -> Result<Self, DnsServerError> {
        Ok(Self(build_catalog(zones, &ApexNames::default())?.0))
    }

    /// The response to one request's bytes, encoded as the server sends it (UDP answers cut to
    /// 512 bytes or the EDNS size). `None` where the server sends no answer from the zones:
    /// input shorter than a header or itself a response (dropped), undecodable (hickory's own
    /// FORMERR) or unencodable (hickory's own SERVFAIL).
    pub async fn answer(&self, request: &[u8], over_tcp: bool) -> Option<Vec<u8>> {
        let protocol = if over_tcp { Protocol::Tcp } else { Protocol::Udp };
        let source = SocketAddr::from(([127, 0, 0, 1], 53));
        let request = Request::from_bytes(request.to_vec(), source, protocol).ok()?;
        // As hickory's server: responses are never answered (no reflection).
        if request.metadata.message_type == MessageType::Response {
            return None;
        }
        let captured = CapturedResponse { protocol, bytes: Arc::default() };
        self.0.handle_request::<_, TokioTime>(&request, captured.clone()).await;
        captured.bytes.lock().ok()?.take()
    }
}

/// A [`ResponseHandler`] keeping the encoded response instead of sending it.
#[derive(Clone)]
struct CapturedResponse {
    protocol: Protocol,
    bytes: Arc<Mutex<Option<Vec<u8>>>>,
}

#[async_trait::async_trait]
impl ResponseHandler for CapturedResponse {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        // The size limit hickory's server applies when it encodes a response.
        let max_size = match (self.protocol, response.edns()) {
            (Protocol::Udp, Some(edns)) => edns.max_payload(),
            (Protocol::Udp, None) => 512,
            _ => u16::MAX,
        };
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(max_size);
        let info = response.destructive_emit(&mut encoder)?;
        if let Ok(mut slot) = self.bytes.lock() {
            *slot = Some(bytes);
        }
        Ok(info)
    }
}

/// The catalog of `zones`, and each zone's handler by origin (for [`DnsServer::replace`]).
fn build_catalog(
    zones: Vec<TxtZone>,
    apex: &ApexNames,
) -> Result<(Catalog, HashMap<LowerName, Arc<Handler>>), DnsServerError> {
    let mut catalog = Catalog::new();
    let mut handlers = HashMap::new();
    for zone in zones {
        let origin = LowerName::new(&parse_name(&zone.origin)?);
        let handler = Arc::new(build_handler(&zone, apex)?);
        catalog.upsert(origin.clone(), vec![handler.clone() as Arc<dyn ZoneHandler>]);
        handlers.insert(origin, handler);
    }
    Ok((catalog, handlers))
}

async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsServerError> {
    let bind_error = |source| DnsServerError::Bind { addr, source };
    let mut last_error = None;
    for _ in 0..BIND_ATTEMPTS {
        let udp = UdpSocket::bind(addr).await.map_err(bind_error)?;
        let udp_addr = udp.local_addr().map_err(bind_error)?;
        match TcpListener::bind(udp_addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            // Port 0 gave a UDP port whose TCP twin is taken: try another.
            Err(e) if addr.port() == 0 => last_error = Some(e),
            Err(e) => return Err(bind_error(e)),
        }
    }
    Err(bind_error(last_error.unwrap_or_else(|| std::io::Error::other("no free port"))))
}

fn parse_name(name: &str) -> Result<Name, DnsServerError> {
    absolute_name(name).ok_or_else(|| DnsServerError::Name {
        name: name.to_owned(),
        message: "not a valid DNS name".into(),
    })
}

fn build_handler(zone: &TxtZone, apex: &ApexNames) -> Result<Handler, DnsServerError> {
    let origin = parse_name(&zone.origin)?;
    let mut handler = Handler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
    let name_servers: Vec<Name> = if apex.name_servers.is_empty() {
        vec![parse_name(&format!("ns1.{}", zone.origin))?]
    } else {
        apex.name_servers.iter().map(|n| parse_name(n)).collect::<Result<_, _>>()?
    };
    let hostmaster = match &apex.hostmaster {
        Some(mailbox) => parse_name(mailbox)?,
        None => parse_name(&format!("hostmaster.{}", zone.origin))?,
    };
    let soa = SOA::new(
        name_servers[0].clone(),
        hostmaster,
        zone.serial,
        3600,
        600,
        86_400,
        zone.negative_ttl,
    );
    let mut records: Vec<Record> = vec![Record::from_rdata(origin.clone(), 3600, RData::SOA(soa))];
    for ns in name_servers {
        records.push(Record::from_rdata(origin.clone(), 3600, RData::NS(NS(ns))));
    }
    for txt in &zone.records {
        let name = parse_name(&txt.name)?;
        if !origin.zone_of(&name) {
            return Err(DnsServerError::OutOfZone {
                name: txt.name.clone(),
                origin: zone.origin.clone(),
            });
        }
        records.push(Record::from_rdata(name, txt.ttl, RData::TXT(txt.rdata())));
    }
    // Build each RRset whole, then insert: upsert of a second TXT record at a name would
    // otherwise be merged into the set in an order we do not control.
    let mut sets: HashMap<RrKey, RecordSet> = HashMap::new();
    for record in records {
        let key = RrKey::new(LowerName::new(&record.name), record.record_type());
        sets.entry(key)
            .or_insert_with(|| {
                RecordSet::new(record.name.clone(), record.record_type(), zone.serial)
            })
            .insert(record, zone.serial);
    }
    let map = handler.records_get_mut();
    for (key, set) in sets {
        map.insert(key, Arc::new(set));
    }
    Ok(handler)
}
