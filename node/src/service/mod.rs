//! The running node: a libp2p swarm (TCP and WebSocket, Noise, Yamux and Mplex, identify, ping,
//! relay, metadata) driven by one task, and the [`NodeHandle`] other code talks to it through.
//!
//! The task owns all state; the handle sends commands over a bounded channel and gets answers on
//! oneshot channels. Events (messages, peers) go out on a bounded broadcast channel: a slow
//! listener loses the oldest events instead of stalling the node.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use libp2p::{
    Multiaddr, PeerId, Swarm, gossipsub, identify,
    multiaddr::Protocol,
    noise, ping,
    request_response::{self, ProtocolSupport},
    swarm::{NetworkBehaviour, SwarmEvent, dial_opts::DialOpts},
    tcp, yamux,
};
use prost::Message as _;
use tokio::sync::{broadcast, mpsc, oneshot};

mod filter_service;
mod lightpush_service;
mod quality;
mod store_service;

use crate::{
    config::NodeConfig,
    discovery_v5::Discovery,
    dnsdisc::{ClientConfig, HickoryTxtResolver, TreeClient},
    enrtree::LinkEntry,
    enrtree::record::Enr,
    filter::{self, FilterSubscribeType},
    lightpush,
    message::{MessageError, MessageHash, WakuMessage},
    metadata::{self, WakuMetadata},
    peer_exchange::{self, PeerExchangeRpc},
    peers::{Connected, FoundPeer, Origin, PeerManager, ip_of, peer_of},
    relay, store,
    topics::{ContentTopic, ShardTopic},
    waku_enr::{self, Capabilities, RelayShards, WakuEnrConfig},
};

/// Relay peers a node aims for; also the mark for "bootstrapped".
pub const TARGET_RELAY_PEERS: usize = 6;
/// Commands queued from handles before senders wait.
const COMMAND_CAPACITY: usize = 256;
/// How long start-up waits for the listeners to report their addresses.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often connections are reviewed (dials, limits, diversity).
const MANAGE_INTERVAL: Duration = Duration::from_secs(1);
/// With no peer at all for this long, go back to the bootstrap sources.
const ALONE_RECOVERY: Duration = Duration::from_secs(10);
/// Retry interval for DNS discovery that found nothing (nwaku: 30 s).
const DNS_RETRY: Duration = Duration::from_secs(30);
/// How often to ask for peers by peer exchange while short of relay peers.
const PX_INTERVAL: Duration = Duration::from_secs(10);
/// Sooner retry when the last peer-exchange answer was empty.
const PX_EMPTY_RETRY: Duration = Duration::from_secs(2);
/// Discovery results waiting for the service.
const DISCOVERY_CAPACITY: usize = 64;

/// Errors of the node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A transport could not be set up or a listener failed.
    #[error("transport: {0}")]
    Transport(String),
    /// The message may not be published.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// A topic string is invalid.
    #[error(transparent)]
    Topic(#[from] crate::topics::TopicError),
    /// No peer to publish to.
    #[error("no relay peers on {0}")]
    NoPeers(String),
    /// Relay is not mounted.
    #[error("relay is disabled on this node")]
    RelayDisabled,
    /// Dialing failed.
    #[error("dial failed: {0}")]
    Dial(String),
    /// A request to a service peer failed.
    #[error("request failed: {0}")]
    Request(String),
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
}

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
    /// Inbound connections refused by the limits.
    pub refused_inbound: u64,
    /// Peers known (discovered or configured), connected or not.
    pub known_peers: usize,
    /// Peers found through DNS trees.
    pub dns_discovered: u64,
    /// Records in the discv5 routing table (0 when discv5 is off).
    pub discv5_table_size: usize,
    /// Unusable records from discovery (bad tree entries, undecodable peer-exchange ENRs).
    pub invalid_records: u64,
    /// Store queries served.
    pub store_queries: u64,
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
    /// Time since start.
    pub uptime: Duration,
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    relay: gossipsub::Behaviour,
    metadata: request_response::Behaviour<metadata::Codec>,
    peer_exchange: request_response::Behaviour<peer_exchange::Codec>,
    lightpush: request_response::Behaviour<lightpush::CodecV3>,
    lightpush_legacy: request_response::Behaviour<lightpush::CodecV2>,
    filter_subscribe: request_response::Behaviour<filter::SubscribeCodec>,
    filter_push: request_response::Behaviour<filter::PushCodec>,
    store: request_response::Behaviour<store::Codec>,
}

