//! The running node: a libp2p swarm driven by one task, and the [`NodeHandle`] other code talks
//! to it through.
//!
//! The task owns all state; the handle sends commands over a bounded channel and gets answers on
//! oneshot channels. Events (messages, peers) go out on a bounded broadcast channel: a slow
//! listener loses the oldest events instead of stalling the node.
//!
//! # Layout
//!
//! - this file — [`start`], the task's state and its event loop: commands, swarm events.
//! - [`handle`] — [`NodeHandle`] and the commands it sends; [`events`] — [`NodeEvent`],
//!   [`PeerInfo`], [`NodeStats`]; [`error`] — [`NodeError`].
//! - `swarm` — transports and the behaviours Waku mounts; `local_enr` — the ENR this node
//!   announces.
//! - One file per protocol, each the task's handling of it: `relay`, `metadata`, `discovery`
//!   (DNS trees, discv5, peer exchange), `connections` (dials, limits, diversity), `store`,
//!   `filter`, `lightpush` (serving them, and asking service peers as a client).
//! - [`service_peers`] — the quality of the service peers this node uses as a client.

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
    swarm::{SwarmEvent, dial_opts::DialOpts},
};
use tokio::sync::{broadcast, mpsc, oneshot};

mod connections;
mod discovery;
pub mod error;
pub mod events;
mod filter;
pub mod handle;
mod lightpush;
mod local_enr;
mod metadata;
mod relay;
pub mod service_peers;
mod store;
mod swarm;

pub use error::NodeError;
pub use events::{AdminView, KnownPeer, NodeEvent, NodeStats, PeerInfo};
pub use handle::NodeHandle;

use crate::{
    config::NodeConfig,
    discovery_v5::Discovery,
    enrtree::record::Enr,
    metadata::WakuMetadata,
    peers::{Origin, PeerManager, ip_of, peer_of},
    topics::ShardTopic,
    waku_enr,
};
use connections::PeerState;
use discovery::{Discovered, FoundPeers};
use handle::Command;
use local_enr::build_local_enr;
use store::enforce_retention;
use swarm::{Behaviour, BehaviourEvent, build_swarm, wait_for_listeners};

/// Relay peers a node aims for; also the mark for "bootstrapped".
pub const TARGET_RELAY_PEERS: usize = 6;
/// Commands queued from handles before senders wait.
const COMMAND_CAPACITY: usize = 256;
/// Once every listener reported an address, how long to wait for more of them (the other
/// interfaces of a listener on 0.0.0.0).
const LISTEN_SETTLE: Duration = Duration::from_millis(50);
/// How long start-up waits for the listeners to report their addresses.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often connections are reviewed (dials, limits, diversity).
const MANAGE_INTERVAL: Duration = Duration::from_secs(1);
/// How long a relay topic's mesh may stay below D_low before the node dials more relay peers
/// for it: a few heartbeats, time for gossipsub to graft the peers it has.
const MESH_THIN_PATIENCE: Duration = Duration::from_secs(5);
/// How long a relay peer must have been connected before a thin node counts it as one that
/// keeps it out of its mesh: a thin node grafts every peer it can at each heartbeat, so one
/// still outside after this many has refused or pruned it (and holds it off for a minute).
const MESH_GRAFT_CHANCE: Duration = Duration::from_secs(20);
/// A thin node trades at most one relay peer this often.
const MESH_ROTATE_EVERY: Duration = Duration::from_secs(5);
/// A connection we dialled that the peer closes within this was refused (see
/// `on_swarm_event`).
const REFUSED_WITHIN: Duration = Duration::from_secs(10);
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

/// What never changes while the node runs.
#[derive(Debug)]
struct Identity {
    peer_id: PeerId,
    listen_addrs: Vec<Multiaddr>,
    enr: Enr,
    cluster: u16,
    num_shards_in_network: u16,
    mounted: crate::health::Mounted,
}

