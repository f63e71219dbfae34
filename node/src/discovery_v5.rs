//! discv5 the Waku way: the packet header carries protocol id `d5waku` instead of `discv5`
//! (33/WAKU2-DISCV5), so the node never mixes with Ethereum's discovery network; found records
//! are kept only if they announce a Waku capability and share a shard of our cluster (nwaku's
//! sharding predicate), then handed to the peer manager.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use discv5::{ConfigBuilder, Discv5, Enr as Discv5Enr, ListenConfig, ProtocolIdentity};
use enr::NodeId;
use k256::ecdsa::SigningKey;

use tokio::{
    net::UdpSocket,
    sync::{mpsc, watch},
};

use crate::{
    enrtree::NodeRecord,
    peers::FoundPeer,
    waku_enr::{RelayShards, WakuEnr},
};

/// Waku's discv5 protocol identity.
pub const WAKU_PROTOCOL_IDENTITY: ProtocolIdentity =
    ProtocolIdentity { protocol_id: *b"d5waku", protocol_version: [0x00, 0x01] };
/// Longest pause between random lookups while the node wants peers (nwaku: 5 s, always).
const LOOKUP_INTERVAL: Duration = Duration::from_secs(5);
/// Pause between lookups once the node holds its relay target: a slow refresh of the
/// candidates it keeps for diversity (the node looks again at once when it drops below the
/// target, so a peer leaving does not wait for this). A lookup meets ~300 records in a network
/// of hundreds (16 peers asked, 16 records each), each a signature check: 33 ms of CPU. At
/// 5 s, then at 30 s, the lookups of nodes that needed nothing were the largest cost of a
/// simulated network at rest (over 40 % of the CPU of 300 nodes relaying 1 KiB a second).
const SATISFIED_INTERVAL: Duration = Duration::from_secs(300);
/// Shortest pause: after a lookup that found a record not seen before, or while nothing has
/// been found yet. Each lookup that finds nothing new doubles the pause up to
/// [`LOOKUP_INTERVAL`], so a node that joins a young network (where the bootstrap node learns of
/// others only as they arrive) meets the newcomers in seconds, not lookups at 5 s apart.
const EAGER_INTERVAL: Duration = Duration::from_millis(500);
/// Node ids remembered to tell new records from known ones.
const MAX_REMEMBERED: usize = 4096;
/// Records asked for per lookup.
const LOOKUP_SIZE: usize = 16;

/// discv5 settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discv5Config {
    /// UDP port; 0 picks a free one. nwaku's default is 9000.
    pub udp_port: u16,
    /// Bootstrap records (`enr:…`).
    pub bootstrap: Vec<String>,
}

/// Errors starting discv5.
#[derive(Debug, thiserror::Error)]
pub enum Discv5Error {
    /// Socket or service failure.
    #[error("discv5: {0}")]
    Start(String),
    /// A bootstrap record is invalid.
    #[error("discv5 bootstrap record {record:?}: {message}")]
    Bootstrap {
        /// The record text.
        record: String,
        /// Why.
        message: String,
    },
}

/// Binds the UDP socket first, so the ENR can carry the real port.
pub async fn bind(ip: std::net::IpAddr, port: u16) -> Result<Arc<UdpSocket>, Discv5Error> {
    let socket = UdpSocket::bind(SocketAddr::new(ip, port))
        .await
        .map_err(|e| Discv5Error::Start(e.to_string()))?;
    Ok(Arc::new(socket))
}

/// A running discv5 service.
pub struct Discovery {
    discv5: Arc<Discv5>,
    /// Whether the node wants more peers: lookups are eager only then.
    needs_peers: watch::Sender<bool>,
    /// Lookups run since the start (each checks the signature of every record it meets).
    lookups: Arc<AtomicU64>,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery").finish_non_exhaustive()
    }
}

impl Discovery {
    /// Starts discv5 on `socket` with `local_enr`, and a task that looks up peers and sends the
    /// usable ones (peer id, dial addresses) on `found`.
    pub async fn start(
        key: &SigningKey,
        local_enr: Discv5Enr,
        socket: Arc<UdpSocket>,
        bootstrap: &[String],
        cluster: u16,
        shards: Vec<u16>,
        found: mpsc::Sender<Vec<FoundPeer>>,
    ) -> Result<Self, Discv5Error> {
        let listen = ListenConfig::FromSockets { ipv4: Some(socket), ipv6: None };
        let config = ConfigBuilder::new(listen).protocol_identity(WAKU_PROTOCOL_IDENTITY).build();
        let mut discv5 = Discv5::new(local_enr, enr::CombinedKey::from(key.clone()), config)
            .map_err(|e| Discv5Error::Start(e.to_string()))?;
        let mut boot_ids = Vec::new();
        for text in bootstrap {
            let bad = |message: String| Discv5Error::Bootstrap { record: text.clone(), message };
            let enr: Discv5Enr = text.parse().map_err(bad)?;
            boot_ids.push(enr.node_id());
            discv5.add_enr(enr).map_err(|e| bad(e.to_owned()))?;
        }
        discv5.start().await.map_err(|e| Discv5Error::Start(e.to_string()))?;
        let discv5 = Arc::new(discv5);
        let (needs_peers, wanted) = watch::channel(true);
        let lookups = Arc::new(AtomicU64::new(0));
        let looking = Looking { found, needs_peers: wanted, lookups: lookups.clone() };
        tokio::spawn(lookup_loop(discv5.clone(), boot_ids, cluster, shards, looking));
        Ok(Self { discv5, needs_peers, lookups })
    }