enum Command {
    Publish {
        topic: String,
        message: WakuMessage,
        reply: oneshot::Sender<Result<MessageHash, NodeError>>,
    },
    Subscribe {
        topic: String,
        subscribe: bool,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    Dial {
        address: Multiaddr,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    Stats {
        reply: oneshot::Sender<NodeStats>,
    },
    StoreLocal {
        request: store::proto::StoreQueryRequest,
        reply: oneshot::Sender<Result<store::proto::StoreQueryResponse, NodeError>>,
    },
    Store {
        peer: PeerId,
        request: store::proto::StoreQueryRequest,
        reply: oneshot::Sender<Result<store::proto::StoreQueryResponse, NodeError>>,
    },
    Filter {
        peer: PeerId,
        request: filter::FilterSubscribeRequest,
        reply: oneshot::Sender<Result<filter::FilterSubscribeResponse, NodeError>>,
    },
    LightPush {
        peer: PeerId,
        request: lightpush::LightPushRequest,
        reply: oneshot::Sender<Result<lightpush::LightPushResponse, NodeError>>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
    ServicePeers {
        kind: crate::service_peers::ServiceKind,
        reply: oneshot::Sender<Vec<(PeerId, crate::service_peers::ServiceScore)>>,
    },
    Shutdown,
}

/// What never changes while the node runs.
#[derive(Debug)]
struct Identity {
    peer_id: PeerId,
    listen_addrs: Vec<Multiaddr>,
    enr: Enr,
    cluster: u16,
    num_shards_in_network: u16,
}

/// The front-end of a running node. Cheap to clone.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<NodeEvent>,
    identity: Arc<Identity>,
}

impl NodeHandle {
    /// The node's libp2p peer id.
    pub fn peer_id(&self) -> PeerId {
        self.identity.peer_id
    }

    /// The addresses the node listens on, each ending in `/p2p/<peer id>`.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.identity.listen_addrs.clone()
    }

    /// The address of the plain WebSocket listener, if any.
    pub fn websocket_addr(&self) -> Option<Multiaddr> {
        self.identity.listen_addrs.iter().find(|a| is_plain_ws(a)).cloned()
    }

    /// The address of the secure WebSocket (WSS) listener, if any.
    pub fn secure_websocket_addr(&self) -> Option<Multiaddr> {
        self.identity.listen_addrs.iter().find(|a| is_secure_ws(a)).cloned()
    }

    /// The node's current ENR.
    pub fn enr(&self) -> Enr {
        self.identity.enr.clone()
    }

    /// Events from now on.
    pub fn events(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    /// Publishes `message` on `topic` (a pubsub topic). Returns the deterministic hash.
    pub async fn publish(
        &self,
        topic: &str,
        message: WakuMessage,
    ) -> Result<MessageHash, NodeError> {
        self.ask(|reply| Command::Publish { topic: topic.to_owned(), message, reply }).await?
    }

    /// Publishes on the shard autosharding picks for the message's content topic.
    pub async fn publish_auto(&self, message: WakuMessage) -> Result<MessageHash, NodeError> {
        let topic = self.autoshard_topic(&message.content_topic)?;
        self.publish(&topic, message).await
    }

    /// The pubsub topic of a content topic under this node's autosharding.
    pub fn autoshard_topic(&self, content_topic: &str) -> Result<String, NodeError> {
        let content: ContentTopic = content_topic.parse()?;
        let shard = content.shard(self.identity.num_shards_in_network)?;
        Ok(ShardTopic::new(self.identity.cluster, shard).to_string())
    }

    /// Subscribes to a pubsub topic.
    pub async fn subscribe(&self, topic: &str) -> Result<(), NodeError> {
        self.ask(|reply| Command::Subscribe { topic: topic.to_owned(), subscribe: true, reply })
            .await?
    }

    /// Unsubscribes from a pubsub topic.
    pub async fn unsubscribe(&self, topic: &str) -> Result<(), NodeError> {
        self.ask(|reply| Command::Subscribe { topic: topic.to_owned(), subscribe: false, reply })
            .await?
    }

    /// Dials a peer and waits until the connection is up.
    pub async fn dial(&self, address: Multiaddr) -> Result<(), NodeError> {
        self.ask(|reply| Command::Dial { address, reply }).await?
    }

    /// The node's figures now.
    pub async fn stats(&self) -> Result<NodeStats, NodeError> {
        self.ask(|reply| Command::Stats { reply }).await
    }

    /// Waits until the node has at least `n` relay peers, for at most `limit`.
    pub async fn wait_for_relay_peers(&self, n: usize, limit: Duration) -> Result<(), NodeError> {
        tokio::time::timeout(limit, async {
            while self.stats().await?.relay_peers < n {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(())
        })
        .await
        .map_err(|_| NodeError::NoPeers(format!("fewer than {n} relay peers after {limit:?}")))?
    }

    /// Subscribes to `content_topics` on `pubsub_topic` at filter service node `peer`; matching
    /// messages arrive as [`NodeEvent::Pushed`].
    pub async fn filter_subscribe(
        &self,
        peer: PeerId,
        pubsub_topic: &str,
        content_topics: Vec<String>,
    ) -> Result<filter::FilterSubscribeResponse, NodeError> {
        self.filter_request(
            peer,
            FilterSubscribeType::Subscribe,
            Some(pubsub_topic),
            content_topics,
        )
        .await
    }

    /// Removes criteria at `peer`.
    pub async fn filter_unsubscribe(
        &self,
        peer: PeerId,
        pubsub_topic: &str,
        content_topics: Vec<String>,
    ) -> Result<filter::FilterSubscribeResponse, NodeError> {
        self.filter_request(
            peer,
            FilterSubscribeType::Unsubscribe,
            Some(pubsub_topic),
            content_topics,
        )
        .await
    }

    /// Removes every criterion at `peer`.
    pub async fn filter_unsubscribe_all(
        &self,
        peer: PeerId,
    ) -> Result<filter::FilterSubscribeResponse, NodeError> {
        self.filter_request(peer, FilterSubscribeType::UnsubscribeAll, None, Vec::new()).await
    }

    /// Keeps the subscription at `peer` alive (404 when there is none).
    pub async fn filter_ping(
        &self,
        peer: PeerId,
    ) -> Result<filter::FilterSubscribeResponse, NodeError> {
        self.filter_request(peer, FilterSubscribeType::SubscriberPing, None, Vec::new()).await
    }

    async fn filter_request(
        &self,
        peer: PeerId,
        kind: FilterSubscribeType,
        pubsub_topic: Option<&str>,
        content_topics: Vec<String>,
    ) -> Result<filter::FilterSubscribeResponse, NodeError> {
        let request = filter::FilterSubscribeRequest {
            request_id: request_id(),
            filter_subscribe_type: kind as i32,
            pubsub_topic: pubsub_topic.map(str::to_owned),
            content_topics,
        };
        self.ask(|reply| Command::Filter { peer, request, reply }).await?
    }

    /// Answers a store query from this node's own archive.
    pub async fn query_archive(
        &self,
        mut request: store::proto::StoreQueryRequest,
    ) -> Result<store::proto::StoreQueryResponse, NodeError> {
        if request.request_id.is_empty() {
            request.request_id = request_id();
        }
        self.ask(|reply| Command::StoreLocal { request, reply }).await?
    }

    /// Connected peers serving `kind`, best first, with their scores.
    pub async fn service_peers(
        &self,
        kind: crate::service_peers::ServiceKind,
    ) -> Result<Vec<(PeerId, crate::service_peers::ServiceScore)>, NodeError> {
        self.ask(|reply| Command::ServicePeers { kind, reply }).await
    }

    /// The best connected peer serving `kind`, if any.
    pub async fn best_service_peer(
        &self,
        kind: crate::service_peers::ServiceKind,
    ) -> Result<Option<PeerId>, NodeError> {
        Ok(self.service_peers(kind).await?.first().map(|(peer, _)| *peer))
    }

    /// Sends a store query to `peer`.
    pub async fn store_query(
        &self,
        peer: PeerId,
        mut request: store::proto::StoreQueryRequest,
    ) -> Result<store::proto::StoreQueryResponse, NodeError> {
        if request.request_id.is_empty() {
            request.request_id = request_id();
        }
        self.ask(|reply| Command::Store { peer, request, reply }).await?
    }

    /// Lightpushes `message` through `peer` (lightpush v3). The pubsub topic, when `None`, is
    /// derived by autosharding on the serving node.
    pub async fn lightpush(
        &self,
        peer: PeerId,
        pubsub_topic: Option<String>,
        message: WakuMessage,
    ) -> Result<lightpush::LightPushResponse, NodeError> {
        let request = lightpush::LightPushRequest {
            request_id: crate::service::request_id(),
            pubsub_topic,
            message: Some(message),
        };
        self.ask(|reply| Command::LightPush { peer, request, reply }).await?
    }

    /// The connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NodeError> {
        self.ask(|reply| Command::Peers { reply }).await
    }

    /// Stops the node; returns at once (await the task's join handle to wait for the end).
    pub async fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown).await;
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).await.map_err(|_| NodeError::Stopped)?;
        answer.await.map_err(|_| NodeError::Stopped)
    }
}

