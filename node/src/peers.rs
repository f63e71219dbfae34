//! The peer manager: which known peers to dial, which inbound connections to refuse, and how to
//! keep a node's relay mesh off a handful of fleet nodes. Pure decisions with `now` passed in;
//! the service does the I/O.
//!
//! Rules:
//! - aim for [`PeerManagerConfig::target_relay_peers`] relay peers (6, like nwaku);
//! - never exceed `max_connections`, and keep inbound connections to `max_inbound_share` of it
//!   so the node can always dial out;
//! - split `max_connections` between relay peers and service peers (light clients and the
//!   peers we use for store, filter, lightpush) by `relay_share`, nwaku's
//!   `--relay-service-ratio` (50:50 in v0.38): relay slots = ceil(max × share), service slots
//!   = the rest, so light clients can never crowd out the relay mesh, nor relay peers the
//!   clients; inbound peers over their slots are shed once identify says which kind they are;
//! - at most `max_peers_per_ip` peers per IP address (nwaku's colocation limit, 5);
//! - failed dials back off exponentially, up to `backoff_max`;
//! - prefer peers outside the fleet: fleet nodes (bootstrap: static, DNS tree, configured) are
//!   dialed when nothing else is known, and once enough other relay peers exist, surplus fleet
//!   connections are dropped while the fleet holds more than `max_fleet_share` of the relay peers.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    time::{Duration, Instant},
};

use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};

/// Where a peer was learned from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// Configured static node.
    Static,
    /// EIP-1459 DNS tree.
    Dns,
    /// discv5.
    Discv5,
    /// Peer exchange.
    PeerExchange,
    /// It dialed us.
    Inbound,
}

impl Origin {
    /// nwaku's names for origins (REST `origin` field).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "Static",
            Self::Dns => "Dns",
            Self::Discv5 => "Discv5",
            Self::PeerExchange => "PeerExchange",
            Self::Inbound => "UnknownOrigin",
        }
    }

    /// Whether peers from here are fleet (bootstrap) nodes.
    pub fn is_bootstrap(self) -> bool {
        matches!(self, Self::Static | Self::Dns)
    }
}

/// A node whose mesh stays thin dials up to this many relay peers beyond its relay target (as
/// many again); there it trades peers instead ([`PeerManager::rotate_out`]). nwaku aims for a
/// third of its relay slots as outbound peers alone (25 at its defaults).
pub const MESH_DIAL_EXTRA: usize = 6;
/// How long a peer traded away for a thin mesh is not dialled again.
pub const ROTATED_HOLD: Duration = Duration::from_secs(600);
/// How long a peer that refused us is first held off (see [`PeerManager::on_refused`]).
pub const REFUSED_HOLD: Duration = Duration::from_secs(30);

/// Most peer ids a node keeps as its fleet's.
pub const MAX_FLEET_PEERS: usize = 4096;

/// A peer a discovery source found: where to dial it and, when known, its record.
#[derive(Debug, Clone)]
pub struct FoundPeer {
    /// Its peer id.
    pub peer_id: PeerId,
    /// Its dial addresses (with `/p2p`).
    pub addrs: Vec<Multiaddr>,
    /// Its ENR, which peer exchange can pass on.
    pub record: Option<crate::enrtree::NodeRecord>,
}

impl FoundPeer {
    /// The dialable Waku peer of `record`, if it is in `cluster` (or announces no shards).
    pub fn from_record(record: crate::enrtree::NodeRecord, cluster: u16) -> Option<Self> {
        let waku = crate::waku_enr::WakuEnr::decode(record.enr()).ok()?;
        if waku.shards.as_ref().is_some_and(|s| s.cluster != cluster) {
            return None;
        }
        let addrs = waku.dial_addresses();
        (!addrs.is_empty()).then_some(Self { peer_id: waku.peer_id, addrs, record: Some(record) })
    }
}

/// Limits and targets.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerManagerConfig {
    /// Relay peers to aim for. Default: 6.
    pub target_relay_peers: usize,
    /// Connected peers at most. Default: 150 (nwaku v0.38's `--max-connections`).
    pub max_connections: usize,
    /// Share of `max_connections` for relay peers; the rest is for service peers. Default: 0.5
    /// (nwaku v0.38's `--relay-service-ratio` 50:50).
    pub relay_share: f64,
    /// Share of `max_connections` that inbound peers may take. Default: 0.6.
    pub max_inbound_share: f64,
    /// Peers per IP address at most; 0 disables. Default: 5.
    pub max_peers_per_ip: usize,
    /// Largest share of relay peers that fleet nodes should hold. Default: 0.5.
    pub max_fleet_share: f64,
    /// First dial backoff. Default: 2 s.
    pub backoff_base: Duration,
    /// Longest dial backoff. Default: 10 min.
    pub backoff_max: Duration,
    /// Known peers kept at most. Default: 1000.
    pub max_known_peers: usize,
    /// Relay peers that dialled us kept at most, outside the fleet; 0: no cap. Default: 12,
    /// twice the relay target (nwaku keeps twice as many inbound relay peers as it dials).
    pub max_inbound_relay_peers: usize,
}

impl Default for PeerManagerConfig {
    fn default() -> Self {
        Self {
            target_relay_peers: 6,
            max_connections: 150,
            relay_share: 0.5,
            max_inbound_share: 0.6,
            max_peers_per_ip: 5,
            max_fleet_share: 0.5,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(600),
            max_known_peers: 1000,
            max_inbound_relay_peers: 12,
        }
    }
}

#[derive(Debug, Clone)]
struct Known {
    addrs: Vec<Multiaddr>,
    origin: Origin,
    failures: u32,
    /// Connections it closed at once since the last it kept ([`PeerManager::on_refused`]):
    /// unlike `failures`, not cleared by the connection it then closed.
    refusals: u32,
    retry_at: Option<Instant>,
}

/// Why an inbound connection is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `max_connections` reached.
    #[error("connection limit reached")]
    Full,
    /// Inbound share used up.
    #[error("inbound connection limit reached")]
    InboundFull,
    /// Too many peers from this IP.
    #[error("too many peers from {0}")]
    Colocation(IpAddr),
}

