//! The built-in authoritative DNS server for tree zones (hickory-server's catalog and zone
//! handlers behind sockets of our own).
//!
//! hickory serves what it is given, so the rules that keep clients working live here:
//! - TXT values are split into ≤255-byte character-strings (hickory answers SERVFAIL otherwise);
//! - each zone is replaced as a whole under the zone's write lock, so no query sees half of an
//!   old tree and half of a new one (hickory's `upsert` appends to an RRset instead);
//! - UDP and TCP listen on the same port, so truncated answers can be retried over TCP;
//! - UDP answers are rate-limited per client prefix (see [`super::response_rate`]), so the
//!   server is no amplifier for spoofed queries;
//! - UDP is served by one socket per core (`SO_REUSEPORT`, the kernel spreads clients over
//!   them), each a loop that answers in place, no task per packet: plain TXT queries for the
//!   tree's names from answers worked out at each zone swap ([`super::prebuilt`]), everything
//!   else through hickory's catalog;
//! - each UDP answer leaves from the address its query was sent to, also on a socket bound to
//!   `0.0.0.0` or `[::]` ([`super::reply_socket`]): clients drop answers from another address;
//! - TCP takes at most [`MAX_TCP_CONNECTIONS`] connections, [`MAX_TCP_PER_ADDRESS`] per
//!   address, and closes one idle for [`TCP_TIMEOUT`].
//!
//! [`ZoneCatalog::answer`] runs one request through the same decoding and catalog without
//! sockets, for the fuzz target (`fuzz/fuzz_targets/dns_request.rs`) and its corpus test.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, RwLock},
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
    net::{
        NetError,
        runtime::{TokioRuntimeProvider, TokioTime},
        xfer::Protocol,
    },
    server::{Request, RequestHandler, ResponseHandler, ResponseInfo},
    store::in_memory::InMemoryZoneHandler,
    zone_handler::{AxfrPolicy, Catalog, MessageResponse, ZoneHandler, ZoneType},
};
use tokio::{
    net::{TcpListener, UdpSocket},
    task::JoinHandle,
};

use super::{
    prebuilt::Prebuilt,
    reply_socket::{BATCH, Datagram, LocalAddress, Received, ReplySocket},
    response_rate::{Limited, RateLimit, ResponseRateLimiter, Verdict},
    zone::{TxtZone, absolute_name},
};

type Handler = InMemoryZoneHandler<TokioRuntimeProvider>;

