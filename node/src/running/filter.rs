//! Serving filter v2 (subscriptions, pings, pushes) and the client side of it.

use std::{
    collections::{HashMap, HashSet},
    time::Instant,
};

use libp2p::{
    PeerId,
    request_response::{self, Message},
};

use super::{NodeEvent, Service, service_peers::ServiceKind};
use crate::{
    filter::{
        FilterSubscribeRequest, FilterSubscribeResponse, FilterSubscribeType,
        MAX_CONTENT_TOPICS_PER_REQUEST, MAX_CRITERIA_PER_SUBSCRIBER, MAX_SUBSCRIBERS, MessagePush,
        SUBSCRIPTION_TTL, status,
    },
    message::WakuMessage,
    topics::ShardTopic,
};

/// Filter as a service node: who subscribed to what.
pub(super) struct FilterServer {
    pub(super) subscribers: HashMap<PeerId, Subscriber>,
}

/// A (pubsub topic, content topic) pair a subscriber wants.
type Criterion = (String, String);
/// A status code and its description, as answered.
type Answer = (u32, Option<String>);

/// One subscriber's criteria and when it was last heard from.
#[derive(Debug)]
pub(super) struct Subscriber {
    criteria: HashSet<Criterion>,
    last_seen: Instant,
}

impl FilterServer {
    /// Every subscriber's criteria, sorted (the admin REST route's list).
    pub(super) fn subscriptions(&self) -> Vec<(PeerId, Vec<Criterion>)> {
        let mut out: Vec<(PeerId, Vec<Criterion>)> = self
            .subscribers
            .iter()
            .map(|(peer, subscriber)| {
                let mut criteria: Vec<Criterion> = subscriber.criteria.iter().cloned().collect();
                criteria.sort();
                (*peer, criteria)
            })
            .collect();
        out.sort_by_key(|(peer, _)| peer.to_bytes());
        out
    }
}

impl Service {
    fn handle_subscribe(
        &mut self,
        peer: PeerId,
        request: &FilterSubscribeRequest,
    ) -> (u32, Option<String>) {
        let bad = |message: &str| (status::BAD_REQUEST, Some(message.to_owned()));
        let now = Instant::now();
        let kind = FilterSubscribeType::try_from(request.filter_subscribe_type);
        let criteria = || -> Result<Vec<Criterion>, Answer> {
            let topic =
                request.pubsub_topic.clone().ok_or_else(|| bad("pubsub_topic is required"))?;
            topic.parse::<ShardTopic>().map_err(|e| bad(&e.to_string()))?;
            match request.content_topics.len() {
                0 => Err(bad("at least one content topic is required")),
                n if n > MAX_CONTENT_TOPICS_PER_REQUEST => Err(bad(&format!(
                    "{n} content topics, at most {MAX_CONTENT_TOPICS_PER_REQUEST} per request"
                ))),
                _ => {
                    Ok(request.content_topics.iter().map(|c| (topic.clone(), c.clone())).collect())
                }
            }
        };
        match kind {
            Ok(FilterSubscribeType::SubscriberPing) => match self.filter.subscribers.get_mut(&peer)
            {
                Some(subscriber) => {
                    subscriber.last_seen = now;
                    (status::SUCCESS, None)
                }
                None => (status::NOT_FOUND, Some("not subscribed".into())),
            },
            Ok(FilterSubscribeType::Subscribe) => {
                let wanted = match criteria() {
                    Ok(wanted) => wanted,
                    Err(error) => return error,
                };
                if !self.filter.subscribers.contains_key(&peer)
                    && self.filter.subscribers.len() >= MAX_SUBSCRIBERS
                {
                    return (status::SERVICE_UNAVAILABLE, Some("too many subscribers".into()));
                }
                let subscriber = self
                    .filter
                    .subscribers
                    .entry(peer)
                    .or_insert_with(|| Subscriber { criteria: HashSet::new(), last_seen: now });
                let after: HashSet<_> = subscriber.criteria.iter().cloned().chain(wanted).collect();
                if after.len() > MAX_CRITERIA_PER_SUBSCRIBER {
                    if subscriber.criteria.is_empty() {
                        self.filter.subscribers.remove(&peer);
                    }
                    return bad(&format!("more than {MAX_CRITERIA_PER_SUBSCRIBER} criteria"));
                }
                subscriber.criteria = after;
                subscriber.last_seen = now;
                (status::SUCCESS, None)
            }
            Ok(FilterSubscribeType::Unsubscribe) => {
                let unwanted = match criteria() {
                    Ok(unwanted) => unwanted,
                    Err(error) => return error,
                };
                let Some(subscriber) = self.filter.subscribers.get_mut(&peer) else {
                    return (status::NOT_FOUND, Some("not subscribed".into()));
                };
                for criterion in &unwanted {
                    subscriber.criteria.remove(criterion);
                }
                subscriber.last_seen = now;
                if subscriber.criteria.is_empty() {
                    self.filter.subscribers.remove(&peer);
                }
                (status::SUCCESS, None)
            }
            Ok(FilterSubscribeType::UnsubscribeAll) => {
                match self.filter.subscribers.remove(&peer) {
                    Some(_) => (status::SUCCESS, None),
                    None => (status::NOT_FOUND, Some("not subscribed".into())),
                }
            }
            Err(_) => bad("unknown request type"),
        }
    }