/// The swarm task's state: what every part shares here, each protocol's own in its file.
struct Service {
    swarm: Swarm<Behaviour>,
    config: NodeConfig,
    events: broadcast::Sender<NodeEvent>,
    peers: HashMap<PeerId, PeerState>,
    subscribed: HashSet<String>,
    started: Instant,
    reached_target: Option<Duration>,
    stats: NodeStats,
    /// Bytes over every TCP connection, counted by the transport.
    bytes: Arc<crate::tcp_transport::ByteCounters>,
    store: store::StoreState,
    filter: filter::FilterServer,
    client: service_peers::ClientState,
    discovery: discovery::DiscoveryState,
    connections: connections::ConnectionState,
}

/// Refuses a fixed port another socket listens on. libp2p's TCP listeners set SO_REUSEPORT,
/// so two nodes (or a node and any other SO_REUSEPORT server) could both listen on one port
/// and split its inbound connections without an error; a plain bind first (SO_REUSEADDR only)
/// fails on any listener there. Port 0 always gets a fresh port.
fn ensure_port_free(ip: IpAddr, port: u16, address: &Multiaddr) -> Result<(), NodeError> {
    if port == 0 {
        return Ok(());
    }
    match std::net::TcpListener::bind((ip, port)) {
        Ok(probe) => {
            drop(probe);
            Ok(())
        }
        Err(cause) => Err(NodeError::Listen { address: address.clone(), cause: cause.into() }),
    }
}