    /// Tells the lookups whether the node wants more peers (below its relay target). While it
    /// does, a lookup that found a new record is followed by another after
    /// [`EAGER_INTERVAL`], backing off to [`LOOKUP_INTERVAL`]; otherwise they run
    /// [`SATISFIED_INTERVAL`] apart. Every record a lookup
    /// meets costs a signature check, and a node with its peers has little use for more.
    pub fn set_needs_peers(&self, needs: bool) {
        self.needs_peers.send_if_modified(|current| std::mem::replace(current, needs) != needs);
    }

    /// Adds a bootstrap record after start (the controller's fleet hint): lookups go through
    /// it from the next round on.
    pub fn add_bootstrap(&self, text: &str) -> Result<(), Discv5Error> {
        let bad = |message: String| Discv5Error::Bootstrap { record: text.to_owned(), message };
        let enr: Discv5Enr = text.parse().map_err(bad)?;
        self.discv5.add_enr(enr).map_err(|e| bad(e.to_owned()))
    }

    /// Lookups run since the start.
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    /// Records in the routing table.
    pub fn table_size(&self) -> usize {
        // Ids, not records: the size only, without cloning every ENR in the table (stats are
        // asked for often; a 1,000-node simulation's profile showed the clones).
        self.discv5.table_entries_id().len()
    }
}

/// nwaku's predicate: bootstrap nodes always; others need a capability and a shared shard
/// (any shard of the cluster when the node relays none). discv5 calls it for every record a
/// lookup meets, so it reads only those fields (discv5 checked the record's signature when it
/// arrived). Without the shard check a node on one of 8 shards took peers of the other seven
/// as candidates: at 1,000 nodes fewer than half found 6 relay peers on their shard in 390 s,
/// and the connections to the others used up the process's files.
fn keep(enr: &Discv5Enr, cluster: u16, shards: &[u16], boot: &[NodeId]) -> bool {
    if boot.contains(&enr.node_id()) {
        return true;
    }
    match WakuEnr::relay_fields(enr) {
        Ok((capabilities, theirs)) => {
            !capabilities.is_empty()
                && theirs.as_ref().is_none_or(|t: &RelayShards| {
                    t.cluster == cluster
                        && (shards.is_empty() || t.shards.iter().any(|s| shards.contains(s)))
                })
        }
        Err(_) => false,
    }
}

fn to_waku(enr: &Discv5Enr) -> Option<(NodeRecord, WakuEnr)> {
    let record: NodeRecord = enr.to_base64().parse().ok()?;
    let waku = WakuEnr::decode(record.enr()).ok()?;
    Some((record, waku))
}

/// `pause` ± 25 %, from the OS's random source: nodes that reached their target together
/// (a network's cold start, a fleet restarted at once) would otherwise look up in lockstep,
/// every one of them in the same second.
fn jittered(pause: Duration) -> Duration {
    let mut bytes = [0u8; 2];
    crate::crypto::random_bytes(&mut bytes);
    let unit = f64::from(u16::from_le_bytes(bytes)) / f64::from(u16::MAX);
    pause.mul_f64(0.75 + unit / 2.0)
}

/// What the lookup task reports to and hears from the node.
struct Looking {
    found: mpsc::Sender<Vec<FoundPeer>>,
    needs_peers: watch::Receiver<bool>,
    lookups: Arc<AtomicU64>,
}

