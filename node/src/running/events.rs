//! What the node tells its users: events as they happen, peers, and figures on request.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use libp2p::{Multiaddr, PeerId};

use crate::{message::MessageHash, message::WakuMessage, peers::Origin};

/// Something that happened in the node.
#[derive(Debug, Clone)]
pub enum NodeEvent {
    /// A relayed message passed validation.
    Message {
        /// The pubsub topic.
        topic: String,
        /// Its deterministic hash.
        hash: MessageHash,
        /// The message.
        message: Arc<WakuMessage>,
        /// The peer that forwarded it.
        from: PeerId,
    },
    /// A filter service node pushed a message we subscribed to.
    Pushed {
        /// The pubsub topic.
        topic: String,
        /// Its deterministic hash.
        hash: MessageHash,
        /// The message.
        message: Arc<WakuMessage>,
        /// The service node.
        from: PeerId,
    },
    /// A peer connected.
    PeerConnected {
        /// The peer.
        peer: PeerId,
        /// Whether it dialed us.
        inbound: bool,
    },
    /// A peer's last connection closed.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
    },
    /// The metadata handshake with a peer completed.
    Metadata {
        /// The peer.
        peer: PeerId,
        /// Its cluster.
        cluster: u32,
        /// Its shards.
        shards: Vec<u32>,
    },
    /// A peer was disconnected for breaking network rules (other cluster, no cluster).
    PeerRejected {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
}

/// A peer as the node knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerInfo {
    /// The peer.
    pub peer_id: PeerId,
    /// The address of its first connection.
    pub address: Multiaddr,
    /// Whether it dialed us.
    pub inbound: bool,
    /// Protocols from identify.
    pub protocols: Vec<String>,
    /// Agent string from identify.
    pub agent: Option<String>,
    /// Cluster and shards from metadata.
    pub cluster: Option<u32>,
    /// Shards from metadata.
    pub shards: Vec<u32>,
    /// Whether it relays on one of our topics.
    pub relay: bool,
    /// Where we learned of it.
    pub origin: Option<Origin>,
    /// Whether it is one of the fleet's own nodes.
    pub fleet: bool,
    /// Its gossipsub score.
    pub score: Option<f64>,
    /// Our relay topics it is subscribed to.
    pub relay_topics: Vec<String>,
    /// Our relay topics on which it is in our mesh.
    pub mesh_topics: Vec<String>,
}

/// A peer known (from discovery, the tree, static nodes) but not connected now.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownPeer {
    /// The peer.
    pub peer_id: PeerId,
    /// Its first dial address.
    pub address: Option<Multiaddr>,
    /// Where we learned of it.
    pub origin: Origin,
    /// Dials that failed since the last success.
    pub failures: u32,
}

/// What the admin REST routes show: every peer, connected or only known, and the filter
/// subscriptions this node serves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdminView {
    /// The cluster this node is on.
    pub cluster: u16,
    /// Our relay topics (empty when relay is off).
    pub relay_topics: Vec<String>,
    /// Whether relay is mounted.
    pub relay: bool,
    /// Whether the filter server is mounted.
    pub filter: bool,
    /// Connected peers.
    pub connected: Vec<PeerInfo>,
    /// Known peers not connected now.
    pub known: Vec<KnownPeer>,
    /// Filter subscribers and their (pubsub topic, content topic) criteria, sorted.
    pub filter_subscriptions: Vec<(PeerId, Vec<(String, String)>)>,
}

/// A snapshot of the node's figures, the numbers the agent reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeStats {
    /// Connected peers that dialed us.
    pub peers_inbound: usize,
    /// Connected peers we dialed.
    pub peers_outbound: usize,
    /// Connected peers by protocol they support (from identify).
    pub peers_by_protocol: BTreeMap<String, usize>,
    /// Connected peers by direction (`in`/`out`) and protocol, as nwaku's
    /// `waku_connected_peers{direction,protocol}`.
    pub peers_by_direction_protocol: BTreeMap<(String, String), usize>,
    /// Peers relaying on at least one of our topics.
    pub relay_peers: usize,
    /// Mesh size per subscribed pubsub topic.
    pub mesh_per_topic: BTreeMap<String, usize>,
    /// Share of relay peers that are fleet nodes (0..=1), when there are relay peers.
    pub fleet_relay_share: Option<f64>,
    /// Time from start to the first moment with 6 relay peers.
    pub time_to_target_relay_peers: Option<Duration>,
    /// Messages that passed validation.
    pub messages_received: u64,
    /// Messages published by this node.
    pub messages_published: u64,
    /// Relayed messages rejected (undecodable, oversized, bad timestamp).
    pub invalid_messages: u64,
    /// Peers disconnected by the metadata rules.
    pub metadata_rejections: u64,
    /// Inbound connections refused by the limits: at once, or past the inbound relay cap
    /// once they said they relay.
    pub refused_inbound: u64,
    /// Dials that failed: refused, timed out, the wrong peer at the address. (A dial libp2p
    /// does not start, because the peer is connected or being dialled, is no failure: the
    /// swarm refuses it at once and reports no event.)
    pub dials_failed: u64,
    /// Peers known (discovered or configured), connected or not.
    pub known_peers: usize,
    /// Peers found through DNS trees.
    pub dns_discovered: u64,
    /// Records in the discv5 routing table (0 when discv5 is off).
    pub discv5_table_size: usize,
    /// discv5 lookups run since the start: each checks the signature of every record it
    /// meets, the largest CPU cost of a node at rest in a big network.
    pub discv5_lookups: u64,
    /// Unusable records from discovery (bad tree entries, undecodable peer-exchange ENRs).
    pub invalid_records: u64,
    /// Store queries served.
    pub store_queries: u64,
    /// Store queries refused with 503 because as many were being answered already.
    pub store_queries_refused: u64,
    /// Messages not archived because the archive queue was full.
    pub archive_dropped: u64,
    /// Messages the archive failed to store (database errors).
    pub archive_errors: u64,
    /// Filter subscribers (as a service node).
    pub filter_subscribers: usize,
    /// Messages pushed to filter subscribers.
    pub filter_pushes_sent: u64,
    /// Messages pushed to us by filter service nodes.
    pub filter_pushes_received: u64,
    /// Pushes dropped: from a peer we hold no matching subscription with.
    pub filter_pushes_unsolicited: u64,
    /// Lightpush requests served, by outcome (`relayed` or the failure).
    pub lightpush_served: BTreeMap<String, u64>,
    /// Records offered to others by peer exchange.
    pub px_peers_sent: u64,
    /// Usable records received by peer exchange.
    pub px_peers_received: u64,
    /// Bytes received over TCP (WebSocket included), below Noise: what the link carried.
    pub bytes_received: u64,
    /// Bytes sent over TCP (WebSocket included), below Noise.
    pub bytes_sent: u64,
    /// Time since start.
    pub uptime: Duration,
}
