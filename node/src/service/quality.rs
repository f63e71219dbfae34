//! Bookkeeping for service-peer quality: pending client requests with their start times, the
//! filter subscriptions this node holds as a client, and the check that every filter peer pushed
//! each matching message that reached us.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use libp2p::PeerId;
use tokio::sync::oneshot;

use super::{NodeError, Service};
use crate::{
    filter::{FilterSubscribeRequest, FilterSubscribeType},
    message::MessageHash,
    service_peers::ServiceKind,
};

/// A request in flight to a service peer.
pub(super) struct Pending<T> {
    pub(super) reply: oneshot::Sender<Result<T, NodeError>>,
    pub(super) peer: PeerId,
    pub(super) sent: Instant,
}

impl<T> Pending<T> {
    pub(super) fn new(reply: oneshot::Sender<Result<T, NodeError>>, peer: PeerId) -> Self {
        Self { reply, peer, sent: Instant::now() }
    }
}

/// How long a filter peer has to push a message that reached us another way.
const PUSH_WINDOW: Duration = Duration::from_secs(5);
/// Recent messages remembered for the check.
const RECENT_LIMIT: usize = 10_000;

/// A message that reached us, and which filter peers pushed it.
pub(super) struct Arrival {
    seen: Instant,
    criterion: (String, String),
    pushed_by: HashSet<PeerId>,
}

/// A service peer's answer, as far as scoring goes.
pub(super) trait ServiceAnswer {
    /// Whether the peer failed (5xx or no status). 4xx is the asker's fault, not held against it.
    fn server_failed(&self) -> bool;
}

impl ServiceAnswer for crate::store::proto::StoreQueryResponse {
    fn server_failed(&self) -> bool {
        self.status_code.is_none_or(|code| code >= 500)
    }
}

impl ServiceAnswer for crate::filter::FilterSubscribeResponse {
    fn server_failed(&self) -> bool {
        self.status_code >= 500
    }
}

impl ServiceAnswer for crate::lightpush::LightPushResponse {
    fn server_failed(&self) -> bool {
        self.status_code >= 500
    }
}

impl Service {
    /// Ends a client request: scores the peer on the outcome (its answer, or the transport
    /// failure) and hands the outcome to the caller.
    pub(super) fn settle<T: ServiceAnswer>(
        &mut self,
        kind: ServiceKind,
        pending: Pending<T>,
        outcome: Result<T, String>,
    ) {
        if outcome.as_ref().is_ok_and(|answer| !answer.server_failed()) {
            self.service_peers.success(kind, pending.peer, pending.sent.elapsed());
        } else {
            self.service_peers.failure(kind, pending.peer);
        }
        let _ = pending.reply.send(outcome.map_err(NodeError::Request));
    }

    /// Whether a push of `criterion` from `peer` is one we asked for: a subscription we hold,
    /// or one still awaiting its answer (a push can overtake the answer to our subscribe).
    pub(super) fn expects_push(&self, peer: &PeerId, criterion: &(String, String)) -> bool {
        self.filter_client.get(peer).is_some_and(|criteria| criteria.contains(criterion))
            || self.pending_filter.values().any(|(pending, request)| {
                pending.peer == *peer
                    && FilterSubscribeType::try_from(request.filter_subscribe_type)
                        == Ok(FilterSubscribeType::Subscribe)
                    && request.pubsub_topic.as_ref() == Some(&criterion.0)
                    && request.content_topics.contains(&criterion.1)
            })
    }

    /// Applies an accepted subscribe/unsubscribe to our client-side view of `peer`.
    pub(super) fn apply_filter_request(&mut self, peer: PeerId, request: &FilterSubscribeRequest) {
        let criteria = request
            .content_topics
            .iter()
            .filter_map(|c| request.pubsub_topic.as_ref().map(|t| (t.clone(), c.clone())));
        match FilterSubscribeType::try_from(request.filter_subscribe_type) {
            Ok(FilterSubscribeType::Subscribe) => {
                self.filter_client.entry(peer).or_default().extend(criteria)
            }
            Ok(FilterSubscribeType::Unsubscribe) => {
                if let Some(set) = self.filter_client.get_mut(&peer) {
                    for criterion in criteria {
                        set.remove(&criterion);
                    }
                }
            }
            Ok(FilterSubscribeType::UnsubscribeAll) => {
                self.filter_client.remove(&peer);
            }
            _ => {}
        }
    }

    /// Notes that a message reached us, by relay (`pushed_by` = `None`) or pushed by a filter peer.
    pub(super) fn note_arrival(
        &mut self,
        hash: MessageHash,
        topic: &str,
        content_topic: &str,
        pushed_by: Option<PeerId>,
    ) {
        if self.filter_client.is_empty() {
            return;
        }
        if self.recent.len() >= RECENT_LIMIT && !self.recent.contains_key(&hash) {
            return;
        }
        let arrival = self.recent.entry(hash).or_insert_with(|| Arrival {
            seen: Instant::now(),
            criterion: (topic.to_owned(), content_topic.to_owned()),
            pushed_by: HashSet::new(),
        });
        if let Some(peer) = pushed_by {
            arrival.pushed_by.insert(peer);
            self.service_peers.delivered(peer);
        }
    }

    /// Charges a miss to every subscribed filter peer that did not push a matching message
    /// within the window.
    pub(super) fn check_missed_pushes(&mut self, now: Instant) {
        let due: Vec<MessageHash> = self
            .recent
            .iter()
            .filter(|(_, a)| now.duration_since(a.seen) >= PUSH_WINDOW)
            .map(|(h, _)| *h)
            .collect();
        for hash in due {
            let Some(arrival) = self.recent.remove(&hash) else { continue };
            let missing: Vec<PeerId> = self
                .filter_client
                .iter()
                .filter(|(peer, criteria)| {
                    criteria.contains(&arrival.criterion) && !arrival.pushed_by.contains(peer)
                })
                .map(|(peer, _)| *peer)
                .collect();
            for peer in missing {
                self.service_peers.missed(peer);
            }
        }
    }
}

/// Client-side filter subscriptions, by service peer.
pub(super) type FilterClient = HashMap<PeerId, HashSet<(String, String)>>;