/// The connections as the service sees them when asking for decisions.
#[derive(Debug, Clone, Default)]
pub struct Connected {
    /// Connected peers and whether they dialed us.
    pub peers: HashMap<PeerId, bool>,
    /// Connected peers per remote IP.
    pub per_ip: HashMap<IpAddr, usize>,
    /// Peers relaying on our topics.
    pub relay: HashSet<PeerId>,
    /// Identified peers that do not relay on our topics: service peers (light clients, or
    /// store/filter/lightpush servers we use).
    pub service: HashSet<PeerId>,
    /// Whether a relay topic's gossipsub mesh has stayed below D_low for a while: the relay
    /// peers the node has will not take it into their meshes (see
    /// [`PeerManager::dial_candidates`]).
    pub mesh_thin: bool,
    /// When each connected peer connected.
    pub since: HashMap<PeerId, Instant>,
}

/// Known peers and the decisions over them.
#[derive(Debug, Clone, Default)]
pub struct PeerManager {
    config: PeerManagerConfig,
    known: HashMap<PeerId, Known>,
    fleet: HashSet<PeerId>,
    /// Whether this node is itself one of the fleet's (its agent passes on the controller's
    /// fleet hint, which only fleet nodes get).
    in_fleet: bool,
    /// This node's own order among equally good candidates (see [`Self::dial_candidates`]).
    salt: u64,
}

impl PeerManager {
    /// A manager; `fleet` names nodes of our own fleet besides those learned from bootstrap
    /// sources.
    pub fn new(config: PeerManagerConfig, fleet: impl IntoIterator<Item = PeerId>) -> Self {
        let mut salt = [0u8; 8];
        crate::crypto::random_bytes(&mut salt);
        Self {
            config,
            known: HashMap::new(),
            fleet: fleet.into_iter().collect(),
            in_fleet: false,
            salt: u64::from_le_bytes(salt),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PeerManagerConfig {
        &self.config
    }

    /// Learns a peer's addresses. The first origin sticks, except that a bootstrap origin wins
    /// (a peer listed in the fleet's tree is a fleet node however it was first met).
    pub fn add(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, origin: Origin) {
        if origin.is_bootstrap() {
            self.fleet.insert(peer);
        }
        if let Some(known) = self.known.get_mut(&peer) {
            for addr in addrs {
                if !known.addrs.contains(&addr) {
                    known.addrs.push(addr);
                }
            }
            if origin.is_bootstrap() {
                known.origin = origin;
            }
            return;
        }
        if self.known.len() >= self.config.max_known_peers && !self.evict_one() {
            return;
        }
        self.known.insert(peer, Known { addrs, origin, failures: 0, refusals: 0, retry_at: None });
    }

    /// Drops the least useful non-bootstrap peer (most failures) to make room.
    fn evict_one(&mut self) -> bool {
        let victim = self
            .known
            .iter()
            .filter(|(_, k)| !k.origin.is_bootstrap())
            .max_by_key(|(_, k)| k.failures)
            .map(|(p, _)| *p);
        victim.map(|p| self.known.remove(&p)).is_some()
    }

    /// Counts `peers` as fleet nodes from now on (the controller's list), up to
    /// [`MAX_FLEET_PEERS`] in all.
    pub fn add_fleet(&mut self, peers: impl IntoIterator<Item = PeerId>) {
        for peer in peers {
            if self.fleet.len() >= MAX_FLEET_PEERS {
                break;
            }
            self.fleet.insert(peer);
        }
    }

    /// This node is one of the fleet's: its fleet peers are never shed for diversity.
    pub fn join_fleet(&mut self) {
        self.in_fleet = true;
    }

    /// Whether `peer` is one of the fleet's own nodes.
    pub fn is_fleet(&self, peer: &PeerId) -> bool {
        self.fleet.contains(peer)
    }

    /// Where the peer was learned from, if known.
    pub fn origin(&self, peer: &PeerId) -> Option<Origin> {
        self.known.get(peer).map(|k| k.origin)
    }

    /// Every known peer: id, first address, origin, failed dials since the last success.
    pub fn known_peers(
        &self,
    ) -> impl Iterator<Item = (PeerId, Option<Multiaddr>, Origin, u32)> + '_ {
        self.known.iter().map(|(peer, k)| (*peer, k.addrs.first().cloned(), k.origin, k.failures))
    }

    /// Number of known peers.
    pub fn known_len(&self) -> usize {
        self.known.len()
    }

    /// A connection came up: forget past failures.
    pub fn on_connected(&mut self, peer: PeerId, address: &Multiaddr, inbound: bool) {
        match self.known.get_mut(&peer) {
            Some(known) => {
                known.failures = 0;
                known.retry_at = None;
            }
            None if inbound => self.add(peer, vec![address.clone()], Origin::Inbound),
            None => self.add(peer, vec![address.clone()], Origin::Static),
        }
    }

    /// A peer closed at once a connection we dialled: it is full, or past its inbound relay
    /// cap. Held off [`REFUSED_HOLD`], doubling with each refusal in a row up to
    /// `backoff_max`. A failed dial's backoff would not do: the connection had come up, which
    /// clears the failures, so every refusal was the first and the peer was dialled again
    /// 2 s later (10 refused connections per node in a 1,000-node run, each a handshake).
    pub fn on_refused(&mut self, peer: &PeerId, now: Instant) {
        if let Some(known) = self.known.get_mut(peer) {
            known.refusals = known.refusals.saturating_add(1);
            let factor = 2u32.saturating_pow(known.refusals.saturating_sub(1).min(16));
            let hold = REFUSED_HOLD.saturating_mul(factor).min(self.config.backoff_max);
            known.retry_at = Some(now + hold);
        }
    }

    /// A peer kept a connection past the refusal window: its refusals are over.
    pub fn on_kept(&mut self, peer: &PeerId) {
        if let Some(known) = self.known.get_mut(peer) {
            known.refusals = 0;
        }
    }

    /// A dial failed: back off.
    pub fn on_dial_failure(&mut self, peer: &PeerId, now: Instant) {
        if let Some(known) = self.known.get_mut(peer) {
            known.failures = known.failures.saturating_add(1);
            let factor = 2u32.saturating_pow(known.failures.saturating_sub(1).min(16));
            let delay =
                self.config.backoff_base.saturating_mul(factor).min(self.config.backoff_max);
            known.retry_at = Some(now + delay);
        }
    }

    /// Whether to keep an inbound connection from `ip`.
    pub fn admit_inbound(
        &self,
        peer: &PeerId,
        ip: Option<IpAddr>,
        connected: &Connected,
    ) -> Result<(), Refusal> {
        if connected.peers.len() >= self.config.max_connections {
            return Err(Refusal::Full);
        }
        let inbound = connected.peers.values().filter(|&&i| i).count();
        let inbound_cap =
            (self.config.max_connections as f64 * self.config.max_inbound_share).floor() as usize;
        // A fleet node lets a fellow fleet node in past its inbound share: when a network
        // starts, every client rushes the few nodes the tree lists and fills their inbound
        // slots in seconds, and the fleet's own links are what must not be refused.
        let fellow = self.in_fleet && self.is_fleet(peer);
        if inbound >= inbound_cap.max(1) && !fellow {
            return Err(Refusal::InboundFull);
        }
        if let Some(ip) = ip
            && self.config.max_peers_per_ip > 0
            && connected.per_ip.get(&ip).copied().unwrap_or(0) >= self.config.max_peers_per_ip
        {
            return Err(Refusal::Colocation(ip));
        }
        Ok(())
    }

    /// Peers to dial now: not connected, not backing off, within the IP limit; non-fleet peers
    /// first, then fewer failures, then in this node's own random order. Asks for enough to
    /// reach the relay target, and for extra non-fleet peers while the fleet holds too large a
    /// share or while the mesh stays thin (up to [`MESH_DIAL_EXTRA`] beyond the target, then
    /// [`Self::rotate_out`]).
    ///
    /// A thin mesh with relay peers to spare is a node nobody dialled: every peer it has is
    /// one it dialled, popular with others too, whose mesh is full (D_high), so each refuses
    /// its GRAFT or prunes it at the next heartbeat, with a minute's backoff. In a 500-node
    /// simulation such nodes held 7-12 relay peers, all outbound, each with 25-75 relay peers
    /// and a mesh of 6-8, and had meshes of 0-3. Peers like itself have room.
    ///
    /// The last key matters at scale: ordered by peer id, every node of a network preferred
    /// the same few peers, which filled their inbound slots, refused the rest and sent them
    /// into backoff (seen in simulations with real round trips).
    pub fn dial_candidates(
        &self,
        connected: &Connected,
        now: Instant,
    ) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let relay = connected.relay.len();
        // Candidates are dialed for relay: they take relay slots.
        let room = self
            .config
            .max_connections
            .saturating_sub(connected.peers.len())
            .min(self.slots().0.saturating_sub(relay));
        let fleet_relay = connected.relay.iter().filter(|p| self.is_fleet(p)).count();
        let want_total = self.config.target_relay_peers.saturating_sub(relay);
        let for_mesh = connected.mesh_thin && relay < self.mesh_ceiling();
        let want_extra =
            if self.fleet_share_too_high(relay, fleet_relay) || for_mesh { 2 } else { 0 };
        // Nothing wanted, or no room: no need to sort every known peer (this runs every
        // second and on every connection event; a node knows up to a thousand peers).
        if room == 0 || want_total + want_extra == 0 {
            return Vec::new();
        }
        let mut candidates: Vec<(&PeerId, &Known)> = self.dialable_now(connected, now).collect();
        candidates.sort_by_cached_key(|(peer, known)| {
            (self.is_fleet(peer), known.failures, self.order(peer))
        });
        let mut per_ip = connected.per_ip.clone();
        let mut out = Vec::new();
        for (peer, known) in candidates {
            if out.len() >= room {
                break;
            }
            let fleet = self.is_fleet(peer);
            let wanted = out.len() < want_total || (!fleet && out.len() < want_total + want_extra);
            if !wanted {
                continue;
            }
            if let Some(ip) = known.addrs.iter().find_map(ip_of) {
                let used = per_ip.entry(ip).or_default();
                if self.config.max_peers_per_ip > 0 && *used >= self.config.max_peers_per_ip {
                    continue;
                }
                *used += 1;
            }
            out.push((*peer, known.addrs.clone()));
        }
        out
    }