async fn lookup_loop(
    discv5: Arc<Discv5>,
    boot: Vec<NodeId>,
    cluster: u16,
    shards: Vec<u16>,
    looking: Looking,
) {
    let Looking { found, mut needs_peers, lookups } = looking;
    // Each record's peer, worked out once per (node, seq): a lookup returns the whole table
    // again, and turning a record into a peer checks its signature (at 200 nodes on one
    // machine, re-checking every record of every lookup took most of two cores).
    let mut known: HashMap<NodeId, (u64, Option<FoundPeer>)> = HashMap::new();
    let mut pause = EAGER_INTERVAL;
    // Ends when the node (the receiver) is gone.
    while !found.is_closed() {
        let (boot_ids, wanted_shards) = (boot.clone(), shards.clone());
        let predicate =
            Box::new(move |enr: &Discv5Enr| keep(enr, cluster, &wanted_shards, &boot_ids));
        let mut records = discv5
            .find_node_predicate(NodeId::random(), predicate, LOOKUP_SIZE)
            .await
            .unwrap_or_default();
        lookups.fetch_add(1, Ordering::Relaxed);
        // The table holds what sessions taught us even when a lookup returns little.
        records.extend(discv5.table_entries_enr());
        if known.len() > MAX_REMEMBERED {
            known.clear();
        }
        let mut new = false;
        let mut peers = Vec::new();
        for enr in &records {
            let id = enr.node_id();
            let peer = match known.get(&id) {
                Some((seq, peer)) if *seq == enr.seq() => peer.clone(),
                _ => {
                    new = true;
                    let peer = keep(enr, cluster, &shards, &[])
                        .then(|| to_waku(enr))
                        .flatten()
                        .and_then(|(record, _)| FoundPeer::from_record(record, cluster));
                    known.insert(id, (enr.seq(), peer.clone()));
                    peer
                }
            };
            peers.extend(peer);
        }
        pause = if !*needs_peers.borrow() {
            SATISFIED_INTERVAL
        } else if new || known.is_empty() {
            EAGER_INTERVAL
        } else {
            (pause * 2).min(LOOKUP_INTERVAL)
        };
        if !peers.is_empty() && found.send(peers).await.is_err() {
            return;
        }
        // A node that starts needing peers (it lost some) looks at once.
        let satisfied = !*needs_peers.borrow();
        tokio::select! {
            _ = tokio::time::sleep(jittered(pause)) => {}
            changed = needs_peers.wait_for(|needs| *needs), if satisfied => {
                // The node is gone.
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::waku_enr::{Capabilities, WakuEnrConfig, build_enr};

    #[test]
    fn pauses_are_spread_a_quarter_either_way() {
        let pause = Duration::from_secs(300);
        let pauses: Vec<Duration> = (0..200).map(|_| jittered(pause)).collect();
        assert!(pauses.iter().all(|p| (225.0..=375.0).contains(&p.as_secs_f64())), "{pauses:?}");
        // Spread, not one value: 200 draws from a uniform quarter either way.
        let (low, high) = (pauses.iter().min().unwrap(), pauses.iter().max().unwrap());
        assert!(high.as_secs_f64() - low.as_secs_f64() > 60.0, "{low:?}..{high:?}");
    }

    fn record(capabilities: Capabilities, shards: Option<RelayShards>) -> Discv5Enr {
        let key = enr::CombinedKey::from(crate::crypto::generate_key());
        let config = WakuEnrConfig {
            seq: 1,
            ip: Some([127, 0, 0, 1].into()),
            tcp: Some(60_000),
            udp: Some(9_000),
            capabilities,
            multiaddrs: Vec::new(),
            shards,
        };
        build_enr(&key, &config).unwrap()
    }

    /// The lookup filter reads capabilities and shards straight from discv5's records, and
    /// agrees with the full (signature-checking) decoding of the same record.
    #[test]
    fn lookups_keep_waku_records_of_our_cluster_and_bootstrap_nodes() {
        let ours = record(Capabilities::RELAY, Some(RelayShards::new(16, vec![0, 1])));
        let elsewhere = record(Capabilities::RELAY, Some(RelayShards::new(1, vec![0])));
        let unsharded = record(Capabilities::RELAY, None);
        let nothing = record(Capabilities::default(), Some(RelayShards::new(16, vec![0])));
        assert!(keep(&ours, 16, &[], &[]));
        assert!(keep(&ours, 16, &[1, 5], &[]), "shard 1 shared");
        assert!(!keep(&ours, 16, &[5], &[]), "no shard shared");
        assert!(keep(&unsharded, 16, &[5], &[]), "a record without shards may serve any");
        assert!(!keep(&elsewhere, 16, &[0], &[]));
        assert!(!keep(&nothing, 16, &[0], &[]), "no Waku capability");
        assert!(keep(&nothing, 16, &[5], &[nothing.node_id()]), "bootstrap records always");
        for enr in [&ours, &elsewhere, &unsharded, &nothing] {
            let (_, full) = to_waku(enr).unwrap();
            let (capabilities, shards) = WakuEnr::relay_fields(enr).unwrap();
            assert_eq!((capabilities, shards), (full.capabilities, full.shards));
        }
    }
}