/// How long an idle TCP connection is kept (and the most a query or an answer may take).
const TCP_TIMEOUT: Duration = Duration::from_secs(5);
/// Most TCP connections at once.
const MAX_TCP_CONNECTIONS: usize = 1024;
/// Most TCP connections from one address at once.
const MAX_TCP_PER_ADDRESS: usize = 64;
/// Attempts to find a port free for both UDP and TCP when binding port 0.
const BIND_ATTEMPTS: usize = 20;
/// Most UDP sockets (one per core up to this).
const MAX_UDP_SOCKETS: usize = 8;
/// Largest UDP query read (longer ones are cut, and answered FORMERR or not at all).
const MAX_QUERY: usize = 4096;

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
    apex: ApexNames,
    limiter: Option<Arc<ResponseRateLimiter>>,
    /// The answers worked out at the last swap, shared with the UDP loops.
    prebuilt: Arc<RwLock<Arc<Prebuilt>>>,
    /// Moves after each swap of `prebuilt`.
    version: Arc<std::sync::atomic::AtomicU64>,
    /// The UDP loops and the TCP listener (whose connections end with it).
    tasks: Vec<JoinHandle<()>>,
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

    /// [`DnsServer::start`] with the zones' SOA and NS names and the default rate limit.
    pub async fn start_with(
        addr: SocketAddr,
        zones: Vec<TxtZone>,
        apex: ApexNames,
    ) -> Result<Self, DnsServerError> {
        Self::start_limited(addr, zones, apex, RateLimit::default()).await
    }

    /// [`DnsServer::start_with`] with `limit` on UDP answers per client prefix.
    pub async fn start_limited(
        addr: SocketAddr,
        zones: Vec<TxtZone>,
        apex: ApexNames,
        limit: RateLimit,
    ) -> Result<Self, DnsServerError> {
        let (udp, tcp) = bind_sockets(addr).await?;
        let local_addr =
            tcp.local_addr().map_err(|source| DnsServerError::Bind { addr, source })?;
        let mut table = Prebuilt::default();
        for zone in &zones {
            table = table.with_zone(zone);
        }
        let prebuilt = Arc::new(RwLock::new(Arc::new(table)));
        let (catalog, handlers) = build_catalog(zones, &apex)?;
        let catalog = Arc::new(catalog);
        let limiter = ResponseRateLimiter::new(limit).map(Arc::new);
        let version = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let shared = Arc::new(UdpShared {
            catalog: catalog.clone(),
            limiter: limiter.clone(),
            prebuilt: prebuilt.clone(),
            version: version.clone(),
        });
        // As many loops on each socket as there are sockets (one per core): the kernel gives
        // all of one client's queries to one socket, and they should still use every core.
        let sockets = udp.len();
        let udp = udp
            .into_iter()
            .map(|socket| ReplySocket::new(socket).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| DnsServerError::Bind { addr, source })?;
        let udp = udp
            .into_iter()
            .flat_map(|socket| std::iter::repeat_n(socket, sockets))
            .map(|socket| tokio::spawn(serve_udp(socket, shared.clone())))
            .collect();
        let mut udp: Vec<JoinHandle<()>> = udp;
        udp.push(tokio::spawn(serve_tcp(tcp, shared.clone())));
        tracing::info!(target: "ctl::dns", %local_addr, zones = handlers.len(), udp_sockets = sockets, rate_limit = limit.responses_per_second, "DNS server listening");
        Ok(Self { local_addr, zones: handlers, apex, limiter, prebuilt, version, tasks: udp })
    }

    /// UDP answers slipped (TC=1) and dropped by the rate limit so far.
    pub fn limited(&self) -> Limited {
        self.limiter.as_ref().map(|l| l.limited()).unwrap_or_default()
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
        // The UDP loops' answers next: each answer is from one version of the zone or the
        // other, never a mix.
        let table = {
            let current = self.prebuilt.read().map(|t| t.clone()).unwrap_or_default();
            Arc::new(current.with_zone(zone))
        };
        if let Ok(mut slot) = self.prebuilt.write() {
            *slot = table;
        }
        self.version.fetch_add(1, std::sync::atomic::Ordering::Release);
        tracing::info!(target: "ctl::dns", origin = %zone.origin, serial = zone.serial, "zone replaced");
        Ok(())
    }

    /// Stops serving: the sockets close, TCP connections end.
    pub async fn shutdown(mut self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

/// The zones as the server answers from them, without sockets.
pub struct ZoneCatalog(Catalog, Prebuilt);

impl std::fmt::Debug for ZoneCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneCatalog").finish_non_exhaustive()
    }
}

impl ZoneCatalog {
    /// The catalog [`DnsServer::start`] would serve for `zones`.
    pub fn new(zones: Vec<TxtZone>) -> Result<Self, DnsServerError> {
        let mut table = Prebuilt::default();
        for zone in &zones {
            table = table.with_zone(zone);
        }
        Ok(Self(build_catalog(zones, &ApexNames::default())?.0, table))
    }