/// Starts a node; returns its handle and the task that runs it.
pub async fn start(
    config: NodeConfig,
) -> Result<(NodeHandle, tokio::task::JoinHandle<()>), NodeError> {
    let keypair = waku_enr::keypair(&config.key).map_err(NodeError::setup("the node key"))?;
    let peer_id = keypair.public().to_peer_id();
    let bytes = Arc::new(crate::tcp_transport::ByteCounters::default());
    let mut swarm = build_swarm(keypair, &config, bytes.clone()).await?;

    let ip_protocol = match config.listen_ip {
        IpAddr::V4(ip) => Protocol::Ip4(ip),
        IpAddr::V6(ip) => Protocol::Ip6(ip),
    };
    let tcp_addr =
        Multiaddr::empty().with(ip_protocol.clone()).with(Protocol::Tcp(config.tcp_port));
    let mut listeners = Vec::new();
    ensure_port_free(config.listen_ip, config.tcp_port, &tcp_addr)?;
    listeners.push(
        swarm
            .listen_on(tcp_addr.clone())
            .map_err(|e| NodeError::Listen { address: tcp_addr, cause: e.into() })?,
    );
    if let Some(port) = config.websocket_port {
        let ws = Multiaddr::empty()
            .with(ip_protocol.clone())
            .with(Protocol::Tcp(port))
            .with(Protocol::Ws("/".into()));
        ensure_port_free(config.listen_ip, port, &ws)?;
        listeners.push(
            swarm
                .listen_on(ws.clone())
                .map_err(|e| NodeError::Listen { address: ws, cause: e.into() })?,
        );
    }
    if let Some(wss) = &config.websocket_secure {
        let addr = Multiaddr::empty()
            .with(ip_protocol)
            .with(Protocol::Tcp(wss.port))
            .with(Protocol::Wss("/".into()));
        ensure_port_free(config.listen_ip, wss.port, &addr)?;
        listeners.push(
            swarm
                .listen_on(addr.clone())
                .map_err(|e| NodeError::Listen { address: addr, cause: e.into() })?,
        );
    }
    let listen_addrs = wait_for_listeners(&mut swarm, &listeners).await?;

    let discv5_socket = match &config.discv5 {
        Some(d) => {
            let ip = config.listen_ip;
            Some(
                crate::discovery_v5::bind(ip, d.udp_port)
                    .await
                    .map_err(NodeError::setup("the discv5 UDP socket"))?,
            )
        }
        None => None,
    };
    let udp_port = discv5_socket.as_ref().and_then(|s| s.local_addr().ok()).map(|a| a.port());
    let discv5_enr = build_local_enr(&config, &listen_addrs, udp_port)?;
    let enr: Enr = discv5_enr
        .to_base64()
        .parse::<crate::enrtree::NodeRecord>()
        .map_err(NodeError::setup("the local ENR"))?
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
                config.shards.clone(),
                discv5_tx,
            )
            .await
            .map_err(NodeError::setup("discv5"))?,
        ),
        _ => None,
    };
    let identity = Arc::new(Identity {
        peer_id,
        listen_addrs: listen_addrs.iter().map(|a| a.clone().with(Protocol::P2p(peer_id))).collect(),
        enr,
        cluster: config.cluster_id,
        num_shards_in_network: config.num_shards_in_network,
        mounted: crate::health::Mounted {
            relay: config.relay,
            store: config.store_url.is_some(),
            filter: config.filter,
            lightpush: config.lightpush,
            peer_exchange: config.peer_exchange,
        },
    });
    let (events, _) = broadcast::channel(config.event_capacity.max(16));
    let (commands, receiver) = mpsc::channel(COMMAND_CAPACITY);
    let (discovered_tx, discovered_rx) = mpsc::channel(DISCOVERY_CAPACITY);
    let archive = match &config.store_url {
        Some(url) => Some(
            crate::store::archive::Archive::connect(url)
                .await
                .map_err(NodeError::setup("the store database"))?,
        ),
        None => None,
    };
    let archive_errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (retention_stop, retention_stopped) = oneshot::channel();
    let archive_queue = archive.clone().map(|archive| {
        let (tx, rx) = mpsc::channel(store::ARCHIVE_QUEUE);
        tokio::spawn(store::archive_writer(archive.clone(), rx, archive_errors.clone()));
        if let Some(retention) = config.store_retention {
            tokio::spawn(enforce_retention(archive, retention, retention_stopped));
        }
        tx
    });
    let (store_answers, store_answers_rx) = mpsc::channel(COMMAND_CAPACITY);
    let mut service = Service {
        swarm,
        store: store::StoreState {
            archive,
            archive_queue,
            archive_errors,
            _retention_stop: retention_stop,
            store_answers,
            query_slots: Arc::new(tokio::sync::Semaphore::new(config.max_store_queries_in_flight)),
        },
        filter: filter::FilterServer { subscribers: HashMap::new() },
        client: service_peers::ClientState {
            pending_store: HashMap::new(),
            pending_filter: HashMap::new(),
            filter_client: HashMap::new(),
            recent: HashMap::new(),
            service_peers: service_peers::ServicePeers::default(),
            pending_lightpush: HashMap::new(),
        },
        discovery: discovery::DiscoveryState {
            px_cache: std::collections::VecDeque::new(),
            next_px_query: None,
            px_asked: 0,
            discv5: discovery,
            discovered_tx,
            dns_running: false,
        },
        connections: connections::ConnectionState {
            peer_manager: PeerManager::new(
                config.peer_manager.clone(),
                config.fleet_peers.iter().copied(),
            ),
            alone_since: Some(Instant::now()),
            mesh_thin_since: None,
            next_rotation: Instant::now(),
            pending_dials: HashMap::new(),
        },
        config,
        events: events.clone(),
        peers: HashMap::new(),
        subscribed: HashSet::new(),
        started: Instant::now(),
        reached_target: None,
        stats: NodeStats::default(),
        bytes,
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
            Some(peer) => service.connections.peer_manager.add(peer, vec![address], Origin::Static),
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

/// A random request id (16 random bytes, hex).
pub(crate) fn request_id() -> String {
    let mut bytes = [0u8; 16];
    crate::crypto::random_bytes(&mut bytes);
    data_encoding::HEXLOWER.encode(&bytes)
}

impl Service {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut discovered: mpsc::Receiver<Discovered>,
        mut discv5_found: mpsc::Receiver<FoundPeers>,
        mut store_answers: mpsc::Receiver<store::StoreAnswer>,
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
                        Ok(()) => {
                            self.connections.pending_dials.entry(peer).or_default().push(reply)
                        }
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
            Command::Fleet { records, peer_ids, reply } => {
                self.on_fleet_hint(records, peer_ids);
                let _ = reply.send(());
            }
            Command::Peers { reply } => {
                let _ = reply.send(self.peer_list());
            }
            Command::Admin { reply } => {
                let _ = reply.send(self.admin_view());
            }
            Command::StoreLocal { request, reply } => match self.store.archive.clone() {
                None => {
                    let _ = reply
                        .send(Err(NodeError::Request("store is not mounted on this node".into())));
                }
                Some(archive) => {
                    tokio::spawn(async move {
                        let _ = reply.send(Ok(crate::store::answer(&archive, &request).await));
                    });
                }
            },
            Command::Store { peer, request, reply } => {
                let id = self.swarm.behaviour_mut().store.send_request(&peer, request);
                self.client.pending_store.insert(id, service_peers::Pending::new(reply, peer));
            }
            Command::Filter { peer, request, reply } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .filter_subscribe
                    .send_request(&peer, request.clone());
                self.client
                    .pending_filter
                    .insert(id, (service_peers::Pending::new(reply, peer), request));
            }
            Command::LightPush { peer, request, reply } => {
                let id = self.swarm.behaviour_mut().lightpush.send_request(&peer, request);
                self.client.pending_lightpush.insert(id, service_peers::Pending::new(reply, peer));
            }
            Command::ServicePeers { kind, reply } => {
                let _ = reply.send(self.ranked_service_peers(kind));
            }
            Command::Shutdown => {}
        }
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
            relay_peers.iter().filter(|p| self.connections.peer_manager.is_fleet(p)).count() as f64
                / relay_peers.len() as f64
        });
        stats.known_peers = self.connections.peer_manager.known_len();
        stats.filter_subscribers = self.filter.subscribers.len();
        stats.archive_errors = self.store.archive_errors.load(std::sync::atomic::Ordering::Relaxed);
        stats.discv5_table_size = self.discovery.discv5.as_ref().map_or(0, Discovery::table_size);
        stats.discv5_lookups = self.discovery.discv5.as_ref().map_or(0, Discovery::lookups);
        stats.mesh_per_topic = self
            .subscribed
            .iter()
            .map(|t| {
                (
                    t.clone(),
                    self.swarm.behaviour().relay.mesh_peers(&crate::relay::topic_hash(t)).count(),
                )
            })
            .collect();
        stats.time_to_target_relay_peers = self.reached_target;
        stats.uptime = self.started.elapsed();
        stats.bytes_received = self.bytes.received();
        stats.bytes_sent = self.bytes.sent();
        stats
    }

    fn peer_list(&self) -> Vec<PeerInfo> {
        let relay_peers: HashSet<PeerId> = self.relay_peers().into_iter().collect();
        let relay = &self.swarm.behaviour().relay;
        let mut relay_topics: HashMap<PeerId, Vec<String>> = HashMap::new();
        for (peer, topics) in relay.all_peers() {
            let ours = topics.iter().map(|t| t.as_str()).filter(|t| self.subscribed.contains(*t));
            relay_topics.entry(*peer).or_default().extend(ours.map(str::to_owned));
        }
        let mut mesh_topics: HashMap<PeerId, Vec<String>> = HashMap::new();
        for topic in &self.subscribed {
            for peer in relay.mesh_peers(&crate::relay::topic_hash(topic)) {
                mesh_topics.entry(*peer).or_default().push(topic.clone());
            }
        }
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
                origin: self.connections.peer_manager.origin(peer_id),
                fleet: self.connections.peer_manager.is_fleet(peer_id),
                score: self.swarm.behaviour().relay.peer_score(peer_id),
                relay_topics: relay_topics.remove(peer_id).unwrap_or_default(),
                mesh_topics: mesh_topics.remove(peer_id).unwrap_or_default(),
            })
            .collect()
    }

    fn admin_view(&self) -> AdminView {
        let known = self
            .connections
            .peer_manager
            .known_peers()
            .filter(|(peer, ..)| !self.peers.contains_key(peer))
            .map(|(peer_id, address, origin, failures)| KnownPeer {
                peer_id,
                address,
                origin,
                failures,
            })
            .collect();
        let mut relay_topics: Vec<String> = self.subscribed.iter().cloned().collect();
        relay_topics.sort();
        AdminView {
            cluster: self.config.cluster_id,
            relay_topics,
            relay: self.config.relay,
            filter: self.config.filter,
            connected: self.peer_list(),
            known,
            filter_subscriptions: self.filter.subscriptions(),
        }
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
                    && let Err(refusal) = self.connections.peer_manager.admit_inbound(
                        &peer_id,
                        ip_of(&address),
                        &self.connected(),
                    )
                {
                    tracing::debug!(target: "node", peer = %peer_id, %refusal, "refusing inbound connection");
                    self.stats.refused_inbound += 1;
                    self.swarm.close_connection(connection_id);
                    return;
                }
                self.connections.peer_manager.on_connected(peer_id, &address, inbound);
                self.peers.entry(peer_id).or_insert_with(|| PeerState {
                    address,
                    inbound,
                    protocols: Vec::new(),
                    agent: None,
                    cluster: None,
                    shards: Vec::new(),
                    since: Instant::now(),
                });
                if num_established.get() == 1 {
                    let ours = WakuMetadata::new(self.config.cluster_id, &self.config.shards);
                    self.swarm.behaviour_mut().metadata.send_request(&peer_id, ours);
                    self.emit(NodeEvent::PeerConnected { peer: peer_id, inbound });
                }
                for reply in self.connections.pending_dials.remove(&peer_id).unwrap_or_default() {
                    let _ = reply.send(Ok(()));
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, cause, .. }
                if let Some(state) = self.peers.remove(&peer_id) =>
            {
                // A peer that closes what we dialled at once is full (or sheds us past its
                // slots or its inbound relay cap): dialled again at once, the two spun in
                // handshakes, a fleet node and each client it had no room for, many times a
                // second.
                // Only the peer's close counts (libp2p gives no cause for our own): a peer
                // we drop at once (another cluster, diversity, a mesh trade) is not one that
                // refused us.
                if !state.inbound {
                    let pm = &mut self.connections.peer_manager;
                    let quick = state.since.elapsed() < REFUSED_WITHIN;
                    if !quick {
                        pm.on_kept(&peer_id);
                    } else if cause.is_some() {
                        pm.on_refused(&peer_id, Instant::now());
                    }
                }
                self.emit(NodeEvent::PeerDisconnected { peer: peer_id });
                self.dial_more();
            }
            SwarmEvent::OutgoingConnectionError { peer_id: Some(peer), error, .. } => {
                self.stats.dials_failed += 1;
                self.connections.peer_manager.on_dial_failure(&peer, Instant::now());
                for reply in self.connections.pending_dials.remove(&peer).unwrap_or_default() {
                    let _ = reply.send(Err(NodeError::Dial(error.to_string())));
                }
                self.dial_more();
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
                // The first peer exchange server a node short of peers meets is asked at once,
                // not at the next connection-management tick: a second of every bootstrap
                // went to waiting for that tick.
                if info.protocols.contains(&crate::peer_exchange::PROTOCOL) {
                    let relay_peers = self.relay_peers().len();
                    self.maybe_ask_for_peers(relay_peers, Instant::now());
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(libp2p::ping::Event {
                peer,
                connection,
                result: Err(failure),
            })) if !matches!(failure, libp2p::ping::Failure::Unsupported) => {
                // A host that crashed or lost its network sends no FIN: without this its
                // connection stays open, and in the relay mesh, until TCP gives up minutes
                // later. Ping asks every 15 s and waits 20 s.
                tracing::debug!(%peer, %failure, "closing a connection whose ping failed");
                self.swarm.close_connection(connection);
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
}