    /// Peers that could be dialled now (known, not connected, not backing off, with an
    /// address), counted up to `enough`: whether discovery has to find more before the dials
    /// can reach the relay target. A client does not count fleet nodes: they are the way in,
    /// not the network, and are full soon after a network grows (in a 1,000-node simulation,
    /// clients that knew the fleet's 50 nodes and two others stopped looking, dialled the
    /// full fleet over and over, and stayed below the target).
    pub fn dialable(&self, connected: &Connected, now: Instant, enough: usize) -> usize {
        self.dialable_now(connected, now)
            .filter(|(peer, _)| self.in_fleet || !self.is_fleet(peer))
            .take(enough)
            .count()
    }

    /// Whether discovery should look eagerly: the node is below its relay target, or (a
    /// client) most of its relay peers are the fleet's, and it has too few candidates beyond
    /// the fleet to dial. A client whose relay peers are all fleet nodes loses every one of
    /// them with the fleet: in a 1,000-node simulation 35 of 950 such survivors of a fleet
    /// loss were still short 400 s later, never having looked for anyone else. Or its mesh
    /// stays thin below the [`Self::mesh_ceiling`]: with every peer it knew tried, a thin
    /// node otherwise stopped short of the ceiling and traded nothing.
    pub fn wants_discovery(&self, connected: &Connected, now: Instant) -> bool {
        let target = self.config.target_relay_peers;
        let relay = connected.relay.len();
        let fleet = connected.relay.iter().filter(|p| self.is_fleet(p)).count();
        let lacking = relay < target
            || (!self.in_fleet && self.fleet_share_too_high(relay, fleet))
            || (connected.mesh_thin && relay < self.mesh_ceiling());
        lacking && self.dialable(connected, now, 2 * target) < 2 * target
    }