    /// The precomputed answer to a UDP query, if the table has one (see [`super::prebuilt`]).
    pub fn prebuilt_answer(&self, request: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.1.answer(request, &mut out).then_some(out)
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

/// The TCP listener on `addr` (its port, when 0, chosen by it) and one UDP socket per core on
/// the same port with `SO_REUSEPORT`. The TCP listener takes no `SO_REUSEPORT`, so a second
/// server on the same port fails there instead of silently sharing the UDP traffic.
async fn bind_sockets(addr: SocketAddr) -> Result<(Vec<UdpSocket>, TcpListener), DnsServerError> {
    let bind_error = |source| DnsServerError::Bind { addr, source };
    let cores = std::thread::available_parallelism().map_or(1, usize::from).min(MAX_UDP_SOCKETS);
    let mut last_error = None;
    for _ in 0..BIND_ATTEMPTS {
        let tcp = TcpListener::bind(addr).await.map_err(bind_error)?;
        let port_addr = tcp.local_addr().map_err(bind_error)?;
        match (0..cores).map(|_| reuse_port_udp(port_addr)).collect::<Result<Vec<_>, _>>() {
            Ok(udp) => return Ok((udp, tcp)),
            // Port 0 gave a TCP port whose UDP twin is taken: try another.
            Err(e) if addr.port() == 0 => last_error = Some(e),
            Err(e) => return Err(bind_error(e)),
        }
    }
    Err(bind_error(last_error.unwrap_or_else(|| std::io::Error::other("no free port"))))
}

fn reuse_port_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// What every UDP loop shares.
struct UdpShared {
    catalog: Arc<Catalog>,
    limiter: Option<Arc<ResponseRateLimiter>>,
    prebuilt: Arc<RwLock<Arc<Prebuilt>>>,
    /// Moves after each swap of `prebuilt`.
    version: Arc<std::sync::atomic::AtomicU64>,
}

impl UdpShared {
    fn table(&self) -> Arc<Prebuilt> {
        self.prebuilt.read().map(|t| t.clone()).unwrap_or_default()
    }
}

/// One UDP loop (several per socket, so one busy client's queries use every core): the
/// queries waiting are read in one batch, answered in place, and the answers sent together.
async fn serve_udp(socket: Arc<ReplySocket>, shared: Arc<UdpShared>) {
    let mut received = Received::new(&socket, MAX_QUERY);
    // One answer buffer per query of a batch, kept from batch to batch.
    let mut outs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(1500)).collect();
    let mut replies: Vec<(usize, SocketAddr, Option<LocalAddress>)> = Vec::with_capacity(BATCH);
    let mut table = shared.table();
    let mut seen = shared.version.load(std::sync::atomic::Ordering::Acquire);
    loop {
        // An error is an ICMP error for an earlier answer, or a signal: nothing to do but go on.
        let Ok(count) = socket.recv_batch(&mut received).await else { continue };
        // The table is read again only after a swap (its version moved).
        let version = shared.version.load(std::sync::atomic::Ordering::Acquire);
        if version != seen {
            table = shared.table();
            seen = version;
        }
        replies.clear();
        for (index, out) in outs.iter_mut().enumerate().take(count) {
            let Some((Datagram { source, local, .. }, query)) = received.get(index) else {
                continue;
            };
            // Shorter than a header, itself a response, or from an address no answer may go
            // to (port 0, unspecified, broadcast): dropped (no reflection).
            if query.len() < 12 || query[2] & 0x80 != 0 || !answerable(source) {
                continue;
            }
            let answered = match shared
                .limiter
                .as_ref()
                .map(|limiter| limiter.check(source.ip(), std::time::Instant::now()))
            {
                Some(Verdict::Drop) => false,
                Some(Verdict::Slip) => slip(query, out),
                None | Some(Verdict::Answer) => {
                    table.answer(query, out)
                        || match full_answer(&shared.catalog, query, source, Protocol::Udp).await {
                            Some(answer) => {
                                *out = answer;
                                true
                            }
                            None => false,
                        }
                }
            };
            if answered {
                replies.push((index, source, local));
            }
        }
        let answers: Vec<(&[u8], SocketAddr, Option<LocalAddress>)> =
            replies.iter().map(|&(index, to, local)| (outs[index].as_slice(), to, local)).collect();
        socket.send_batch(&answers).await;
    }
}

/// Whether an answer may be sent to `source` (as hickory's own server checks).
fn answerable(source: SocketAddr) -> bool {
    // An IPv4 source of a dual-stack socket arrives v4-mapped.
    source.port() != 0
        && match source.ip().to_canonical() {
            std::net::IpAddr::V4(ip) => !ip.is_unspecified() && !ip.is_broadcast(),
            std::net::IpAddr::V6(ip) => !ip.is_unspecified(),
        }
}

/// A rate-limited query's answer: its header and question, TC=1, nothing else (never larger
/// than the query). `false` for a query whose question does not parse (dropped).
fn slip(query: &[u8], out: &mut Vec<u8>) -> bool {
    let end = match u16::from_be_bytes([query[4], query[5]]) {
        0 => 12,
        1 => match super::prebuilt::question_end(query) {
            Some(end) => end,
            None => return false,
        },
        _ => return false,
    };
    out.clear();
    out.extend_from_slice(&query[..end]);
    // QR and TC set, AA, RD kept; RCODE 0; no answer, authority or additional records.
    out[2] = 0x80 | (query[2] & 0x79) | 0x02 | 0x04;
    out[3] = 0;
    out[6..12].fill(0);
    true
}

/// The full server's answer to a UDP query: hickory's catalog, as its own server would answer
/// it, or FORMERR for a query it cannot decode.
async fn full_answer(
    catalog: &Catalog,
    query: &[u8],
    source: SocketAddr,
    protocol: Protocol,
) -> Option<Vec<u8>> {
    let Ok(request) = Request::from_bytes(query.to_vec(), source, protocol) else {
        // The header is there (checked): FORMERR with its id and opcode, nothing else.
        let mut formerr = query[..12].to_vec();
        formerr[2] = 0x80 | (query[2] & 0x79);
        formerr[3] = 1;
        formerr[4..12].fill(0);
        return Some(formerr);
    };
    let captured = CapturedResponse { protocol, bytes: Arc::default() };
    catalog.handle_request::<_, TokioTime>(&request, captured.clone()).await;
    captured.bytes.lock().ok()?.take()
}

/// The TCP listener: at most [`MAX_TCP_CONNECTIONS`] connections, [`MAX_TCP_PER_ADDRESS`] from
/// one address (more are closed at once), each closed after [`TCP_TIMEOUT`] without a whole
/// query. Queries on a connection are answered in order (pipelined queries wait their turn,
/// so one connection never takes more than one task).
async fn serve_tcp(listener: TcpListener, shared: Arc<UdpShared>) {
    let mut connections = tokio::task::JoinSet::new();
    let per_address: Arc<Mutex<HashMap<std::net::IpAddr, usize>>> = Arc::default();
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, source) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, most likely: let some connections end first.
                tracing::warn!(target: "ctl::dns", %error, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !answerable(source) || connections.len() >= MAX_TCP_CONNECTIONS {
            continue;
        }
        let ip = source.ip();
        let admitted = per_address.lock().is_ok_and(|mut counts| {
            let count = counts.entry(ip).or_default();
            *count += 1;
            if *count > MAX_TCP_PER_ADDRESS {
                *count -= 1;
                return false;
            }
            true
        });
        if !admitted {
            continue;
        }
        let (shared, per_address) = (shared.clone(), per_address.clone());
        connections.spawn(async move {
            serve_connection(stream, source, &shared).await;
            if let Ok(mut counts) = per_address.lock()
                && let Some(count) = counts.get_mut(&ip)
            {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&ip);
                }
            }
        });
    }
}