#[derive(Debug)]
struct PeerState {
    address: Multiaddr,
    inbound: bool,
    protocols: Vec<String>,
    agent: Option<String>,
    cluster: Option<u32>,
    shards: Vec<u32>,
}

/// Peers found by a discovery task.
struct Discovered {
    origin: Origin,
    peers: Vec<FoundPeer>,
    /// Records or entries that were unusable (bad ENR, bad tree entry).
    invalid: u64,
}

type FoundPeers = Vec<FoundPeer>;

struct Service {
    swarm: Swarm<Behaviour>,
    archive: Option<store::archive::Archive>,
    archive_queue: Option<mpsc::Sender<(String, WakuMessage)>>,
    archive_errors: Arc<std::sync::atomic::AtomicU64>,
    /// Dropped with the service: stops the retention task.
    _retention_stop: oneshot::Sender<()>,
    store_answers: mpsc::Sender<store_service::StoreAnswer>,
    pending_store: HashMap<
        request_response::OutboundRequestId,
        quality::Pending<store::proto::StoreQueryResponse>,
    >,
    filter_subscribers: HashMap<PeerId, filter_service::Subscriber>,
    filter_client: quality::FilterClient,
    recent: HashMap<MessageHash, quality::Arrival>,
    service_peers: crate::service_peers::ServicePeers,
    /// Filter requests in flight, with the request (applied to `filter_client` on success).
    pending_filter: HashMap<
        request_response::OutboundRequestId,
        (quality::Pending<filter::FilterSubscribeResponse>, filter::FilterSubscribeRequest),
    >,
    pending_lightpush: HashMap<
        request_response::OutboundRequestId,
        quality::Pending<lightpush::LightPushResponse>,
    >,
    px_cache: std::collections::VecDeque<(PeerId, crate::enrtree::NodeRecord)>,
    next_px_query: Option<Instant>,
    discovery: Option<Discovery>,
    peer_manager: PeerManager,
    discovered_tx: mpsc::Sender<Discovered>,
    dns_running: bool,
    alone_since: Option<Instant>,
    config: NodeConfig,
    events: broadcast::Sender<NodeEvent>,
    peers: HashMap<PeerId, PeerState>,
    pending_dials: HashMap<PeerId, Vec<oneshot::Sender<Result<(), NodeError>>>>,
    subscribed: HashSet<String>,
    started: Instant,
    reached_target: Option<Duration>,
    stats: NodeStats,
}

/// Starts a node; returns its handle and the task that runs it.
pub async fn start(
    config: NodeConfig,
) -> Result<(NodeHandle, tokio::task::JoinHandle<()>), NodeError> {
    let keypair = waku_enr::keypair(&config.key).map_err(|e| NodeError::Config(e.to_string()))?;
    let peer_id = keypair.public().to_peer_id();
    let mut swarm = build_swarm(keypair, &config).await?;

    let ip_protocol = match config.listen_ip {
        IpAddr::V4(ip) => Protocol::Ip4(ip),
        IpAddr::V6(ip) => Protocol::Ip6(ip),
    };
    let tcp_addr =
        Multiaddr::empty().with(ip_protocol.clone()).with(Protocol::Tcp(config.tcp_port));
    swarm.listen_on(tcp_addr).map_err(|e| NodeError::Transport(e.to_string()))?;
    if let Some(port) = config.websocket_port {
        let ws = Multiaddr::empty()
            .with(ip_protocol.clone())
            .with(Protocol::Tcp(port))
            .with(Protocol::Ws("/".into()));
        swarm.listen_on(ws).map_err(|e| NodeError::Transport(e.to_string()))?;
    }
    if let Some(wss) = &config.websocket_secure {
        let addr = Multiaddr::empty()
            .with(ip_protocol)
            .with(Protocol::Tcp(wss.port))
            .with(Protocol::Wss("/".into()));
        swarm.listen_on(addr).map_err(|e| NodeError::Transport(e.to_string()))?;
    }
    let expected = 1
        + usize::from(config.websocket_port.is_some())
        + usize::from(config.websocket_secure.is_some());
    let listen_addrs = wait_for_listeners(&mut swarm, expected).await?;

    let discv5_socket = match &config.discv5 {
        Some(d) => {
            let ip = config.listen_ip;
            Some(
                crate::discovery_v5::bind(ip, d.udp_port)
                    .await
                    .map_err(|e| NodeError::Transport(e.to_string()))?,
            )
        }
        None => None,
    };
    let udp_port = discv5_socket.as_ref().and_then(|s| s.local_addr().ok()).map(|a| a.port());
    let discv5_enr = build_local_enr(&config, &listen_addrs, udp_port)?;
    let enr: Enr = discv5_enr
        .to_base64()
        .parse::<crate::enrtree::NodeRecord>()
        .map_err(|e| NodeError::Config(e.to_string()))?
        .enr()
        .clone();
    let (discv5_tx, discv5_rx) = mpsc::channel::<FoundPeers>(DISCOVERY_CAPACITY);
    let discovery = match (&config.discv5, discv5_socket) {
        (Some(d), Some(socket)) => Some(
            Discovery::start(
                &config.key,
                discv5_enr,
                socket,
                &d.bootstrap,
                config.cluster_id,
                discv5_tx,
            )
            .await
            .map_err(|e| NodeError::Config(e.to_string()))?,
        ),
        _ => None,
    };
    let identity = Arc::new(Identity {
        peer_id,
        listen_addrs: listen_addrs.iter().map(|a| a.clone().with(Protocol::P2p(peer_id))).collect(),
        enr,
        cluster: config.cluster_id,
        num_shards_in_network: config.num_shards_in_network,
    });
    let (events, _) = broadcast::channel(config.event_capacity.max(16));
    let (commands, receiver) = mpsc::channel(COMMAND_CAPACITY);
    let (discovered_tx, discovered_rx) = mpsc::channel(DISCOVERY_CAPACITY);
    let archive = match &config.store_url {
        Some(url) => Some(
            store::archive::Archive::connect(url)
                .await
                .map_err(|e| NodeError::Config(e.to_string()))?,
        ),
        None => None,
    };
    let archive_errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (retention_stop, retention_stopped) = oneshot::channel();
    let archive_queue = archive.clone().map(|archive| {
        let (tx, rx) = mpsc::channel(store_service::ARCHIVE_QUEUE);
        tokio::spawn(store_service::archive_writer(archive.clone(), rx, archive_errors.clone()));
        if let Some(retention) = config.store_retention {
            tokio::spawn(enforce_retention(archive, retention, retention_stopped));
        }
        tx
    });
    let (store_answers, store_answers_rx) = mpsc::channel(COMMAND_CAPACITY);
    let mut service = Service {
        swarm,
        archive,
        archive_queue,
        archive_errors,
        _retention_stop: retention_stop,
        store_answers,
        pending_store: HashMap::new(),
        filter_subscribers: HashMap::new(),
        pending_filter: HashMap::new(),
        filter_client: HashMap::new(),
        recent: HashMap::new(),
        service_peers: crate::service_peers::ServicePeers::default(),
        pending_lightpush: HashMap::new(),
        px_cache: std::collections::VecDeque::new(),
        next_px_query: None,
        discovery,
        peer_manager: PeerManager::new(
            config.peer_manager.clone(),
            config.fleet_peers.iter().copied(),
        ),
        discovered_tx,
        dns_running: false,
        alone_since: Some(Instant::now()),
        config,
        events: events.clone(),
        peers: HashMap::new(),
        pending_dials: HashMap::new(),
        subscribed: HashSet::new(),
        started: Instant::now(),
        reached_target: None,
        stats: NodeStats::default(),
    };
    if service.config.relay {
        let topics: Vec<String> = service
            .config
            .shards
            .iter()
            .map(|&s| ShardTopic::new(service.config.cluster_id, s).to_string())
            .collect();
        for topic in topics {
            service.subscribe(&topic)?;
        }
    }
    for address in service.config.static_nodes.clone() {
        match peer_of(&address) {
            Some(peer) => service.peer_manager.add(peer, vec![address], Origin::Static),
            None => {
                tracing::warn!(target: "node", %address, "static node needs /p2p/<peer id>; ignored")
            }
        }
    }
    service.start_dns_discovery(Duration::ZERO);
    tracing::info!(target: "node", %peer_id, addrs = ?identity.listen_addrs, "node started");
    let task = tokio::spawn(service.run(receiver, discovered_rx, discv5_rx, store_answers_rx));
    Ok((NodeHandle { commands, events, identity }, task))
}

