//! The metadata handshake: cluster and shards exchanged with every peer, and peers of another
//! cluster (or none) disconnected.

use libp2p::{PeerId, request_response};

use super::{NodeEvent, Service};
use crate::metadata::WakuMetadata;

impl Service {
    pub(super) fn on_metadata_event(
        &mut self,
        event: request_response::Event<WakuMetadata, WakuMetadata>,
    ) {
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

    pub(super) fn on_peer_metadata(&mut self, peer: PeerId, metadata: &WakuMetadata) {
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
