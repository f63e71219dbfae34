//! Finding peers: DNS trees (EIP-1459), discv5 results, and peer exchange as client and server.

use std::time::{Duration, Instant};

use std::collections::VecDeque;

use libp2p::{PeerId, request_response};
use tokio::sync::mpsc;

use super::{DNS_RETRY, PX_EMPTY_RETRY, PX_INTERVAL, Service};
use crate::{
    discovery_v5::Discovery,
    dnsdisc::{ClientConfig, HickoryTxtResolver, TreeClient},
    enrtree::LinkEntry,
    peer_exchange::{self, PeerExchangeRpc},
    peers::{FoundPeer, Origin},
};

/// Discovery's part of the swarm task: discv5, DNS lookups, and peer exchange's cache.
pub(super) struct DiscoveryState {
    /// Records found by our own discovery, offered to peer-exchange clients.
    pub(super) px_cache: VecDeque<(PeerId, crate::enrtree::NodeRecord)>,
    pub(super) next_px_query: Option<Instant>,
    /// Peer exchange requests sent: which server is asked next turns with it.
    pub(super) px_asked: usize,
    pub(super) discv5: Option<Discovery>,
    pub(super) discovered_tx: mpsc::Sender<Discovered>,
    pub(super) dns_running: bool,
}

/// Peers found by a discovery task.
pub(super) struct Discovered {
    pub(super) origin: Origin,
    pub(super) peers: Vec<FoundPeer>,
    /// Records or entries that were unusable (bad ENR, bad tree entry).
    pub(super) invalid: u64,
}

pub(super) type FoundPeers = Vec<FoundPeer>;

/// Resolves the trees and returns the dialable Waku peers of our cluster found in them.
pub(super) async fn resolve_trees(
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

impl Service {
    /// Resolves the configured trees after `delay`, in the background; at most one at a time.
    pub(super) fn start_dns_discovery(&mut self, delay: Duration) {
        if self.discovery.dns_running || self.config.dns_discovery_urls.is_empty() {
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
        let tx = self.discovery.discovered_tx.clone();
        self.discovery.dns_running = true;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let (peers, invalid) = resolve_trees(&urls, server, cluster).await;
            let _ = tx.send(Discovered { origin: Origin::Dns, peers, invalid }).await;
        });
    }

    /// The controller's view of our fleet (through the agent): its nodes are dial candidates
    /// and discv5 bootstrap records, and its peer ids fleet peers. Nothing is dialled beyond
    /// what the connection manager wants, and non-fleet peers are still preferred.
    pub(super) fn on_fleet_hint(
        &mut self,
        records: Vec<crate::enrtree::NodeRecord>,
        peer_ids: Vec<PeerId>,
    ) {
        self.connections.peer_manager.add_fleet(peer_ids);
        // Only fleet nodes get the hint.
        self.connections.peer_manager.join_fleet();
        let own = *self.swarm.local_peer_id();
        for record in records {
            if let Some(discv5) = &self.discovery.discv5
                && let Err(error) = discv5.add_bootstrap(&record.to_string())
            {
                tracing::debug!(target: "node::discv5", %error, "fleet record not added");
            }
            if let Some(peer) = FoundPeer::from_record(record, self.config.cluster_id)
                && peer.peer_id != own
            {
                self.connections.peer_manager.add(peer.peer_id, peer.addrs, Origin::Static);
            }
        }
        self.manage_connections();
    }

    pub(super) fn on_discovered(&mut self, found: Discovered) {
        self.stats.invalid_records += found.invalid;
        if found.origin == Origin::Dns {
            self.discovery.dns_running = false;
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
            // A tree's records are discv5's way in too, as nwaku uses them: a node that has
            // only a tree's URL has no other bootstrap record, and its lookups would find
            // nobody (seen at 60 simulated nodes: every client stuck with the fleet's peers).
            if found.origin == Origin::Dns
                && let (Some(record), Some(discv5)) = (&peer.record, &self.discovery.discv5)
                && let Err(error) = discv5.add_bootstrap(&record.to_string())
            {
                tracing::debug!(target: "node::discv5", %error, "tree record not added");
            }
            self.connections.peer_manager.add(peer.peer_id, peer.addrs, found.origin);
        }
        self.manage_connections();
    }

    pub(super) fn remember_for_exchange(
        &mut self,
        peer: PeerId,
        record: crate::enrtree::NodeRecord,
    ) {
        self.discovery.px_cache.retain(|(p, _)| *p != peer);
        if self.discovery.px_cache.len() >= peer_exchange::MAX_PEERS {
            self.discovery.px_cache.pop_front();
        }
        self.discovery.px_cache.push_back((peer, record));
    }

    /// Asks one connected peer that serves peer exchange for more peers, at most every
    /// [`PX_INTERVAL`].
    pub(super) fn maybe_ask_for_peers(&mut self, relay_peers: usize, now: Instant) {
        if !self.config.peer_exchange_client
            || relay_peers >= self.connections.peer_manager.config().target_relay_peers
            || self.discovery.next_px_query.is_some_and(|t| t > now)
        {
            return;
        }
        let protocol = peer_exchange::PROTOCOL.to_string();
        // Each request goes to the next server in turn: asking always the same one (the first
        // in the map) got the same answer again and again, and after a fleet loss a survivor
        // short of peers heard 300 records it already knew (all the dead fleet's) in 6 minutes.
        let servers: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, state)| state.protocols.contains(&protocol))
            .map(|(peer, _)| *peer)
            .collect();
        let server =
            (!servers.is_empty()).then(|| servers[self.discovery.px_asked % servers.len()]);
        if let Some(server) = server {
            self.discovery.px_asked = self.discovery.px_asked.wrapping_add(1);
            self.discovery.next_px_query = Some(now + PX_INTERVAL);
            let request = PeerExchangeRpc::request(peer_exchange::DEFAULT_ASK);
            self.swarm.behaviour_mut().peer_exchange.send_request(&server, request);
        }
    }

    pub(super) fn on_peer_exchange_event(
        &mut self,
        event: request_response::Event<PeerExchangeRpc, PeerExchangeRpc>,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    let wanted = request.query.map_or(0, |q| q.num_peers);
                    let wanted =
                        usize::try_from(wanted).unwrap_or(usize::MAX).min(peer_exchange::MAX_PEERS);
                    let offer = px_offer(&self.discovery.px_cache, &peer, wanted, |p| {
                        self.peers.contains_key(p)
                    });
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
                        self.discovery.next_px_query = Some(Instant::now() + PX_EMPTY_RETRY);
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
}