async fn build_swarm(
    keypair: libp2p::identity::Keypair,
    config: &NodeConfig,
) -> Result<Swarm<Behaviour>, NodeError> {
    let transport_error = |e: &dyn std::fmt::Display| NodeError::Transport(e.to_string());
    let relay_config =
        relay::config(config.max_message_size).map_err(|e| NodeError::Config(e.to_string()))?;
    let agent = config.agent_version.clone();
    let colocation_limit = config.peer_manager.max_peers_per_ip;
    // Serve peer exchange only when asked to; always able to ask.
    let px_support =
        if config.peer_exchange { ProtocolSupport::Full } else { ProtocolSupport::Outbound };
    let lightpush_support =
        if config.lightpush { ProtocolSupport::Full } else { ProtocolSupport::Outbound };
    let max_message_size = config.max_message_size;
    let filter_support =
        if config.filter { ProtocolSupport::Full } else { ProtocolSupport::Outbound };
    let store_support =
        if config.store_url.is_some() { ProtocolSupport::Full } else { ProtocolSupport::Outbound };
    let websocket_tls =
        crate::tls::websocket_tls(config).map_err(|e| NodeError::Config(e.to_string()))?;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            (yamux::Config::default, libp2p_mplex::Config::default),
        )
        .map_err(|e| transport_error(&e))?
        .with_other_transport(|key| crate::tls::websocket_transport(key, websocket_tls))
        .map_err(|e| transport_error(&e))?
        .with_dns()
        .map_err(|e| transport_error(&e))?
        .with_behaviour(|key| {
            let mut gossip =
                gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, relay_config)?;
            gossip.with_peer_score(relay::score_params(colocation_limit), relay::thresholds())?;
            Ok(Behaviour {
                identify: identify::Behaviour::new(
                    identify::Config::new("/ipfs/id/1.0.0".into(), key.public())
                        .with_agent_version(agent),
                ),
                ping: ping::Behaviour::new(ping::Config::new()),
                relay: gossip,
                metadata: protocol(
                    metadata::codec(),
                    metadata::PROTOCOL,
                    ProtocolSupport::Full,
                    10,
                ),
                peer_exchange: protocol(
                    peer_exchange::codec(),
                    peer_exchange::PROTOCOL,
                    px_support,
                    10,
                ),
                lightpush: protocol(
                    lightpush::codec_v3(max_message_size),
                    lightpush::PROTOCOL_V3,
                    lightpush_support.clone(),
                    10,
                ),
                lightpush_legacy: protocol(
                    lightpush::codec_v2(max_message_size),
                    lightpush::PROTOCOL_V2,
                    lightpush_support,
                    10,
                ),
                filter_subscribe: protocol(
                    filter::subscribe_codec(),
                    filter::SUBSCRIBE_PROTOCOL,
                    filter_support,
                    10,
                ),
                store: protocol(store::codec(max_message_size), store::PROTOCOL, store_support, 30),
                // Clients receive pushes and servers send them: both directions always.
                filter_push: protocol(
                    filter::PushCodec::new(max_message_size),
                    filter::PUSH_PROTOCOL,
                    ProtocolSupport::Full,
                    10,
                ),
            })
        })
        .map_err(|e| transport_error(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    Ok(swarm)
}

/// A request-response behaviour for one protocol, with a request timeout in seconds.
fn protocol<C>(
    codec: C,
    id: libp2p::StreamProtocol,
    support: ProtocolSupport,
    timeout_secs: u64,
) -> request_response::Behaviour<C>
where
    C: request_response::Codec<Protocol = libp2p::StreamProtocol> + Clone + Send + 'static,
{
    let config =
        request_response::Config::default().with_request_timeout(Duration::from_secs(timeout_secs));
    request_response::Behaviour::with_codec(codec, [(id, support)], config)
}

async fn wait_for_listeners(
    swarm: &mut Swarm<Behaviour>,
    expected: usize,
) -> Result<Vec<Multiaddr>, NodeError> {
    let mut addrs = Vec::new();
    let deadline = tokio::time::sleep(LISTEN_TIMEOUT);
    tokio::pin!(deadline);
    while addrs.len() < expected {
        tokio::select! {
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => addrs.push(address),
                SwarmEvent::ListenerError { error, .. } => return Err(NodeError::Transport(error.to_string())),
                SwarmEvent::ListenerClosed { reason: Err(error), .. } => return Err(NodeError::Transport(error.to_string())),
                _ => {}
            },
            () = &mut deadline => return Err(NodeError::Transport("listeners did not come up".into())),
        }
    }
    Ok(addrs)
}