    /// Known peers that could be dialled now: not connected, met by discovery rather than by
    /// their dialing us, not backing off, with an address.
    fn dialable_now<'a>(
        &'a self,
        connected: &'a Connected,
        now: Instant,
    ) -> impl Iterator<Item = (&'a PeerId, &'a Known)> {
        self.known.iter().filter(move |(peer, known)| {
            !connected.peers.contains_key(peer)
                && known.origin != Origin::Inbound
                && known.retry_at.is_none_or(|t| t <= now)
                && !known.addrs.is_empty()
        })
    }

    /// `peer`'s place in this node's own order.
    fn order(&self, peer: &PeerId) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (self.salt, peer).hash(&mut hasher);
        hasher.finish()
    }

    /// Fleet peers to disconnect: only beyond the relay target, only while enough non-fleet
    /// relay peers exist, and only while the fleet's share is over the limit. Never on a
    /// fleet node itself ([`Self::join_fleet`]): its peers are fleet nodes by design, and
    /// shedding them left a 50-node fleet with nodes stuck below the target (a node that
    /// connected to one at the target pushed it past it, and it shed a fleet peer in turn).
    pub fn surplus_fleet_peers(&self, connected: &Connected) -> Vec<PeerId> {
        if self.in_fleet {
            return Vec::new();
        }
        let mut relay_fleet: Vec<PeerId> =
            connected.relay.iter().filter(|p| self.is_fleet(p)).copied().collect();
        relay_fleet.sort();
        let mut relay = connected.relay.len();
        let mut fleet = relay_fleet.len();
        let mut out = Vec::new();
        // Keep one fleet node: it is the way back in if everything else goes.
        while relay > self.config.target_relay_peers
            && fleet > 1
            && self.fleet_share_too_high(relay, fleet)
        {
            if let Some(peer) = relay_fleet.pop() {
                out.push(peer);
                relay -= 1;
                fleet -= 1;
            }
        }
        out
    }

    /// Relay peers a node with a thin mesh dials up to.
    fn mesh_ceiling(&self) -> usize {
        self.config.target_relay_peers + MESH_DIAL_EXTRA
    }

    /// A node at its [`Self::mesh_ceiling`] whose mesh stays thin: a relay peer it dialled,
    /// outside the fleet, that kept it out of its mesh (`outside_mesh`: the service's list of
    /// relay peers connected long enough to have been grafted and not in the mesh), to drop
    /// for a peer it has not tried, when there is one. Without this a node whose every peer
    /// was a hub with a full mesh stayed thin at the ceiling (500 nodes dialling up to 18:
    /// 19 of them).
    pub fn rotate_out(
        &self,
        connected: &Connected,
        outside_mesh: &[PeerId],
        now: Instant,
    ) -> Option<PeerId> {
        if !connected.mesh_thin
            || connected.relay.len() < self.mesh_ceiling()
            || self.dialable(connected, now, 1) == 0
        {
            return None;
        }
        outside_mesh
            .iter()
            .filter(|p| {
                connected.relay.contains(p)
                    && connected.peers.get(p) == Some(&false)
                    && !self.is_fleet(p)
            })
            .min_by_key(|p| self.order(p))
            .copied()
    }

    /// `peer` was dropped on purpose: not dialled again for [`ROTATED_HOLD`].
    pub fn hold_off(&mut self, peer: &PeerId, now: Instant) {
        if let Some(known) = self.known.get_mut(peer) {
            known.retry_at = Some(now + ROTATED_HOLD);
        }
    }

    /// Relay and service slots: nwaku's split of `max_connections` (relay rounded up).
    pub fn slots(&self) -> (usize, usize) {
        let max = self.config.max_connections;
        let relay =
            ((max as f64 * self.config.relay_share.clamp(0.0, 1.0)).ceil() as usize).min(max);
        (relay, max - relay)
    }

    /// Inbound peers over their kind's slots, to disconnect: relay peers past the relay
    /// slots, and service peers past the service slots. Peers we dialed are never shed here:
    /// we chose them. Among relay peers a client sheds fleet nodes first (they have peers
    /// enough), then by id. A fleet node keeps fleet peers up to its relay target and sheds
    /// the rest, clients and further fleet peers alike, those it has held longest first: it
    /// is the network's way in, and those have had the time to find others.
    ///
    /// A fleet node once shed its fellows first too: 95 clients rushing 5 fleet nodes filled
    /// their relay slots 3 s after the start and each fleet node dropped its inbound fleet
    /// peers, ending a 100-node run with meshes of 1-3 (the clients it took instead had been
    /// pruned at D_high and were in their minute's backoff). Keeping every fellow instead
    /// (49 of 75 relay slots with a fleet of 50) left the fleet so little room for clients,
    /// who all come in through it, that 1,000 nodes took three times as long to bootstrap.
    pub fn surplus_by_kind(&self, connected: &Connected) -> Vec<PeerId> {
        let (relay_slots, service_slots) = self.slots();
        let inbound = |p: &&PeerId| connected.peers.get(*p).copied().unwrap_or(false);
        let mut out = Vec::new();
        let mut relay: Vec<PeerId> = connected.relay.iter().filter(inbound).copied().collect();
        if self.in_fleet {
            let since = |p: &PeerId| (connected.since.get(p).copied(), *p);
            let dialled_fleet =
                connected.relay.iter().filter(|p| self.is_fleet(p) && !inbound(p)).count();
            let mut fleet: Vec<PeerId> =
                relay.iter().filter(|p| self.is_fleet(p)).copied().collect();
            fleet.sort_by_key(since);
            let kept: HashSet<PeerId> = fleet
                .into_iter()
                .take(self.config.target_relay_peers.saturating_sub(dialled_fleet))
                .collect();
            relay.retain(|p| !kept.contains(p));
            relay.sort_by_key(since);
        } else {
            relay.sort_by_key(|p| (!self.is_fleet(p), *p));
        }
        let over = connected.relay.len().saturating_sub(relay_slots);
        out.extend(relay.into_iter().take(over));
        let mut service: Vec<PeerId> = connected.service.iter().filter(inbound).copied().collect();
        service.sort();
        let over = connected.service.len().saturating_sub(service_slots);
        out.extend(service.into_iter().take(over));
        out
    }

    /// Inbound relay peers past [`PeerManagerConfig::max_inbound_relay_peers`] on a node
    /// outside the fleet, to disconnect: the newest.
    ///
    /// Why a cap: a client dials toward its target and stops, so the nodes every newcomer
    /// knew first (the early ones, in every discv5 table) collect dozens of inbound relay
    /// peers while late ones get none. A node nobody dialled is inbound at each of its peers,
    /// and a gossipsub node takes an inbound GRAFT only below D_high and, pruning at D_high,
    /// keeps its outbound quota and best scorers: such a node is left out of every mesh. In a
    /// 500-node simulation every node below D_low had at most two inbound relay peers (102
    /// had none), while 123 held twelve or more. Refused by the crowded, newcomers dial the
    /// others. Fleet nodes are the bootstrap entry and are not capped.
    pub fn surplus_inbound_relay(&self, connected: &Connected) -> Vec<PeerId> {
        let cap = self.config.max_inbound_relay_peers;
        if self.in_fleet || cap == 0 {
            return Vec::new();
        }
        let mut inbound: Vec<&PeerId> = connected
            .relay
            .iter()
            .filter(|p| connected.peers.get(*p).copied().unwrap_or(false))
            .collect();
        if inbound.len() <= cap {
            return Vec::new();
        }
        // The newest first: a connection past the cap is refused at the door (its dialer
        // takes it as a refusal and goes elsewhere); the settled ones stay.
        inbound.sort_by_key(|p| (std::cmp::Reverse(connected.since.get(*p).copied()), **p));
        let over = inbound.len() - cap;
        inbound.into_iter().take(over).copied().collect()
    }

    fn fleet_share_too_high(&self, relay: usize, fleet: usize) -> bool {
        relay > 0 && fleet as f64 / relay as f64 > self.config.max_fleet_share
    }
}