/// One TCP connection: length-prefixed queries in, answers out, until the client closes it,
/// sends garbage or is idle for [`TCP_TIMEOUT`].
async fn serve_connection(
    mut stream: tokio::net::TcpStream,
    source: SocketAddr,
    shared: &UdpShared,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let mut length = [0u8; 2];
        if !matches!(
            tokio::time::timeout(TCP_TIMEOUT, stream.read_exact(&mut length)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let length = usize::from(u16::from_be_bytes(length));
        if length < 12 {
            return;
        }
        let mut query = vec![0u8; length];
        if !matches!(
            tokio::time::timeout(TCP_TIMEOUT, stream.read_exact(&mut query)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        if query[2] & 0x80 != 0 {
            continue;
        }
        let Some(answer) = full_answer(&shared.catalog, &query, source, Protocol::Tcp).await else {
            continue;
        };
        let Ok(length) = u16::try_from(answer.len()) else { return };
        let mut framed = Vec::with_capacity(answer.len() + 2);
        framed.extend_from_slice(&length.to_be_bytes());
        framed.extend_from_slice(&answer);
        if !matches!(tokio::time::timeout(TCP_TIMEOUT, stream.write_all(&framed)).await, Ok(Ok(())))
        {
            return;
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::zone::TxtRecord;

    /// What the UDP loops answer themselves, over a real socket: garbage behind a header is
    /// FORMERR with the query's id, a response is never answered, a plain query is answered
    /// from the table and, after a swap, from the new zone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn udp_loops_answer_formerr_ignore_responses_and_follow_swaps() {
        let mut zone = TxtZone::new("fleet.test", 1);
        zone.records.push(TxtRecord { name: "a.fleet.test".into(), ttl: 60, text: "one".into() });
        let server =
            DnsServer::start("127.0.0.1:0".parse().unwrap(), vec![zone.clone()]).await.unwrap();
        let addr = server.local_addr();

        let garbage =
            [0xbe, 0xef, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff];
        let answer = ask(addr, &garbage).await.expect("FORMERR");
        assert_eq!(answer.len(), 12);
        assert_eq!(&answer[..2], &[0xbe, 0xef]);
        assert_eq!(answer[2] & 0x80, 0x80, "a response");
        assert_eq!(answer[3] & 0x0f, 1, "FORMERR");
        let mut response = garbage;
        response[2] |= 0x80;
        assert!(ask(addr, &response).await.is_none(), "responses are not answered");
        assert!(ask(addr, &[0; 5]).await.is_none(), "shorter than a header");

        let query = |name: &str| {
            let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
            for label in name.split('.') {
                q.push(label.len() as u8);
                q.extend_from_slice(label.as_bytes());
            }
            q.extend_from_slice(&[0, 0, 16, 0, 1]);
            q
        };
        // Batches of queries are answered in batches (sendmmsg on a socket with one address).
        assert_eq!(burst(addr, &query("a.fleet.test"), b"one").await, 200, "a burst of 200");
        let answer = ask(addr, &query("A.Fleet.Test")).await.unwrap();
        assert_eq!(u16::from_be_bytes([answer[6], answer[7]]), 1, "one answer");
        assert!(answer.windows(3).any(|w| w == b"one"));
        // The question comes back as asked, letter case and all.
        let asked: &[u8] = b"\x01A\x05Fleet\x04Test\x00";
        assert!(answer.windows(asked.len()).any(|w| w == asked));

        zone.serial = 2;
        zone.records[0].text = "two".into();
        server.replace(&zone).await.unwrap();
        let answer = ask(addr, &query("a.fleet.test")).await.unwrap();
        assert!(answer.windows(3).any(|w| w == b"two"), "{answer:?}");
        assert!(!answer.windows(3).any(|w| w == b"one"));
        // The UDP sockets share their port only among themselves: a second server fails.
        assert!(DnsServer::start(addr, vec![zone]).await.is_err(), "two servers on one port");
        server.shutdown().await;
    }

    /// A query sent over a socket connected to `to`: the kernel drops any datagram from
    /// another address, as dig and the resolvers do. `None`: no answer within 500 ms.
    async fn ask(to: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
        let any: SocketAddr = match to {
            SocketAddr::V4(_) => "127.0.0.1:0".parse().ok()?,
            SocketAddr::V6(_) => "[::1]:0".parse().ok()?,
        };
        let client = UdpSocket::bind(any).await.ok()?;
        client.connect(to).await.ok()?;
        client.send(packet).await.ok()?;
        let mut buffer = vec![0u8; 4096];
        let wait = tokio::time::timeout(Duration::from_millis(500), client.recv(&mut buffer));
        let len = wait.await.ok()?.ok()?;
        buffer.truncate(len);
        Some(buffer)
    }

    /// 200 queries for the same name sent at once over a socket connected to `to` (read and
    /// answered in batches): how many distinct ones got an answer containing `text`.
    async fn burst(to: SocketAddr, query: &[u8], text: &[u8]) -> usize {
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.connect(to).await.unwrap();
        for id in 0..200u16 {
            let mut query = query.to_vec();
            query[..2].copy_from_slice(&id.to_be_bytes());
            client.send(&query).await.unwrap();
        }
        let mut ids = std::collections::BTreeSet::new();
        let mut buffer = [0u8; 1500];
        while let Ok(Ok(len)) =
            tokio::time::timeout(Duration::from_millis(500), client.recv(&mut buffer)).await
        {
            assert!(buffer[..len].windows(text.len()).any(|w| w == text), "{:?}", &buffer[..len]);
            assert!(ids.insert(u16::from_be_bytes([buffer[0], buffer[1]])), "answered twice");
        }
        ids.len()
    }

    /// Bound to every address (the example configuration's `0.0.0.0:53`, or `[::]` with IPv4
    /// clients arriving v4-mapped), each UDP answer leaves from the address its query went to:
    /// from the table, through the catalog, and FORMERR. Before, a query to 127.0.0.2 was
    /// answered from 127.0.0.1 and the client dropped it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn udp_answers_leave_from_the_address_asked_on_a_wildcard_socket() {
        let mut zone = TxtZone::new("fleet.test", 1);
        zone.records.push(TxtRecord { name: "a.fleet.test".into(), ttl: 60, text: "one".into() });
        let question = |kind: u8, name: &str| {
            let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
            for label in name.split('.') {
                q.push(label.len() as u8);
                q.extend_from_slice(label.as_bytes());
            }
            q.extend_from_slice(&[0, 0, kind, 0, 1]);
            q
        };
        let txt = question(16, "a.fleet.test");
        let soa = question(6, "fleet.test");
        let garbage = [0xbe, 0xef, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xff];
        for (bind, targets) in [
            ("0.0.0.0:0", &["127.0.0.1", "127.0.0.2", "127.0.0.53"][..]),
            ("[::]:0", &["127.0.0.2", "::1"][..]),
        ] {
            let server = DnsServer::start(bind.parse().unwrap(), vec![zone.clone()]).await.unwrap();
            let port = server.local_addr().port();
            for target in targets {
                let to = SocketAddr::new(target.parse().unwrap(), port);
                let answer = ask(to, &txt).await;
                let answer = answer.unwrap_or_else(|| panic!("{bind}: no TXT answer from {to}"));
                assert!(answer.windows(3).any(|w| w == b"one"), "{bind} {to}: {answer:?}");
                let answer = ask(to, &soa).await;
                let answer = answer.unwrap_or_else(|| panic!("{bind}: no SOA answer from {to}"));
                assert_eq!(answer[3] & 0x0f, 0, "{bind} {to}: NOERROR");
                assert_eq!(u16::from_be_bytes([answer[6], answer[7]]), 1, "{bind} {to}: the SOA");
                let answer = ask(to, &garbage).await;
                let answer = answer.unwrap_or_else(|| panic!("{bind}: no FORMERR from {to}"));
                assert_eq!(answer[3] & 0x0f, 1, "{bind} {to}: FORMERR");
            }
            let to = SocketAddr::new(targets[0].parse().unwrap(), port);
            assert_eq!(burst(to, &txt, b"one").await, 200, "{bind}: answers to a burst of 200");
            server.shutdown().await;
        }
    }

    /// TCP: a query answered with its length prefix, pipelined queries in order, at most
    /// [`MAX_TCP_PER_ADDRESS`] connections from one address (the next is closed at once), an
    /// idle connection closed after [`TCP_TIMEOUT`].
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tcp_answers_in_order_and_limits_connections_and_idleness() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut zone = TxtZone::new("fleet.test", 1);
        for (name, text) in [("a.fleet.test", "alpha"), ("b.fleet.test", "beta")] {
            zone.records.push(TxtRecord { name: name.into(), ttl: 60, text: text.into() });
        }
        let server = DnsServer::start("127.0.0.1:0".parse().unwrap(), vec![zone]).await.unwrap();
        let addr = server.local_addr();
        let framed = |id: u8, name: &str| {
            let mut q = vec![0, id, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
            for label in name.split('.') {
                q.push(label.len() as u8);
                q.extend_from_slice(label.as_bytes());
            }
            q.extend_from_slice(&[0, 0, 16, 0, 1]);
            let mut out = (q.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(&q);
            out
        };
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut both = framed(1, "a.fleet.test");
        both.extend_from_slice(&framed(2, "b.fleet.test"));
        stream.write_all(&both).await.unwrap();
        for (id, text) in [(1u8, &b"alpha"[..]), (2, &b"beta"[..])] {
            let mut length = [0u8; 2];
            stream.read_exact(&mut length).await.unwrap();
            let mut answer = vec![0u8; usize::from(u16::from_be_bytes(length))];
            stream.read_exact(&mut answer).await.unwrap();
            assert_eq!(answer[1], id, "answers in the order asked");
            assert!(answer.windows(text.len()).any(|w| w == text));
        }

        // Connections from one address: up to the limit, then closed at once.
        let mut held = Vec::new();
        for _ in 1..MAX_TCP_PER_ADDRESS {
            held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut over = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut byte = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(2), over.read(&mut byte)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "over the limit: {closed:?}");
        drop(held);

        // The first connection, idle since its answers, is closed by the server.
        let idle = tokio::time::timeout(TCP_TIMEOUT * 2, stream.read(&mut byte)).await;
        assert!(matches!(idle, Ok(Ok(0)) | Ok(Err(_))), "idle connection: {idle:?}");
        server.shutdown().await;
    }
}
