//! Connection management: who is connected, dials toward the relay target, limits, and
//! diversity (surplus fleet connections shed).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use libp2p::{
    Multiaddr, PeerId,
    swarm::{DialError, dial_opts::DialOpts},
};
use tokio::sync::oneshot;

use super::{
    ALONE_RECOVERY, MESH_GRAFT_CHANCE, MESH_ROTATE_EVERY, MESH_THIN_PATIENCE, NodeError, Service,
};
use crate::peers::{Connected, PeerManager, ip_of};

/// Connection management's part of the swarm task.
pub(super) struct ConnectionState {
    pub(super) peer_manager: PeerManager,
    /// Since when the node has had no peer at all.
    pub(super) alone_since: Option<Instant>,
    /// Since when one of the node's relay topics has had a gossipsub mesh below D_low.
    pub(super) mesh_thin_since: Option<Instant>,
    /// When the node may next trade a relay peer for its mesh ([`MESH_ROTATE_EVERY`]).
    pub(super) next_rotation: Instant,
    /// Callers of `dial` waiting for the connection.
    pub(super) pending_dials: HashMap<PeerId, Vec<oneshot::Sender<Result<(), NodeError>>>>,
}

#[derive(Debug)]
pub(super) struct PeerState {
    pub(super) address: Multiaddr,
    pub(super) inbound: bool,
    pub(super) protocols: Vec<String>,
    pub(super) agent: Option<String>,
    pub(super) cluster: Option<u32>,
    pub(super) shards: Vec<u32>,
    /// When the connection came up: a peer that closes one we dialled within
    /// [`super::REFUSED_WITHIN`] refused us, and is backed off like a failed dial; a thin
    /// node trades only peers it has had for [`super::MESH_GRAFT_CHANCE`].
    pub(super) since: Instant,
}

impl Service {
    pub(super) fn connected(&self) -> Connected {
        let mut connected = Connected::default();
        for (peer, state) in &self.peers {
            connected.peers.insert(*peer, state.inbound);
            connected.since.insert(*peer, state.since);
            if let Some(ip) = ip_of(&state.address) {
                *connected.per_ip.entry(ip).or_default() += 1;
            }
        }
        connected.relay = self.relay_peers().into_iter().collect();
        connected.mesh_thin = self
            .connections
            .mesh_thin_since
            .is_some_and(|since| since.elapsed() >= MESH_THIN_PATIENCE);
        // Identified (identify told us its protocols) and not speaking relay: a relay peer
        // whose subscriptions have not arrived yet is not a service peer.
        connected.service = self
            .peers
            .iter()
            .filter(|(peer, state)| {
                !state.protocols.is_empty()
                    && !state.protocols.iter().any(|p| p == crate::relay::PROTOCOL)
                    && !connected.relay.contains(peer)
            })
            .map(|(peer, _)| *peer)
            .collect();
        connected
    }

    /// The node's relay topics whose gossipsub mesh is below D_low.
    fn thin_topics(&self) -> Vec<libp2p::gossipsub::TopicHash> {
        let relay = &self.swarm.behaviour().relay;
        self.subscribed
            .iter()
            .map(|topic| crate::relay::topic_hash(topic))
            .filter(|topic| relay.mesh_peers(topic).count() < crate::relay::MESH_N_LOW)
            .collect()
    }

    /// Peers on one of the `thin` topics, connected for at least `connected_for`, in none of
    /// our meshes: those that keep us out of theirs. (A shard with few relays anywhere has
    /// them all in its mesh already: none to trade.)
    fn relay_peers_outside_mesh(
        &self,
        thin: &[libp2p::gossipsub::TopicHash],
        connected_for: Duration,
    ) -> Vec<PeerId> {
        let relay = &self.swarm.behaviour().relay;
        let meshed: std::collections::HashSet<&PeerId> = relay.all_mesh_peers().collect();
        relay
            .all_peers()
            .filter(|(peer, topics)| {
                topics.iter().any(|t| thin.contains(t))
                    && !meshed.contains(peer)
                    && self.peers.get(peer).is_some_and(|s| s.since.elapsed() >= connected_for)
            })
            .map(|(peer, _)| *peer)
            .collect()
    }

