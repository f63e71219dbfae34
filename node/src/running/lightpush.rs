//! Serving lightpush (v3 and legacy v2): relay the pushed message and say how it went, and the
//! client side's responses.

use libp2p::request_response::{self, Message};

use super::{NodeError, Service, service_peers::ServiceKind};
use crate::{
    lightpush::{LightPushRequest, LightPushResponse, PushResponse, PushRpc, status},
    message::{MessageError, WakuMessage},
    topics::{ContentTopic, ShardTopic},
};

impl Service {
    /// Relays a pushed message; returns (status, description, relay peers on the topic).
    fn serve_push(
        &mut self,
        topic: Option<String>,
        message: Option<WakuMessage>,
    ) -> (u32, Option<String>, Option<u32>) {
        let Some(message) = message else {
            return (status::BAD_REQUEST, Some("missing message".into()), None);
        };
        let topic = match topic {
            Some(topic) => topic,
            None => match message
                .content_topic
                .parse::<ContentTopic>()
                .and_then(|c| c.shard(self.config.num_shards_in_network))
            {
                Ok(shard) => ShardTopic::new(self.config.cluster_id, shard).to_string(),
                Err(error) => return (status::BAD_REQUEST, Some(error.to_string()), None),
            },
        };
        if !self.subscribed.contains(&topic) {
            return (status::UNSUPPORTED_PUBSUB_TOPIC, Some(format!("not relaying {topic}")), None);
        }
        let outcome = self.publish(&topic, message);
        let key = match &outcome {
            Ok(_) => "relayed".to_owned(),
            Err(error) => error.to_string().split(':').next().unwrap_or("error").to_owned(),
        };
        *self.stats.lightpush_served.entry(key).or_default() += 1;
        match outcome {
            Ok(_) => {
                let peers = self.relay_peers_on(&topic);
                (status::SUCCESS, None, Some(u32::try_from(peers).unwrap_or(u32::MAX)))
            }
            Err(NodeError::NoPeers(_)) => {
                (status::NO_PEERS_TO_RELAY, Some("no peers to relay".into()), Some(0))
            }
            Err(NodeError::Message(MessageError::TooLarge { size, limit })) => (
                status::PAYLOAD_TOO_LARGE,
                Some(format!("message is {size} bytes, limit {limit}")),
                None,
            ),
            Err(NodeError::Message(error)) => {
                (status::INVALID_MESSAGE, Some(error.to_string()), None)
            }
            Err(NodeError::RelayDisabled) => {
                (status::SERVICE_NOT_AVAILABLE, Some("relay is disabled".into()), None)
            }
            Err(error) => (status::INTERNAL_SERVER_ERROR, Some(error.to_string()), None),
        }
    }

    /// Peers relaying on `topic`.
    fn relay_peers_on(&self, topic: &str) -> usize {
        self.swarm
            .behaviour()
            .relay
            .all_peers()
            .filter(|(_, topics)| topics.iter().any(|t| t.as_str() == topic))
            .count()
    }

    pub(super) fn on_lightpush_event(
        &mut self,
        event: request_response::Event<LightPushRequest, LightPushResponse>,
    ) {
        match event {
            request_response::Event::Message {
                message: Message::Request { request, channel, .. },
                ..
            } => {
                let (status_code, status_desc, relay_peer_count) =
                    self.serve_push(request.pubsub_topic, request.message);
                let response = LightPushResponse {
                    request_id: request.request_id,
                    status_code,
                    status_desc,
                    relay_peer_count,
                };
                let _ = self.swarm.behaviour_mut().lightpush.send_response(channel, response);
            }
            request_response::Event::Message {
                message: Message::Response { request_id, response },
                ..
            } => {
                if let Some(pending) = self.client.pending_lightpush.remove(&request_id) {
                    self.settle(ServiceKind::Lightpush, pending, Ok(response));
                }
            }
            request_response::Event::OutboundFailure { request_id, error, .. } => {
                if let Some(pending) = self.client.pending_lightpush.remove(&request_id) {
                    self.settle(ServiceKind::Lightpush, pending, Err(error.to_string()));
                }
            }
            _ => {}
        }
    }

    pub(super) fn on_lightpush_legacy_event(
        &mut self,
        event: request_response::Event<PushRpc, PushRpc>,
    ) {
        if let request_response::Event::Message {
            message: Message::Request { request, channel, .. },
            ..
        } = event
        {
            let push = request.request.unwrap_or_default();
            let topic = (!push.pubsub_topic.is_empty()).then_some(push.pubsub_topic);
            let (code, info, _) = self.serve_push(topic, push.message);
            let response = PushRpc {
                request_id: request.request_id,
                request: None,
                response: Some(PushResponse { is_success: Some(code == status::SUCCESS), info }),
            };
            let _ = self.swarm.behaviour_mut().lightpush_legacy.send_response(channel, response);
        }
    }
}
