//! Quality of the service peers a node uses as a client (store, filter, lightpush): latency,
//! failures and, for filter, messages a peer failed to push that another path delivered. Light
//! clients pick the best-scoring peer, so a filter node that omits messages or a slow store node
//! loses its clients. Pure bookkeeping; the service records outcomes.

use std::{collections::HashMap, time::Duration};

use libp2p::PeerId;

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