fn build_local_enr(
    config: &NodeConfig,
    listen_addrs: &[Multiaddr],
    udp_port: Option<u16>,
) -> Result<discv5::Enr, NodeError> {
    let announce = config.announce_ip.unwrap_or(if config.listen_ip.is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        config.listen_ip
    });
    let tcp_port =
        listen_addrs.iter().find(|a| !is_plain_ws(a) && !is_secure_ws(a)).and_then(port_of);
    let ws_port = listen_addrs.iter().find(|a| is_plain_ws(a)).and_then(port_of);
    let wss_port = listen_addrs.iter().find(|a| is_secure_ws(a)).and_then(port_of);
    let ip = match announce {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(_) => {
            return Err(NodeError::Config("an IPv6 announce address is not supported yet".into()));
        }
    };
    let mut capabilities = Capabilities::default();
    if config.relay {
        capabilities = capabilities | Capabilities::RELAY;
    }
    let ws = ws_port.map(|p| {
        Multiaddr::empty()
            .with(Protocol::Ip4(ip))
            .with(Protocol::Tcp(p))
            .with(Protocol::Ws("/".into()))
    });
    let wss = wss_port.map(|p| {
        Multiaddr::empty()
            .with(Protocol::Ip4(ip))
            .with(Protocol::Tcp(p))
            .with(Protocol::Wss("/".into()))
    });
    let multiaddrs = ws.into_iter().chain(wss).collect();
    let enr_config = WakuEnrConfig {
        seq: 1,
        ip: Some(ip),
        tcp: tcp_port,
        udp: udp_port,
        capabilities,
        multiaddrs,
        shards: Some(RelayShards::new(config.cluster_id, config.shards.clone())),
    };
    let key = enr::CombinedKey::from(config.key.clone());
    let build = |enr_config: &WakuEnrConfig| {
        waku_enr::build_enr(&key, enr_config).map_err(|e| NodeError::Config(e.to_string()))
    };
    let fresh = build(&enr_config)?;
    let Some(path) = &config.enr_file else { return Ok(fresh) };
    let kept = crate::enr_seq::read_kept(path);
    let seq = crate::enr_seq::next_seq(kept.as_ref(), &fresh);
    let enr = if seq == fresh.seq() { fresh } else { build(&WakuEnrConfig { seq, ..enr_config })? };
    if kept.as_ref() != Some(&enr) {
        if let Err(error) = crate::enr_seq::keep(path, &enr) {
            // The node runs anyway; a later restart may reuse this seq for another record.
            tracing::warn!(target: "node::enr", path = %path.display(), %error, "cannot keep the ENR");
        } else if kept.is_some() {
            tracing::info!(target: "node::enr", seq, "the record changed: new ENR seq");
        }
    }
    Ok(enr)
}

/// Applies the archive's retention policy once a minute.
/// Applies the retention policy every minute until the service drops `stopped`'s sender.
async fn enforce_retention(
    archive: store::archive::Archive,
    retention: crate::config::Retention,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stopped => return,
        }
        let result = match retention {
            crate::config::Retention::Time(keep) => {
                let keep = i64::try_from(keep.as_nanos()).unwrap_or(i64::MAX);
                archive.delete_older_than(crate::message::now_ns().saturating_sub(keep)).await
            }
            crate::config::Retention::Size(bytes) => {
                archive.shrink_to(i64::try_from(bytes).unwrap_or(i64::MAX)).await
            }
        };
        if let Err(error) = result {
            tracing::warn!(target: "node::store", %error, "retention failed");
        }
    }
}

/// A random request id (16 random bytes, hex).
pub(crate) fn request_id() -> String {
    let mut bytes = [0u8; 16];
    crate::crypto::random_bytes(&mut bytes);
    data_encoding::HEXLOWER.encode(&bytes)
}

/// Resolves the trees and returns the dialable Waku peers of our cluster found in them.
async fn resolve_trees(
    urls: &[LinkEntry],
    server: Option<std::net::SocketAddr>,
    cluster: u16,
) -> (Vec<FoundPeer>, u64) {
    let resolver =
        match server.map_or_else(HickoryTxtResolver::system, HickoryTxtResolver::with_server) {
            Ok(resolver) => resolver,
            Err(error) => {
                tracing::warn!(target: "node::dns", %error, "no DNS resolver");
                return (Vec::new(), 0);
            }
        };
    let client = TreeClient::new(resolver, ClientConfig::default());
    let mut peers = Vec::new();
    let mut invalid = 0;
    for url in urls {
        let resolution = client.resolve(url).await;
        for error in resolution.errors() {
            invalid += 1;
            tracing::warn!(target: "node::dns", %url, %error, "bad tree entry");
        }
        for record in resolution.records() {
            peers.extend(FoundPeer::from_record(record, cluster));
        }
    }
    (peers, invalid)
}

fn is_secure_ws(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::Wss(_)))
        || (addr.iter().any(|p| matches!(p, Protocol::Tls))
            && addr.iter().any(|p| matches!(p, Protocol::Ws(_))))
}

fn is_plain_ws(addr: &Multiaddr) -> bool {
    !is_secure_ws(addr) && addr.iter().any(|p| matches!(p, Protocol::Ws(_)))
}

fn port_of(addr: &Multiaddr) -> Option<u16> {
    addr.iter().find_map(|p| if let Protocol::Tcp(port) = p { Some(port) } else { None })
}