    /// Dials what the peer manager picks now: on every tick, and at once when a dial failed or
    /// a peer left (waiting for the next tick cost every failed dial up to a second, more than
    /// the dial itself on a fast network).
    pub(super) fn dial_more(&mut self) {
        let connected = self.connected();
        self.dial_candidates(&connected, Instant::now());
    }

    fn dial_candidates(&mut self, connected: &Connected, now: Instant) {
        for (peer, addrs) in self.connections.peer_manager.dial_candidates(connected, now) {
            if self.connections.pending_dials.contains_key(&peer) {
                continue;
            }
            let opts = DialOpts::peer_id(peer).addresses(addrs).build();
            match self.swarm.dial(opts) {
                Ok(()) => {}
                // A dial to it is under way (or it just connected): picked again because it is
                // not connected yet, which is no failure of the peer's.
                Err(DialError::DialPeerConditionFalse(_)) => {}
                Err(error) => {
                    tracing::debug!(target: "node", %peer, %error, "dial not started");
                    self.connections.peer_manager.on_dial_failure(&peer, now);
                }
            }
        }
    }

    /// Dials toward the relay target, sheds surplus fleet connections, and goes back to the
    /// bootstrap sources when alone.
    pub(super) fn manage_connections(&mut self) {
        let now = Instant::now();
        self.expire_filter_subscriptions(now);
        self.check_missed_pushes(now);
        self.client.service_peers.retain_most_used(1000);
        if self.peers.is_empty() {
            let since = *self.connections.alone_since.get_or_insert(now);
            if now.duration_since(since) >= ALONE_RECOVERY {
                self.connections.alone_since = Some(now);
                tracing::info!(target: "node", "no peers: going back to bootstrap sources");
                self.start_dns_discovery(Duration::ZERO);
            }
        } else {
            self.connections.alone_since = None;
        }
        let thin = self.thin_topics();
        if thin.is_empty() {
            self.connections.mesh_thin_since = None;
        } else {
            self.connections.mesh_thin_since.get_or_insert(now);
        }
        let connected = self.connected();
        if let Some(discv5) = &self.discovery.discv5 {
            // Eager lookups only while the node lacks both peers and peers to dial: with
            // candidates in hand, dialing is what it waits for, and every lookup costs a
            // signature check per record (in a 1,000-node simulation, eager lookups of nodes
            // that already knew hundreds of candidates took most of two cores).
            discv5.set_needs_peers(self.connections.peer_manager.wants_discovery(&connected, now));
        }
        self.dial_candidates(&connected, now);
        self.maybe_ask_for_peers(connected.relay.len(), now);
        // Only a thin node trades, so only a thin one lists its peers outside the mesh (every
        // node runs this every second).
        if connected.mesh_thin && now >= self.connections.next_rotation {
            let outside = self.relay_peers_outside_mesh(&thin, MESH_GRAFT_CHANCE);
            if let Some(peer) = self.connections.peer_manager.rotate_out(&connected, &outside, now)
            {
                tracing::debug!(target: "node", %peer, "dropping a relay peer that keeps us out of its mesh");
                self.connections.peer_manager.hold_off(&peer, now);
                self.connections.next_rotation = now + MESH_ROTATE_EVERY;
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
        for peer in self.connections.peer_manager.surplus_fleet_peers(&connected) {
            tracing::debug!(target: "node", %peer, "dropping a fleet peer for diversity");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        for peer in self.connections.peer_manager.surplus_inbound_relay(&connected) {
            tracing::debug!(target: "node", %peer, "dropping an inbound relay peer past the cap");
            self.stats.refused_inbound += 1;
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        for peer in self.connections.peer_manager.surplus_by_kind(&connected) {
            tracing::debug!(target: "node", %peer, "dropping an inbound peer past its kind's slots");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }
}