/// What a peer exchange server offers `asker`: at most `wanted` records of its cache, never
/// the asker's own, peers it is connected to first (they are alive now), then the rest newest
/// first. The cache is what discovery met, and every lookup meets the discv5 table again:
/// after a fleet loss that put the dead fleet's records first, offered to survivors looking
/// for a way out.
fn px_offer(
    cache: &VecDeque<(PeerId, crate::enrtree::NodeRecord)>,
    asker: &PeerId,
    wanted: usize,
    connected: impl Fn(&PeerId) -> bool,
) -> Vec<crate::enrtree::NodeRecord> {
    let (live, rest): (Vec<_>, Vec<_>) =
        cache.iter().rev().filter(|(p, _)| p != asker).partition(|(p, _)| connected(p));
    live.into_iter().chain(rest).take(wanted).map(|(_, r)| r.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::waku_enr::{Capabilities, WakuEnrConfig, build_enr};

    fn record() -> (PeerId, crate::enrtree::NodeRecord) {
        let key = enr::CombinedKey::from(crate::crypto::generate_key());
        let config = WakuEnrConfig {
            seq: 1,
            ip: Some([127, 0, 0, 1].into()),
            tcp: Some(60_000),
            udp: None,
            capabilities: Capabilities::RELAY,
            multiaddrs: Vec::new(),
            shards: None,
        };
        let enr = build_enr(&key, &config).unwrap();
        let record: crate::enrtree::NodeRecord = enr.to_base64().parse().unwrap();
        let peer = crate::peers::FoundPeer::from_record(record.clone(), 0).unwrap().peer_id;
        (peer, record)
    }

    #[test]
    fn peer_exchange_offers_connected_peers_first_then_the_newest_never_the_asker() {
        // Oldest first, as the cache keeps them: a, b (connected), c, asker, d (connected).
        let entries: Vec<_> = (0..5).map(|_| record()).collect();
        let cache: VecDeque<_> = entries.iter().cloned().collect();
        let id = |i: usize| entries[i].0;
        let connected = |p: &PeerId| *p == id(1) || *p == id(4);
        let offered = |wanted| {
            px_offer(&cache, &id(3), wanted, connected)
                .iter()
                .map(|r| entries.iter().position(|(_, e)| e.to_string() == r.to_string()).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(offered(10), vec![4, 1, 2, 0]);
        assert_eq!(offered(3), vec![4, 1, 2]);
        assert_eq!(offered(0), Vec::<usize>::new());
    }
}
