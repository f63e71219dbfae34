//! [`NodeHandle`], the front-end of a running node, and the commands it sends the swarm task.

use std::{sync::Arc, time::Duration};

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::{
    Identity, NodeError, NodeEvent, NodeStats, PeerInfo,
    local_enr::{is_plain_ws, is_secure_ws},
    request_id, service_peers,
};
use crate::{
    enrtree::record::Enr,
    filter::{self, FilterSubscribeType},
    lightpush,
    message::{MessageHash, WakuMessage},
    store,
    topics::{ContentTopic, ShardTopic},
};

pub(super) enum Command {
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
    Fleet {
        records: Vec<crate::enrtree::NodeRecord>,
        peer_ids: Vec<PeerId>,
        reply: oneshot::Sender<()>,
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
    Admin {
        reply: oneshot::Sender<super::AdminView>,
    },
    ServicePeers {
        kind: service_peers::ServiceKind,
        reply: oneshot::Sender<Vec<(PeerId, service_peers::ServiceScore)>>,
    },
    Shutdown,
}

/// The front-end of a running node. Cheap to clone.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    pub(super) commands: mpsc::Sender<Command>,
    pub(super) events: broadcast::Sender<NodeEvent>,
    pub(super) identity: Arc<Identity>,
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

    /// The protocols this node serves.
    pub fn mounted(&self) -> crate::health::Mounted {
        self.identity.mounted
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

    /// The fleet this node belongs to, as its controller knows it: `records` of other fleet
    /// nodes become dial candidates and discv5 bootstrap records, `peer_ids` count as fleet
    /// peers (for the fleet share and the diversity rule, which still prefers others).
    pub async fn add_fleet(
        &self,
        records: Vec<crate::enrtree::NodeRecord>,
        peer_ids: Vec<PeerId>,
    ) -> Result<(), NodeError> {
        self.ask(|reply| Command::Fleet { records, peer_ids, reply }).await
    }

    /// The node's figures now.
    pub async fn stats(&self) -> Result<NodeStats, NodeError> {
        self.ask(|reply| Command::Stats { reply }).await
    }

    /// Waits until the node has at least `n` relay peers, for at most `limit`.
    pub async fn wait_for_relay_peers(&self, n: usize, limit: Duration) -> Result<(), NodeError> {
        let waited = tokio::time::timeout(limit, async {
            while self.stats().await?.relay_peers < n {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(())
        })
        .await;
        match waited {
            Ok(result) => result,
            Err(_) => Err(NodeError::TooFewRelayPeers {
                had: self.stats().await?.relay_peers,
                wanted: n,
                waited: limit,
            }),
        }
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
        kind: service_peers::ServiceKind,
    ) -> Result<Vec<(PeerId, service_peers::ServiceScore)>, NodeError> {
        self.ask(|reply| Command::ServicePeers { kind, reply }).await
    }

    /// The best connected peer serving `kind`, if any.
    pub async fn best_service_peer(
        &self,
        kind: service_peers::ServiceKind,
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
            request_id: request_id(),
            pubsub_topic,
            message: Some(message),
        };
        self.ask(|reply| Command::LightPush { peer, request, reply }).await?
    }

    /// The connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NodeError> {
        self.ask(|reply| Command::Peers { reply }).await
    }

    /// Every peer, connected or known, and the filter subscriptions served: what the admin
    /// REST routes show.
    pub async fn admin_view(&self) -> Result<super::AdminView, NodeError> {
        self.ask(|reply| Command::Admin { reply }).await
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