    /// Pushes a relayed message to every subscriber whose criteria it matches.
    pub(super) fn push_to_subscribers(&mut self, topic: &str, message: &WakuMessage) {
        if !self.config.filter {
            return;
        }
        let key = (topic.to_owned(), message.content_topic.clone());
        let targets: Vec<PeerId> = self
            .filter
            .subscribers
            .iter()
            .filter(|(_, s)| s.criteria.contains(&key))
            .map(|(peer, _)| *peer)
            .collect();
        for peer in targets {
            let push = MessagePush {
                waku_message: Some(message.clone()),
                pubsub_topic: Some(topic.to_owned()),
            };
            self.swarm.behaviour_mut().filter_push.send_request(&peer, push);
            self.stats.filter_pushes_sent += 1;
        }
    }

    /// Drops subscriptions not renewed within the TTL.
    pub(super) fn expire_filter_subscriptions(&mut self, now: Instant) {
        self.filter.subscribers.retain(|_, s| now.duration_since(s.last_seen) < SUBSCRIPTION_TTL);
    }

    pub(super) fn on_filter_subscribe_event(
        &mut self,
        event: request_response::Event<FilterSubscribeRequest, FilterSubscribeResponse>,
    ) {
        match event {
            request_response::Event::Message {
                peer,
                message: Message::Request { request, channel, .. },
                ..
            } => {
                let (status_code, status_desc) = self.handle_subscribe(peer, &request);
                let response = FilterSubscribeResponse {
                    request_id: request.request_id,
                    status_code,
                    status_desc,
                };
                let _ =
                    self.swarm.behaviour_mut().filter_subscribe.send_response(channel, response);
            }
            request_response::Event::Message {
                message: Message::Response { request_id, response },
                ..
            } => {
                if let Some((pending, request)) = self.client.pending_filter.remove(&request_id) {
                    if response.status_code == status::SUCCESS {
                        self.apply_filter_request(pending.peer, &request);
                    }
                    self.settle(ServiceKind::Filter, pending, Ok(response));
                }
            }
            request_response::Event::OutboundFailure { request_id, error, .. } => {
                if let Some((pending, _)) = self.client.pending_filter.remove(&request_id) {
                    self.settle(ServiceKind::Filter, pending, Err(error.to_string()));
                }
            }
            _ => {}
        }
    }

    pub(super) fn on_filter_push_event(&mut self, event: request_response::Event<MessagePush, ()>) {
        match event {
            request_response::Event::Message {
                peer,
                message: Message::Request { request, channel, .. },
                ..
            } => {
                let _ = self.swarm.behaviour_mut().filter_push.send_response(channel, ());
                let (Some(message), Some(topic)) = (request.waku_message, request.pubsub_topic)
                else {
                    self.stats.invalid_messages += 1;
                    return;
                };
                if message.check_publishable(self.config.max_message_size).is_err() {
                    self.stats.invalid_messages += 1;
                    return;
                }
                // Only what we asked this peer for: anyone can open a push stream to us, and an
                // unsolicited push must not pass for a filtered message.
                if !self.expects_push(&peer, &(topic.clone(), message.content_topic.clone())) {
                    self.stats.filter_pushes_unsolicited += 1;
                    return;
                }
                self.stats.filter_pushes_received += 1;
                let hash = message.hash(&topic);
                self.note_arrival(hash, &topic, &message.content_topic, Some(peer));
                self.emit(NodeEvent::Pushed {
                    topic,
                    hash,
                    message: std::sync::Arc::new(message),
                    from: peer,
                });
            }
            request_response::Event::OutboundFailure { peer, error, .. } => {
                tracing::debug!(target: "node::filter", %peer, %error, "push failed");
            }
            _ => {}
        }
    }
}