impl Service {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut discovered: mpsc::Receiver<Discovered>,
        mut discv5_found: mpsc::Receiver<FoundPeers>,
        mut store_answers: mpsc::Receiver<store_service::StoreAnswer>,
    ) {
        let mut manage = tokio::time::interval(MANAGE_INTERVAL);
        manage.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = commands.recv() => match command {
                    Some(Command::Shutdown) | None => break,
                    Some(command) => self.on_command(command),
                },
                Some(found) = discovered.recv() => self.on_discovered(found),
                Some(answer) = store_answers.recv() => self.send_store_answer(answer),
                Some(peers) = discv5_found.recv() => self.on_discovered(Discovered { origin: Origin::Discv5, peers, invalid: 0 }),
                _ = manage.tick() => self.manage_connections(),
            }
        }
        tracing::info!(target: "node", "node stopped");
    }

    /// Resolves the configured trees after `delay`, in the background; at most one at a time.
    fn start_dns_discovery(&mut self, delay: Duration) {
        if self.dns_running || self.config.dns_discovery_urls.is_empty() {
            return;
        }
        let urls: Vec<LinkEntry> = self
            .config
            .dns_discovery_urls
            .iter()
            .filter_map(|u| match u.parse() {
                Ok(url) => Some(url),
                Err(error) => {
                    tracing::warn!(target: "node::dns", url = %u, %error, "invalid tree URL");
                    None
                }
            })
            .collect();
        let server = self.config.dns_name_server;
        let cluster = self.config.cluster_id;
        let tx = self.discovered_tx.clone();
        self.dns_running = true;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let (peers, invalid) = resolve_trees(&urls, server, cluster).await;
            let _ = tx.send(Discovered { origin: Origin::Dns, peers, invalid }).await;
        });
    }

    fn on_discovered(&mut self, found: Discovered) {
        self.stats.invalid_records += found.invalid;
        if found.origin == Origin::Dns {
            self.dns_running = false;
            self.stats.dns_discovered += found.peers.len() as u64;
            if found.peers.is_empty() {
                self.start_dns_discovery(DNS_RETRY);
            }
        }
        let own = *self.swarm.local_peer_id();
        for peer in found.peers {
            if peer.peer_id == own {
                continue;
            }
            // Records found by our own discovery are what peer exchange offers others.
            if let Some(record) = &peer.record
                && matches!(found.origin, Origin::Discv5 | Origin::Dns)
            {
                self.remember_for_exchange(peer.peer_id, record.clone());
            }
            self.peer_manager.add(peer.peer_id, peer.addrs, found.origin);
        }
        self.manage_connections();
    }

    fn remember_for_exchange(&mut self, peer: PeerId, record: crate::enrtree::NodeRecord) {
        self.px_cache.retain(|(p, _)| *p != peer);
        if self.px_cache.len() >= peer_exchange::MAX_PEERS {
            self.px_cache.pop_front();
        }
        self.px_cache.push_back((peer, record));
    }

    /// Asks one connected peer that serves peer exchange for more peers, at most every
    /// [`PX_INTERVAL`].
    fn maybe_ask_for_peers(&mut self, relay_peers: usize, now: Instant) {
        if !self.config.peer_exchange_client
            || relay_peers >= self.peer_manager.config().target_relay_peers
            || self.next_px_query.is_some_and(|t| t > now)
        {
            return;
        }
        let protocol = peer_exchange::PROTOCOL.to_string();
        let server = self
            .peers
            .iter()
            .find(|(_, state)| state.protocols.contains(&protocol))
            .map(|(peer, _)| *peer);
        if let Some(server) = server {
            self.next_px_query = Some(now + PX_INTERVAL);
            let request = PeerExchangeRpc::request(peer_exchange::DEFAULT_ASK);
            self.swarm.behaviour_mut().peer_exchange.send_request(&server, request);
        }
    }

    fn on_peer_exchange_event(
        &mut self,
        event: request_response::Event<PeerExchangeRpc, PeerExchangeRpc>,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    let wanted = request.query.map_or(0, |q| q.num_peers);
                    let wanted =
                        usize::try_from(wanted).unwrap_or(usize::MAX).min(peer_exchange::MAX_PEERS);
                    let offer: Vec<crate::enrtree::NodeRecord> = self
                        .px_cache
                        .iter()
                        .rev()
                        .filter(|(p, _)| *p != peer)
                        .take(wanted)
                        .map(|(_, r)| r.clone())
                        .collect();
                    self.stats.px_peers_sent += offer.len() as u64;
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .peer_exchange
                        .send_response(channel, PeerExchangeRpc::respond(&offer));
                }
                request_response::Message::Response { response, .. } => {
                    let cluster = self.config.cluster_id;
                    let offered = response.response.as_ref().map_or(0, |r| r.peer_infos.len());
                    let records = response.records();
                    let invalid = (offered - records.len()) as u64;
                    let peers: Vec<FoundPeer> = response
                        .records()
                        .into_iter()
                        .filter_map(|r| FoundPeer::from_record(r, cluster))
                        .collect();
                    self.stats.px_peers_received += peers.len() as u64;
                    if peers.is_empty() {
                        // The server had nothing yet (its discovery may still be starting).
                        self.next_px_query = Some(Instant::now() + PX_EMPTY_RETRY);
                    }
                    self.on_discovered(Discovered { origin: Origin::PeerExchange, peers, invalid });
                }
            },
            request_response::Event::OutboundFailure { peer, error, .. } => {
                tracing::debug!(target: "node::px", %peer, %error, "peer exchange request failed");
            }
            _ => {}
        }
    }

    fn connected(&self) -> Connected {
        let mut connected = Connected::default();
        for (peer, state) in &self.peers {
            connected.peers.insert(*peer, state.inbound);
            if let Some(ip) = ip_of(&state.address) {
                *connected.per_ip.entry(ip).or_default() += 1;
            }
        }
        connected.relay = self.relay_peers().into_iter().collect();
        connected
    }

    /// Dials toward the relay target, sheds surplus fleet connections, and goes back to the
    /// bootstrap sources when alone.
    fn manage_connections(&mut self) {
        let now = Instant::now();
        self.expire_filter_subscriptions(now);
        self.check_missed_pushes(now);
        self.service_peers.retain_most_used(1000);
        if self.peers.is_empty() {
            let since = *self.alone_since.get_or_insert(now);
            if now.duration_since(since) >= ALONE_RECOVERY {
                self.alone_since = Some(now);
                tracing::info!(target: "node", "no peers: going back to bootstrap sources");
                self.start_dns_discovery(Duration::ZERO);
            }
        } else {
            self.alone_since = None;
        }
        let connected = self.connected();
        for (peer, addrs) in self.peer_manager.dial_candidates(&connected, now) {
            if self.pending_dials.contains_key(&peer) {
                continue;
            }
            let opts = DialOpts::peer_id(peer).addresses(addrs).build();
            if let Err(error) = self.swarm.dial(opts) {
                tracing::debug!(target: "node", %peer, %error, "dial not started");
                self.peer_manager.on_dial_failure(&peer, now);
            }
        }
        self.maybe_ask_for_peers(connected.relay.len(), now);
        for peer in self.peer_manager.surplus_fleet_peers(&connected) {
            tracing::debug!(target: "node", %peer, "dropping a fleet peer for diversity");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn subscribe(&mut self, topic: &str) -> Result<(), NodeError> {
        if !self.config.relay {
            return Err(NodeError::RelayDisabled);
        }
        let ident = gossipsub::IdentTopic::new(topic);
        self.swarm
            .behaviour_mut()
            .relay
            .subscribe(&ident)
            .map_err(|e| NodeError::Config(e.to_string()))?;
        let _ = self.swarm.behaviour_mut().relay.set_topic_params(ident, relay::topic_params());
        self.subscribed.insert(topic.to_owned());
        Ok(())
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish { topic, message, reply } => {
                let _ = reply.send(self.publish(&topic, message));
            }
            Command::Subscribe { topic, subscribe, reply } => {
                let result = if subscribe {
                    self.subscribe(&topic)
                } else {
                    self.subscribed.remove(&topic);
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .relay
                        .unsubscribe(&gossipsub::IdentTopic::new(&topic));
                    Ok(())
                };
                let _ = reply.send(result);
            }
            Command::Dial { address, reply } => match peer_of(&address) {
                Some(peer) if self.swarm.is_connected(&peer) => {
                    let _ = reply.send(Ok(()));
                }
                Some(peer) => {
                    let opts = DialOpts::peer_id(peer).addresses(vec![address]).build();
                    match self.swarm.dial(opts) {
                        Ok(()) => self.pending_dials.entry(peer).or_default().push(reply),
                        Err(e) => {
                            let _ = reply.send(Err(NodeError::Dial(e.to_string())));
                        }
                    }
                }
                None => {
                    let _ = reply.send(Err(NodeError::Dial("address needs /p2p/<peer id>".into())));
                }
            },
            Command::Stats { reply } => {
                let _ = reply.send(self.stats());
            }
            Command::Peers { reply } => {
                let _ = reply.send(self.peer_list());
            }
            Command::StoreLocal { request, reply } => match self.archive.clone() {
                None => {
                    let _ = reply
                        .send(Err(NodeError::Request("store is not mounted on this node".into())));
                }
                Some(archive) => {
                    tokio::spawn(async move {
                        let _ = reply.send(Ok(store::answer(&archive, &request).await));
                    });
                }
            },
            Command::Store { peer, request, reply } => {
                let id = self.swarm.behaviour_mut().store.send_request(&peer, request);
                self.pending_store.insert(id, quality::Pending::new(reply, peer));
            }
            Command::Filter { peer, request, reply } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .filter_subscribe
                    .send_request(&peer, request.clone());
                self.pending_filter.insert(id, (quality::Pending::new(reply, peer), request));
            }
            Command::LightPush { peer, request, reply } => {
                let id = self.swarm.behaviour_mut().lightpush.send_request(&peer, request);
                self.pending_lightpush.insert(id, quality::Pending::new(reply, peer));
            }
            Command::ServicePeers { kind, reply } => {
                let _ = reply.send(self.ranked_service_peers(kind));
            }
            Command::Shutdown => {}
        }
    }

    fn publish(&mut self, topic: &str, message: WakuMessage) -> Result<MessageHash, NodeError> {
        if !self.config.relay {
            return Err(NodeError::RelayDisabled);
        }
        message.check_publishable(self.config.max_message_size)?;
        let hash = message.hash(topic);
        let data = message.encode_to_vec();
        match self.swarm.behaviour_mut().relay.publish(gossipsub::IdentTopic::new(topic), data) {
            Ok(_) => {
                self.stats.messages_published += 1;
                // Gossipsub never hands our own messages back, so local filter subscribers
                // (e.g. of a lightpushed message) are served here.
                self.push_to_subscribers(topic, &message);
                self.archive(topic, &message);
                Ok(hash)
            }
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                Err(NodeError::NoPeers(topic.to_owned()))
            }
            // The same bytes again: already relayed, which is what the caller wanted.
            Err(gossipsub::PublishError::Duplicate) => Ok(hash),
            Err(e) => Err(NodeError::Transport(e.to_string())),
        }
    }

    fn ranked_service_peers(
        &self,
        kind: crate::service_peers::ServiceKind,
    ) -> Vec<(PeerId, crate::service_peers::ServiceScore)> {
        use crate::service_peers::ServiceKind;
        let protocol = match kind {
            ServiceKind::Store => store::PROTOCOL.to_string(),
            ServiceKind::Filter => filter::SUBSCRIBE_PROTOCOL.to_string(),
            ServiceKind::Lightpush => lightpush::PROTOCOL_V3.to_string(),
        };
        let candidates: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, state)| state.protocols.contains(&protocol))
            .map(|(peer, _)| *peer)
            .collect();
        self.service_peers
            .rank(kind, &candidates)
            .into_iter()
            .map(|peer| (peer, self.service_peers.score(kind, &peer)))
            .collect()
    }

    fn relay_peers(&self) -> Vec<PeerId> {
        self.swarm
            .behaviour()
            .relay
            .all_peers()
            .filter(|(_, topics)| topics.iter().any(|t| self.subscribed.contains(t.as_str())))
            .map(|(peer, _)| *peer)
            .collect()
    }

    fn stats(&self) -> NodeStats {
        let mut stats = self.stats.clone();
        stats.peers_inbound = self.peers.values().filter(|p| p.inbound).count();
        stats.peers_outbound = self.peers.len() - stats.peers_inbound;
        stats.peers_by_protocol = BTreeMap::new();
        stats.peers_by_direction_protocol = BTreeMap::new();
        for peer in self.peers.values() {
            let direction = if peer.inbound { "in" } else { "out" };
            for protocol in &peer.protocols {
                *stats.peers_by_protocol.entry(protocol.clone()).or_default() += 1;
                *stats
                    .peers_by_direction_protocol
                    .entry((direction.to_owned(), protocol.clone()))
                    .or_default() += 1;
            }
        }
        let relay_peers = self.relay_peers();
        stats.relay_peers = relay_peers.len();
        stats.fleet_relay_share = (!relay_peers.is_empty()).then(|| {
            relay_peers.iter().filter(|p| self.peer_manager.is_fleet(p)).count() as f64
                / relay_peers.len() as f64
        });
        stats.known_peers = self.peer_manager.known_len();
        stats.filter_subscribers = self.filter_subscribers.len();
        stats.archive_errors = self.archive_errors.load(std::sync::atomic::Ordering::Relaxed);
        stats.discv5_table_size = self.discovery.as_ref().map_or(0, Discovery::table_size);
        stats.mesh_per_topic = self
            .subscribed
            .iter()
            .map(|t| {
                (t.clone(), self.swarm.behaviour().relay.mesh_peers(&relay::topic_hash(t)).count())
            })
            .collect();
        stats.time_to_target_relay_peers = self.reached_target;
        stats.uptime = self.started.elapsed();
        stats
    }

    fn peer_list(&self) -> Vec<PeerInfo> {
        let relay_peers: HashSet<PeerId> = self.relay_peers().into_iter().collect();
        self.peers
            .iter()
            .map(|(peer_id, state)| PeerInfo {
                peer_id: *peer_id,
                address: state.address.clone(),
                inbound: state.inbound,
                protocols: state.protocols.clone(),
                agent: state.agent.clone(),
                cluster: state.cluster,
                shards: state.shards.clone(),
                relay: relay_peers.contains(peer_id),
                origin: self.peer_manager.origin(peer_id),
                fleet: self.peer_manager.is_fleet(peer_id),
                score: self.swarm.behaviour().relay.peer_score(peer_id),
            })
            .collect()
    }

    fn emit(&self, event: NodeEvent) {
        // No listener is fine.
        let _ = self.events.send(event);
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                connection_id,
                ..
            } => {
                let inbound = endpoint.is_listener();
                let address = endpoint.get_remote_address().clone();
                if inbound
                    && num_established.get() == 1
                    && let Err(refusal) =
                        self.peer_manager.admit_inbound(ip_of(&address), &self.connected())
                {
                    tracing::debug!(target: "node", peer = %peer_id, %refusal, "refusing inbound connection");
                    self.stats.refused_inbound += 1;
                    self.swarm.close_connection(connection_id);
                    return;
                }
                self.peer_manager.on_connected(peer_id, &address, inbound);
                self.peers.entry(peer_id).or_insert_with(|| PeerState {
                    address,
                    inbound,
                    protocols: Vec::new(),
                    agent: None,
                    cluster: None,
                    shards: Vec::new(),
                });
                if num_established.get() == 1 {
                    let ours = WakuMetadata::new(self.config.cluster_id, &self.config.shards);
                    self.swarm.behaviour_mut().metadata.send_request(&peer_id, ours);
                    self.emit(NodeEvent::PeerConnected { peer: peer_id, inbound });
                }
                for reply in self.pending_dials.remove(&peer_id).unwrap_or_default() {
                    let _ = reply.send(Ok(()));
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. }
                if self.peers.remove(&peer_id).is_some() =>
            {
                self.emit(NodeEvent::PeerDisconnected { peer: peer_id });
            }
            SwarmEvent::OutgoingConnectionError { peer_id: Some(peer), error, .. } => {
                self.peer_manager.on_dial_failure(&peer, Instant::now());
                for reply in self.pending_dials.remove(&peer).unwrap_or_default() {
                    let _ = reply.send(Err(NodeError::Dial(error.to_string())));
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                if let Some(state) = self.peers.get_mut(&peer_id) {
                    state.protocols = info.protocols.iter().map(ToString::to_string).collect();
                    state.agent = Some(info.agent_version);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Relay(event)) => self.on_relay_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Metadata(event)) => self.on_metadata_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::PeerExchange(event)) => {
                self.on_peer_exchange_event(event)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Store(event)) => self.on_store_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::FilterSubscribe(event)) => {
                self.on_filter_subscribe_event(event)
            }
            SwarmEvent::Behaviour(BehaviourEvent::FilterPush(event)) => {
                self.on_filter_push_event(event)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Lightpush(event)) => {
                self.on_lightpush_event(event)
            }
            SwarmEvent::Behaviour(BehaviourEvent::LightpushLegacy(event)) => {
                self.on_lightpush_legacy_event(event)
            }
            _ => {}
        }
    }

    fn on_relay_event(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message { propagation_source, message_id, message } => {
                let verdict = self.validate(&message);
                let acceptance = match &verdict {
                    Ok(_) => gossipsub::MessageAcceptance::Accept,
                    Err(_) => gossipsub::MessageAcceptance::Reject,
                };
                let _ = self.swarm.behaviour_mut().relay.report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    acceptance,
                );
                match verdict {
                    Ok(waku) => {
                        self.stats.messages_received += 1;
                        let topic = message.topic.into_string();
                        let hash = waku.hash(&topic);
                        self.push_to_subscribers(&topic, &waku);
                        self.archive(&topic, &waku);
                        self.note_arrival(hash, &topic, &waku.content_topic, None);
                        self.emit(NodeEvent::Message {
                            topic,
                            hash,
                            message: Arc::new(waku),
                            from: propagation_source,
                        });
                    }
                    Err(error) => {
                        self.stats.invalid_messages += 1;
                        tracing::debug!(target: "node::relay", peer = %propagation_source, %error, "rejected message");
                    }
                }
            }
            gossipsub::Event::Subscribed { .. }
                if self.reached_target.is_none()
                    && self.relay_peers().len() >= TARGET_RELAY_PEERS =>
            {
                self.reached_target = Some(self.started.elapsed());
            }
            _ => {}
        }
    }

    fn validate(&self, message: &gossipsub::Message) -> Result<WakuMessage, MessageError> {
        let waku = WakuMessage::decode_bounded(&message.data, self.config.max_message_size)?;
        if let Some(drift) = self.config.max_timestamp_drift {
            let now = crate::message::now_ns();
            let stamp = waku.timestamp.unwrap_or(0);
            if (now - stamp).unsigned_abs() > drift.as_nanos() as u64 {
                return Err(MessageError::Decode(format!(
                    "timestamp {stamp} drifts more than {drift:?}"
                )));
            }
        }
        Ok(waku)
    }

    fn on_metadata_event(&mut self, event: request_response::Event<WakuMetadata, WakuMetadata>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    let ours = WakuMetadata::new(self.config.cluster_id, &self.config.shards);
                    let _ = self.swarm.behaviour_mut().metadata.send_response(channel, ours);
                    self.on_peer_metadata(peer, &request);
                }
                request_response::Message::Response { response, .. } => {
                    self.on_peer_metadata(peer, &response)
                }
            },
            request_response::Event::OutboundFailure { peer, error, .. } => {
                tracing::debug!(target: "node::metadata", %peer, %error, "metadata request failed");
            }
            _ => {}
        }
    }

    fn on_peer_metadata(&mut self, peer: PeerId, metadata: &WakuMetadata) {
        let ours = u32::from(self.config.cluster_id);
        let reason = match metadata.cluster_id {
            None => Some("peer sent no cluster id".to_owned()),
            Some(cluster) if cluster != ours => {
                Some(format!("peer is in cluster {cluster}, we are in {ours}"))
            }
            Some(_) => None,
        };
        if let Some(reason) = reason {
            self.stats.metadata_rejections += 1;
            tracing::info!(target: "node::metadata", %peer, %reason, "disconnecting peer");
            let _ = self.swarm.disconnect_peer_id(peer);
            self.emit(NodeEvent::PeerRejected { peer, reason });
            return;
        }
        let shards = metadata.shard_list();
        if let Some(state) = self.peers.get_mut(&peer) {
            state.cluster = metadata.cluster_id;
            state.shards.clone_from(&shards);
        }
        self.emit(NodeEvent::Metadata { peer, cluster: ours, shards });
    }
}