/// The peer id at the end of a multiaddr (`/p2p/<id>`), if it has one.
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| if let Protocol::P2p(id) = p { Some(id) } else { None })
}

/// The IP address of a multiaddr, if it has one.
pub fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(ip: [u8; 4]) -> Multiaddr {
        format!("/ip4/{}.{}.{}.{}/tcp/60000", ip[0], ip[1], ip[2], ip[3]).parse().unwrap()
    }

    fn manager() -> PeerManager {
        PeerManager::new(PeerManagerConfig::default(), [])
    }

    /// Connected to `dialled` (all relay peers it dialled), the mesh thin or not.
    fn holding(dialled: &[PeerId], mesh_thin: bool) -> Connected {
        let mut connected = Connected { mesh_thin, ..Connected::default() };
        for p in dialled {
            connected.peers.insert(*p, false);
            connected.relay.insert(*p);
        }
        connected
    }

    #[test]
    fn non_fleet_peers_are_dialed_first_and_fleet_only_to_fill_the_target() {
        let mut pm = manager();
        let fleet: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        let others: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        for (i, p) in fleet.iter().enumerate() {
            pm.add(*p, vec![addr([10, 0, 0, i as u8])], Origin::Dns);
        }
        for (i, p) in others.iter().enumerate() {
            pm.add(*p, vec![addr([10, 1, 0, i as u8])], Origin::Discv5);
        }
        let picked: Vec<PeerId> = pm
            .dial_candidates(&Connected::default(), Instant::now())
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(picked.len(), 6);
        assert_eq!(
            &picked[..3].iter().copied().collect::<HashSet<_>>(),
            &others.iter().copied().collect::<HashSet<_>>()
        );
        assert!(picked[3..].iter().all(|p| pm.is_fleet(p)));
    }

    /// A node at its relay target whose mesh stays thin dials two more non-fleet peers, and
    /// stops at the ceiling; with a healthy mesh it dials nobody.
    #[test]
    fn a_thin_mesh_dials_two_more_peers_up_to_the_ceiling() {
        let mut pm = manager();
        let target = pm.config.target_relay_peers;
        let known: Vec<PeerId> = (0..40).map(|_| PeerId::random()).collect();
        for (i, p) in known.iter().enumerate() {
            pm.add(*p, vec![addr([10, 4, i as u8, 1])], Origin::Discv5);
        }
        let fleet = PeerId::random();
        pm.add(fleet, vec![addr([10, 5, 0, 1])], Origin::Dns);
        let holding = |count: usize, mesh_thin: bool| holding(&known[..count], mesh_thin);
        let now = Instant::now();
        assert!(pm.dial_candidates(&holding(target, false), now).is_empty());
        let picked = pm.dial_candidates(&holding(target, true), now);
        assert_eq!(picked.len(), 2);
        assert!(picked.iter().all(|(p, _)| !known[..target].contains(p) && *p != fleet));
        let ceiling = target + MESH_DIAL_EXTRA;
        assert_eq!(pm.dial_candidates(&holding(ceiling - 1, true), now).len(), 2);
        assert!(pm.dial_candidates(&holding(ceiling, true), now).is_empty());
    }

    /// A peer that refuses us is held off 30 s, then 60 s, ..., even though each refused
    /// connection came up first; a connection it keeps ends the doubling.
    #[test]
    fn refusals_hold_a_peer_off_longer_each_time_until_it_keeps_us() {
        let mut pm = manager();
        let peer = PeerId::random();
        let address = addr([10, 9, 0, 1]);
        pm.add(peer, vec![address.clone()], Origin::Discv5);
        let now = Instant::now();
        let dialable_at = |pm: &PeerManager, at: Instant| {
            pm.dial_candidates(&Connected::default(), at).iter().any(|(p, _)| *p == peer)
        };
        for hold in [REFUSED_HOLD, REFUSED_HOLD * 2, REFUSED_HOLD * 4] {
            pm.on_connected(peer, &address, false);
            pm.on_refused(&peer, now);
            assert!(!dialable_at(&pm, now + hold - Duration::from_secs(1)), "{hold:?}");
            assert!(dialable_at(&pm, now + hold), "{hold:?}");
        }
        pm.on_kept(&peer);
        pm.on_refused(&peer, now);
        assert!(dialable_at(&pm, now + REFUSED_HOLD));
    }

    /// A thin mesh below the ceiling with every known peer tried looks for more; at the
    /// ceiling, or with a healthy mesh at the target, it does not.
    #[test]
    fn a_thin_mesh_short_of_candidates_asks_discovery() {
        let mut pm = manager();
        let target = pm.config.target_relay_peers;
        let known: Vec<PeerId> = (0..target + MESH_DIAL_EXTRA).map(|_| PeerId::random()).collect();
        for (i, p) in known.iter().enumerate() {
            pm.add(*p, vec![addr([10, 8, i as u8, 1])], Origin::Discv5);
        }
        let holding = |count: usize, mesh_thin: bool| holding(&known[..count], mesh_thin);
        let now = Instant::now();
        assert!(!pm.wants_discovery(&holding(target, false), now));
        assert!(pm.wants_discovery(&holding(target, true), now));
        assert!(!pm.wants_discovery(&holding(target + MESH_DIAL_EXTRA, true), now));
    }

    /// Past the inbound relay cap a client sheds the newest inbound relay peers (refused at
    /// the door); never one it dialled; a fleet node, or a cap of 0, sheds none.
    #[test]
    fn inbound_relay_peers_past_the_cap_are_shed_newest_first() {
        let config =
            PeerManagerConfig { max_inbound_relay_peers: 3, ..PeerManagerConfig::default() };
        let pm = PeerManager::new(config.clone(), []);
        let start = Instant::now();
        let inbound: Vec<PeerId> = (0..5).map(|_| PeerId::random()).collect();
        let dialled: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        let mut connected = Connected::default();
        for (i, p) in inbound.iter().enumerate() {
            connected.peers.insert(*p, true);
            connected.relay.insert(*p);
            connected.since.insert(*p, start + Duration::from_secs(i as u64));
        }
        for p in &dialled {
            connected.peers.insert(*p, false);
            connected.relay.insert(*p);
            connected.since.insert(*p, start + Duration::from_secs(60));
        }
        let shed: HashSet<PeerId> = pm.surplus_inbound_relay(&connected).into_iter().collect();
        assert_eq!(shed, HashSet::from([inbound[4], inbound[3]]));
        // At the cap: nobody.
        for p in &inbound[3..] {
            connected.peers.remove(p);
            connected.relay.remove(p);
        }
        assert!(pm.surplus_inbound_relay(&connected).is_empty());
        connected.peers.insert(inbound[4], true);
        connected.relay.insert(inbound[4]);
        assert_eq!(pm.surplus_inbound_relay(&connected), vec![inbound[4]]);
        let mut fleet_node = PeerManager::new(config, []);
        fleet_node.join_fleet();
        assert!(fleet_node.surplus_inbound_relay(&connected).is_empty());
        let uncapped = PeerManager::new(
            PeerManagerConfig { max_inbound_relay_peers: 0, ..PeerManagerConfig::default() },
            [],
        );
        assert!(uncapped.surplus_inbound_relay(&connected).is_empty());
    }

    /// At the ceiling with a thin mesh, a node trades a peer it dialled that keeps it out of
    /// its mesh: never an inbound one, a fleet node, or one it was not told about; not below
    /// the ceiling, with a healthy mesh, or with nobody to dial instead; and a traded peer is
    /// not dialled again soon.
    #[test]
    fn a_thin_mesh_at_the_ceiling_trades_a_peer_that_keeps_it_out() {
        let mut pm = manager();
        let ceiling = pm.config.target_relay_peers + MESH_DIAL_EXTRA;
        let relay: Vec<PeerId> = (0..ceiling).map(|_| PeerId::random()).collect();
        let fresh = PeerId::random();
        let fleet = relay[0];
        pm.add(fleet, vec![addr([10, 6, 0, 1])], Origin::Dns);
        for (i, p) in relay.iter().enumerate().skip(1) {
            pm.add(*p, vec![addr([10, 6, i as u8, 1])], Origin::Discv5);
        }
        pm.add(fresh, vec![addr([10, 7, 0, 1])], Origin::Discv5);
        let inbound = relay[1];
        let mut connected = Connected { mesh_thin: true, ..Connected::default() };
        for p in &relay {
            connected.peers.insert(*p, *p == inbound);
            connected.relay.insert(*p);
        }
        let now = Instant::now();
        assert_eq!(pm.rotate_out(&connected, &[fleet, inbound], now), None);
        let traded = pm.rotate_out(&connected, &relay, now).expect("one to trade");
        assert!(traded != fleet && traded != inbound);
        assert_eq!(pm.rotate_out(&connected, &[relay[2]], now), Some(relay[2]));
        let healthy = Connected { mesh_thin: false, ..connected.clone() };
        assert_eq!(pm.rotate_out(&healthy, &relay, now), None);
        let mut below = connected.clone();
        below.relay.remove(&relay[5]);
        assert_eq!(pm.rotate_out(&below, &relay, now), None);
        // Traded away: neither dialled again soon nor a reason to trade while nobody else is.
        connected.peers.remove(&traded);
        connected.relay.remove(&traded);
        pm.hold_off(&traded, now);
        connected.peers.insert(fresh, false);
        connected.relay.insert(fresh);
        assert!(pm.dial_candidates(&connected, now).iter().all(|(p, _)| *p != traded));
        assert_eq!(pm.rotate_out(&connected, &relay, now), None, "nobody left to dial");
    }

    /// Every node its own order: two nodes knowing the same 50 equally good peers pick
    /// different ones (before, both picked the 6 lowest peer ids, as did the whole network),
    /// and one node keeps its order from one call to the next.
    #[test]
    fn nodes_that_know_the_same_peers_dial_different_ones() {
        let peers: Vec<PeerId> = (0..50).map(|_| PeerId::random()).collect();
        let picks = |pm: &mut PeerManager| {
            for (i, p) in peers.iter().enumerate() {
                pm.add(*p, vec![addr([10, 2, 0, i as u8])], Origin::Discv5);
            }
            pm.dial_candidates(&Connected::default(), Instant::now())
                .into_iter()
                .map(|(p, _)| p)
                .collect::<Vec<_>>()
        };
        let (mut one, mut other) = (manager(), manager());
        let first = picks(&mut one);
        assert_eq!(first.len(), 6);
        assert_eq!(picks(&mut one), first);
        assert_ne!(picks(&mut other), first);
    }

    /// What discovery's pace depends on: peers that could be dialled now, up to a bound;
    /// connected ones, ones backing off and ones without an address do not count.
    #[test]
    fn dialable_peers_are_counted_up_to_what_is_enough() {
        let mut pm = manager();
        let now = Instant::now();
        let peers: Vec<PeerId> = (0..5).map(|_| PeerId::random()).collect();
        for (i, p) in peers.iter().enumerate() {
            pm.add(*p, vec![addr([10, 3, 0, i as u8])], Origin::Discv5);
        }
        pm.add(PeerId::random(), Vec::new(), Origin::Discv5);
        assert_eq!(pm.dialable(&Connected::default(), now, 12), 5);
        assert_eq!(pm.dialable(&Connected::default(), now, 3), 3);
        pm.on_dial_failure(&peers[0], now);
        let mut connected = Connected::default();
        connected.peers.insert(peers[1], false);
        assert_eq!(pm.dialable(&connected, now, 12), 3);
        // A client counts no fleet node (they fill up as a network grows); a fleet node does.
        let fleet: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        for (i, p) in fleet.iter().enumerate() {
            pm.add(*p, vec![addr([10, 4, 0, i as u8])], Origin::Discv5);
        }
        assert_eq!(pm.dialable(&connected, now, 12), 7);
        pm.add_fleet(fleet.iter().copied());
        assert_eq!(pm.dialable(&connected, now, 12), 3);
        pm.join_fleet();
        assert_eq!(pm.dialable(&connected, now, 12), 7);
    }

    #[test]
    fn a_client_whose_relay_peers_are_the_fleet_looks_for_others() {
        let mut pm = manager();
        let now = Instant::now();
        let fleet: Vec<PeerId> = (0..6).map(|_| PeerId::random()).collect();
        pm.add_fleet(fleet.iter().copied());
        let mut connected = Connected::default();
        for peer in &fleet {
            connected.peers.insert(*peer, false);
            connected.relay.insert(*peer);
        }
        // At the target, but all of it the fleet: look.
        assert!(pm.wants_discovery(&connected, now));
        // With enough candidates beyond the fleet, dialing them is what it waits for.
        for i in 0..12u8 {
            pm.add(PeerId::random(), vec![addr([10, 5, 0, i])], Origin::Discv5);
        }
        assert!(!pm.wants_discovery(&connected, now));
        // A fleet node's peers are the fleet by design: at its target it does not look.
        let mut node = manager();
        node.add_fleet(fleet.iter().copied());
        node.join_fleet();
        assert!(!node.wants_discovery(&connected, now));
        // Below the target anyone looks.
        let mut few = Connected::default();
        few.peers.insert(fleet[0], false);
        few.relay.insert(fleet[0]);
        assert!(node.wants_discovery(&few, now));
    }

    #[test]
    fn failed_dials_back_off_exponentially() {
        let mut pm = manager();
        let peer = PeerId::random();
        pm.add(peer, vec![addr([10, 0, 0, 1])], Origin::Discv5);
        let start = Instant::now();
        pm.on_dial_failure(&peer, start);
        assert!(
            pm.dial_candidates(&Connected::default(), start + Duration::from_secs(1)).is_empty()
        );
        assert_eq!(
            pm.dial_candidates(&Connected::default(), start + Duration::from_secs(2)).len(),
            1
        );
        pm.on_dial_failure(&peer, start);
        pm.on_dial_failure(&peer, start);
        assert!(
            pm.dial_candidates(&Connected::default(), start + Duration::from_secs(7)).is_empty()
        );
        assert_eq!(
            pm.dial_candidates(&Connected::default(), start + Duration::from_secs(8)).len(),
            1
        );
        for _ in 0..40 {
            pm.on_dial_failure(&peer, start);
        }
        assert_eq!(
            pm.dial_candidates(&Connected::default(), start + Duration::from_secs(600)).len(),
            1,
            "capped at 10 min"
        );
        pm.on_connected(peer, &addr([10, 0, 0, 1]), false);
        assert_eq!(pm.dial_candidates(&Connected::default(), start).len(), 1, "success resets");
    }

    #[test]
    fn inbound_limits_and_colocation() {
        let pm = PeerManager::new(
            PeerManagerConfig { max_connections: 10, max_peers_per_ip: 2, ..Default::default() },
            [],
        );
        let ip: IpAddr = [10, 0, 0, 1].into();
        let mut connected = Connected::default();
        assert_eq!(pm.admit_inbound(&PeerId::random(), Some(ip), &connected), Ok(()));
        connected.per_ip.insert(ip, 2);
        assert_eq!(
            pm.admit_inbound(&PeerId::random(), Some(ip), &connected),
            Err(Refusal::Colocation(ip))
        );
        for _ in 0..6 {
            connected.peers.insert(PeerId::random(), true);
        }
        assert_eq!(
            pm.admit_inbound(&PeerId::random(), None, &connected),
            Err(Refusal::InboundFull)
        );
        for _ in 0..4 {
            connected.peers.insert(PeerId::random(), false);
        }
        assert_eq!(pm.admit_inbound(&PeerId::random(), None, &connected), Err(Refusal::Full));
        // Dialing respects the per-IP limit too.
        let mut pm = pm;
        for _ in 0..3 {
            pm.add(PeerId::random(), vec![addr([10, 0, 0, 1])], Origin::Discv5);
        }
        assert_eq!(pm.dial_candidates(&Connected::default(), Instant::now()).len(), 2);
    }

    #[test]
    fn relay_and_service_peers_share_the_connections_as_nwaku_splits_them() {
        let config = PeerManagerConfig { max_connections: 9, ..PeerManagerConfig::default() };
        let pm = PeerManager::new(config, []);
        assert_eq!(pm.slots(), (5, 4), "relay rounded up, as nwaku's ceil");
        let mut connected = Connected::default();
        let mut inbound_service = Vec::new();
        for _ in 0..6 {
            let p = PeerId::random();
            connected.peers.insert(p, true);
            connected.service.insert(p);
            inbound_service.push(p);
        }
        let dialed = PeerId::random();
        connected.peers.insert(dialed, false);
        connected.service.insert(dialed);
        let shed = pm.surplus_by_kind(&connected);
        // 7 service peers for 4 slots: 3 inbound ones go, never the one we dialed.
        assert_eq!(shed.len(), 3, "{shed:?}");
        assert!(shed.iter().all(|p| inbound_service.contains(p)));
        // Relay peers are not shed to make room for clients, nor counted against them.
        for _ in 0..5 {
            let p = PeerId::random();
            connected.peers.insert(p, true);
            connected.relay.insert(p);
        }
        assert_eq!(pm.surplus_by_kind(&connected).len(), 3);
        let extra = PeerId::random();
        connected.peers.insert(extra, true);
        connected.relay.insert(extra);
        assert_eq!(pm.surplus_by_kind(&connected).len(), 4, "one relay peer past 5 slots");
        // And no relay dials once the relay slots are full.
        let mut pm = pm;
        pm.add(PeerId::random(), vec![addr([10, 9, 0, 1])], Origin::Discv5);
        assert!(pm.dial_candidates(&connected, Instant::now()).is_empty());
    }

    #[test]
    fn a_fleet_node_past_its_relay_slots_sheds_its_oldest_clients_and_keeps_its_fleet() {
        // 6 relay slots, 7 inbound connections at most.
        let config = PeerManagerConfig { max_connections: 12, ..PeerManagerConfig::default() };
        let mut pm = PeerManager::new(config, []);
        let start = Instant::now();
        let mut connected = Connected::default();
        let mut fellows = Vec::new();
        for i in 0..2u8 {
            let p = PeerId::random();
            pm.add(p, vec![addr([10, 0, 0, i])], Origin::Static);
            connected.peers.insert(p, true);
            connected.relay.insert(p);
            connected.since.insert(p, start + Duration::from_secs(10 + u64::from(i)));
            fellows.push(p);
        }
        let mut clients = Vec::new();
        for i in 0..6u64 {
            let p = PeerId::random();
            connected.peers.insert(p, true);
            connected.relay.insert(p);
            connected.since.insert(p, start + Duration::from_secs(i));
            clients.push(p);
        }
        // 8 inbound relay peers for 6 slots. A client drops the fleet's two first.
        let shed = pm.surplus_by_kind(&connected);
        assert_eq!(shed.len(), 2);
        assert!(shed.iter().all(|p| fellows.contains(p)), "a client sheds fleet nodes first");
        // A fleet node keeps them and drops the two clients it has held longest.
        pm.join_fleet();
        let shed = pm.surplus_by_kind(&connected);
        assert_eq!(shed, vec![clients[0], clients[1]], "oldest clients first");
        // With its inbound share full it still takes a fellow fleet node, not a client.
        let fellow = PeerId::random();
        pm.add(fellow, vec![addr([10, 0, 0, 9])], Origin::Static);
        assert!(pm.admit_inbound(&PeerId::random(), None, &connected).is_err());
        assert_eq!(pm.admit_inbound(&fellow, None, &connected), Ok(()));
        // Fleet peers past the relay target are shed like clients, oldest first: with 8
        // fellows (the 6 oldest kept) and 6 clients for 6 slots, the 6 clients and the 2
        // newest fellows go.
        for i in 2..8u8 {
            let p = PeerId::random();
            pm.add(p, vec![addr([10, 0, 0, 10 + i])], Origin::Static);
            connected.peers.insert(p, true);
            connected.relay.insert(p);
            connected.since.insert(p, start + Duration::from_secs(10 + u64::from(i)));
            fellows.push(p);
        }
        let shed = pm.surplus_by_kind(&connected);
        assert_eq!(shed.len(), 8, "{shed:?}");
        assert_eq!(&shed[..6], &clients[..], "the clients, oldest first");
        assert_eq!(&shed[6..], &fellows[6..], "then the fellows past the target");
    }

    #[test]
    fn surplus_fleet_connections_are_shed_but_one_fleet_node_stays() {
        let mut pm = manager();
        let mut connected = Connected::default();
        for i in 0..5u8 {
            let p = PeerId::random();
            pm.add(p, vec![addr([10, 0, 0, i])], Origin::Static);
            connected.relay.insert(p);
            connected.peers.insert(p, false);
        }
        for i in 0..3u8 {
            let p = PeerId::random();
            pm.add(p, vec![addr([10, 1, 0, i])], Origin::Discv5);
            connected.relay.insert(p);
            connected.peers.insert(p, false);
        }
        // 8 relay peers, 5 of them fleet (62%): drop down to the target of 6.
        let shed = pm.surplus_fleet_peers(&connected);
        assert_eq!(shed.len(), 2);
        assert!(shed.iter().all(|p| pm.is_fleet(p)));
        // With only fleet peers at the target nothing is shed.
        let mut only_fleet = Connected::default();
        for p in connected.relay.iter().filter(|p| pm.is_fleet(p)).take(5) {
            only_fleet.relay.insert(*p);
        }
        assert!(pm.surplus_fleet_peers(&only_fleet).is_empty());
        // A fleet node keeps its fleet peers, however many.
        pm.join_fleet();
        assert!(pm.surplus_fleet_peers(&connected).is_empty());
    }

    #[test]
    fn the_known_set_is_bounded_and_keeps_bootstrap_peers() {
        let mut pm =
            PeerManager::new(PeerManagerConfig { max_known_peers: 3, ..Default::default() }, []);
        let boot = PeerId::random();
        pm.add(boot, vec![addr([1, 1, 1, 1])], Origin::Dns);
        for i in 0..10u8 {
            pm.add(PeerId::random(), vec![addr([2, 2, 2, i])], Origin::PeerExchange);
        }
        assert_eq!(pm.known_len(), 3);
        assert_eq!(pm.origin(&boot), Some(Origin::Dns));
    }
}
