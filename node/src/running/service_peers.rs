//! Quality of the service peers a node uses as a client (store, filter, lightpush): latency,
//! failures and, for filter, messages a peer failed to push that another path delivered. Light
//! clients pick the best-scoring peer, so a filter node that omits messages or a slow store node
//! loses its clients.
//!
//! [`ServicePeers`] is the scoring, pure bookkeeping; below it, what the swarm task keeps to
//! feed it: client requests in flight with their start times, the filter subscriptions this node
//! holds as a client, and the check that every filter peer pushed each matching message that
//! reached us another way.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use libp2p::{PeerId, request_response};
use tokio::sync::oneshot;

use super::{NodeError, Service};
use crate::{
    filter::{FilterSubscribeRequest, FilterSubscribeType},
    message::MessageHash,
};

/// This node as a client of service peers: requests in flight, its filter subscriptions, the
/// messages it checks filter peers pushed, and every peer's score.
pub(super) struct ClientState {
    pub(super) pending_store: HashMap<
        request_response::OutboundRequestId,
        Pending<crate::store::proto::StoreQueryResponse>,
    >,
    /// Filter requests in flight, with the request (applied to `filter_client` on success).
    pub(super) pending_filter: HashMap<
        request_response::OutboundRequestId,
        (Pending<crate::filter::FilterSubscribeResponse>, FilterSubscribeRequest),
    >,
    pub(super) pending_lightpush:
        HashMap<request_response::OutboundRequestId, Pending<crate::lightpush::LightPushResponse>>,
    pub(super) filter_client: FilterClient,
    pub(super) recent: HashMap<MessageHash, Arrival>,
    pub(super) service_peers: ServicePeers,
}

/// The client protocols that are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKind {
    /// Store queries.
    Store,
    /// Filter subscriptions and pushes.
    Filter,
    /// Lightpush.
    Lightpush,
}

/// One peer's record for one protocol.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceScore {
    /// Requests answered.
    pub successes: u64,
    /// Requests failed (timeout, refused, unreachable) or answered with an error status.
    pub failures: u64,
    /// Exponentially weighted response time, milliseconds.
    pub latency_ms: f64,
    /// Filter: messages pushed.
    pub delivered: u64,
    /// Filter: matching messages that arrived another way but not from this peer.
    pub missed: u64,
}

impl ServiceScore {
    /// Higher is better: 100 × success rate, minus 100 × miss rate, minus a latency penalty of
    /// one point per 5 ms (a 250 ms peer ranks with an untried one). A peer never used scores a
    /// neutral 50.
    pub fn value(&self) -> f64 {
        let requests = self.successes + self.failures;
        if requests == 0 && self.delivered + self.missed == 0 {
            return 50.0;
        }
        let success = if requests == 0 { 1.0 } else { self.successes as f64 / requests as f64 };
        let pushes = self.delivered + self.missed;
        let miss = if pushes == 0 { 0.0 } else { self.missed as f64 / pushes as f64 };
        100.0 * success - 100.0 * miss - self.latency_ms / 5.0
    }
}

/// Weight of the newest sample in the latency average.
const LATENCY_WEIGHT: f64 = 0.3;

/// Scores of every service peer used.
#[derive(Debug, Clone, Default)]
pub struct ServicePeers {
    scores: HashMap<(ServiceKind, PeerId), ServiceScore>,
}

impl ServicePeers {
    /// An answered request.
    pub fn success(&mut self, kind: ServiceKind, peer: PeerId, latency: Duration) {
        let score = self.scores.entry((kind, peer)).or_default();
        let ms = latency.as_secs_f64() * 1000.0;
        score.latency_ms = if score.successes == 0 {
            ms
        } else {
            LATENCY_WEIGHT * ms + (1.0 - LATENCY_WEIGHT) * score.latency_ms
        };
        score.successes += 1;
    }

    /// A failed request.
    pub fn failure(&mut self, kind: ServiceKind, peer: PeerId) {
        self.scores.entry((kind, peer)).or_default().failures += 1;
    }

    /// A filter push that arrived from `peer`.
    pub fn delivered(&mut self, peer: PeerId) {
        self.scores.entry((ServiceKind::Filter, peer)).or_default().delivered += 1;
    }

    /// A matching message `peer` should have pushed but did not.
    pub fn missed(&mut self, peer: PeerId) {
        self.scores.entry((ServiceKind::Filter, peer)).or_default().missed += 1;
    }

    /// A peer's score for `kind`.
    pub fn score(&self, kind: ServiceKind, peer: &PeerId) -> ServiceScore {
        self.scores.get(&(kind, *peer)).cloned().unwrap_or_default()
    }

    /// `candidates` best first (ties keep their order).
    pub fn rank(&self, kind: ServiceKind, candidates: &[PeerId]) -> Vec<PeerId> {
        let mut ranked = candidates.to_vec();
        ranked.sort_by(|a, b| self.score(kind, b).value().total_cmp(&self.score(kind, a).value()));
        ranked
    }

