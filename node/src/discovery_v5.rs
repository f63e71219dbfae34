//! discv5 the Waku way: the packet header carries protocol id `d5waku` instead of `discv5`
//! (33/WAKU2-DISCV5), so the node never mixes with Ethereum's discovery network; found records
//! are kept only if they announce a Waku capability and share a shard of our cluster (nwaku's
//! sharding predicate), then handed to the peer manager.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use discv5::{ConfigBuilder, Discv5, Enr as Discv5Enr, ListenConfig, ProtocolIdentity};
use enr::NodeId;
use k256::ecdsa::SigningKey;

use tokio::{net::UdpSocket, sync::mpsc};

use crate::{
    enrtree::NodeRecord,
    peers::FoundPeer,
    waku_enr::{RelayShards, WakuEnr},
};

/// Waku's discv5 protocol identity.
pub const WAKU_PROTOCOL_IDENTITY: ProtocolIdentity =
    ProtocolIdentity { protocol_id: *b"d5waku", protocol_version: [0x00, 0x01] };
/// Longest pause between random lookups (nwaku: 5 s).
const LOOKUP_INTERVAL: Duration = Duration::from_secs(5);
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
        tokio::spawn(lookup_loop(discv5.clone(), boot_ids, cluster, found));
        Ok(Self { discv5 })
    }

    /// Adds a bootstrap record after start (the controller's fleet hint): lookups go through
    /// it from the next round on.
    pub fn add_bootstrap(&self, text: &str) -> Result<(), Discv5Error> {
        let bad = |message: String| Discv5Error::Bootstrap { record: text.to_owned(), message };
        let enr: Discv5Enr = text.parse().map_err(bad)?;
        self.discv5.add_enr(enr).map_err(|e| bad(e.to_owned()))
    }

    /// Records in the routing table.
    pub fn table_size(&self) -> usize {
        self.discv5.table_entries_enr().len()
    }
}

/// nwaku's predicate: bootstrap nodes always; others need a capability and a shared shard.
fn keep(enr: &Discv5Enr, cluster: u16, boot: &[NodeId]) -> bool {
    if boot.contains(&enr.node_id()) {
        return true;
    }
    match to_waku(enr) {
        Some((_, waku)) => {
            !waku.capabilities.is_empty()
                && waku.shards.as_ref().is_none_or(|s: &RelayShards| s.cluster == cluster)
        }
        None => false,
    }
}

fn to_waku(enr: &Discv5Enr) -> Option<(NodeRecord, WakuEnr)> {
    let record: NodeRecord = enr.to_base64().parse().ok()?;
    let waku = WakuEnr::decode(record.enr()).ok()?;
    Some((record, waku))
}

async fn lookup_loop(
    discv5: Arc<Discv5>,
    boot: Vec<NodeId>,
    cluster: u16,
    found: mpsc::Sender<Vec<FoundPeer>>,
) {
    let mut seen: std::collections::HashSet<NodeId> = std::collections::HashSet::new();
    let mut pause = EAGER_INTERVAL;
    // Ends when the node (the receiver) is gone.
    while !found.is_closed() {
        let boot_ids = boot.clone();
        let predicate = Box::new(move |enr: &Discv5Enr| keep(enr, cluster, &boot_ids));
        let mut records = discv5
            .find_node_predicate(NodeId::random(), predicate, LOOKUP_SIZE)
            .await
            .unwrap_or_default();
        // The table holds what sessions taught us even when a lookup returns little.
        records.extend(discv5.table_entries_enr());
        let peers: Vec<FoundPeer> = records
            .iter()
            .filter(|enr| keep(enr, cluster, &[]))
            .filter_map(to_waku)
            .filter_map(|(record, _)| FoundPeer::from_record(record, cluster))
            .collect();
        if seen.len() > MAX_REMEMBERED {
            seen.clear();
        }
        let new = records.iter().fold(false, |new, enr| seen.insert(enr.node_id()) | new);
        pause =
            if new || seen.is_empty() { EAGER_INTERVAL } else { (pause * 2).min(LOOKUP_INTERVAL) };
        if !peers.is_empty() && found.send(peers).await.is_err() {
            return;
        }
        tokio::time::sleep(pause).await;
    }
}