    /// Forgets peers beyond the most-used `max`, so the table stays bounded.
    pub fn retain_most_used(&mut self, max: usize) {
        if self.scores.len() <= max {
            return;
        }
        let mut entries: Vec<_> = self.scores.drain().collect();
        entries.sort_by_key(|(_, s)| {
            std::cmp::Reverse(s.successes + s.failures + s.delivered + s.missed)
        });
        entries.truncate(max);
        self.scores = entries.into_iter().collect();
    }
}

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
    /// Connected peers that serve `kind`, best first, with their scores.
    pub(super) fn ranked_service_peers(&self, kind: ServiceKind) -> Vec<(PeerId, ServiceScore)> {
        let protocol = match kind {
            ServiceKind::Store => crate::store::PROTOCOL.to_string(),
            ServiceKind::Filter => crate::filter::SUBSCRIBE_PROTOCOL.to_string(),
            ServiceKind::Lightpush => crate::lightpush::PROTOCOL_V3.to_string(),
        };
        let candidates: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, state)| state.protocols.contains(&protocol))
            .map(|(peer, _)| *peer)
            .collect();
        self.client
            .service_peers
            .rank(kind, &candidates)
            .into_iter()
            .map(|peer| (peer, self.client.service_peers.score(kind, &peer)))
            .collect()
    }

    /// Ends a client request: scores the peer on the outcome (its answer, or the transport
    /// failure) and hands the outcome to the caller.
    pub(super) fn settle<T: ServiceAnswer>(
        &mut self,
        kind: ServiceKind,
        pending: Pending<T>,
        outcome: Result<T, String>,
    ) {
        if outcome.as_ref().is_ok_and(|answer| !answer.server_failed()) {
            self.client.service_peers.success(kind, pending.peer, pending.sent.elapsed());
        } else {
            self.client.service_peers.failure(kind, pending.peer);
        }
        let _ = pending.reply.send(outcome.map_err(NodeError::Request));
    }

    /// Whether a push of `criterion` from `peer` is one we asked for: a subscription we hold,
    /// or one still awaiting its answer (a push can overtake the answer to our subscribe).
    pub(super) fn expects_push(&self, peer: &PeerId, criterion: &(String, String)) -> bool {
        self.client.filter_client.get(peer).is_some_and(|criteria| criteria.contains(criterion))
            || self.client.pending_filter.values().any(|(pending, request)| {
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
                self.client.filter_client.entry(peer).or_default().extend(criteria)
            }
            Ok(FilterSubscribeType::Unsubscribe) => {
                if let Some(set) = self.client.filter_client.get_mut(&peer) {
                    for criterion in criteria {
                        set.remove(&criterion);
                    }
                }
            }
            Ok(FilterSubscribeType::UnsubscribeAll) => {
                self.client.filter_client.remove(&peer);
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
        if self.client.filter_client.is_empty() {
            return;
        }
        if self.client.recent.len() >= RECENT_LIMIT && !self.client.recent.contains_key(&hash) {
            return;
        }
        let arrival = self.client.recent.entry(hash).or_insert_with(|| Arrival {
            seen: Instant::now(),
            criterion: (topic.to_owned(), content_topic.to_owned()),
            pushed_by: HashSet::new(),
        });
        if let Some(peer) = pushed_by {
            arrival.pushed_by.insert(peer);
            self.client.service_peers.delivered(peer);
        }
    }

    /// Charges a miss to every subscribed filter peer that did not push a matching message
    /// within the window.
    pub(super) fn check_missed_pushes(&mut self, now: Instant) {
        let due: Vec<MessageHash> = self
            .client
            .recent
            .iter()
            .filter(|(_, a)| now.duration_since(a.seen) >= PUSH_WINDOW)
            .map(|(h, _)| *h)
            .collect();
        for hash in due {
            let Some(arrival) = self.client.recent.remove(&hash) else { continue };
            let missing: Vec<PeerId> = self
                .client
                .filter_client
                .iter()
                .filter(|(peer, criteria)| {
                    criteria.contains(&arrival.criterion) && !arrival.pushed_by.contains(peer)
                })
                .map(|(peer, _)| *peer)
                .collect();
            for peer in missing {
                self.client.service_peers.missed(peer);
            }
        }
    }
}

/// Client-side filter subscriptions, by service peer.
pub(super) type FilterClient = HashMap<PeerId, HashSet<(String, String)>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_slow_and_omitting_peers_rank_last() {
        let mut peers = ServicePeers::default();
        let (good, slow, failing, unknown) =
            (PeerId::random(), PeerId::random(), PeerId::random(), PeerId::random());
        for _ in 0..5 {
            peers.success(ServiceKind::Store, good, Duration::from_millis(5));
            peers.success(ServiceKind::Store, slow, Duration::from_millis(400));
            peers.failure(ServiceKind::Store, failing);
        }
        let ranked = peers.rank(ServiceKind::Store, &[failing, slow, unknown, good]);
        assert_eq!(ranked, vec![good, unknown, slow, failing]);

        let (faithful, omits) = (PeerId::random(), PeerId::random());
        for _ in 0..10 {
            peers.delivered(faithful);
            peers.missed(omits);
        }
        peers.delivered(omits);
        assert_eq!(peers.rank(ServiceKind::Filter, &[omits, faithful]), vec![faithful, omits]);
        peers.retain_most_used(2);
        assert!(peers.scores.len() <= 2);
    }
}
