//! Messages through a simulated network: publishers send at a steady rate, every node notes
//! when each message reached it, and the bytes each node's links carried meanwhile.
//!
//! Arrival is taken where the application sees it (the node's message event, after
//! validation), on a task per node; on a loaded machine that adds the scheduler's delay, so
//! the figures are an upper bound of what the network itself took.

use std::{
    collections::HashMap,
    time::{Duration, Instant, SystemTime},
};

use anyhow::Context;
use node::message::{MessageHash, WakuMessage};

use super::sim_hosts::SimNode;

/// The content topic of simulated messages on one pubsub topic.
pub(crate) const CONTENT_TOPIC: &str = "/sim/1/traffic/proto";

/// One publisher: a node, and where its messages go.
#[derive(Debug, Clone)]
pub(crate) struct Publisher {
    /// Index of the node.
    pub node: usize,
    /// The pubsub topic it publishes on.
    pub topic: String,
    /// The content topic of its messages.
    pub content_topic: String,
}

/// What to send.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    /// The publishers, in turn.
    pub publishers: Vec<Publisher>,
    /// Payload bytes per message.
    pub size: usize,
    /// Messages per second over all publishers.
    pub rate: f64,
    /// How long to publish.
    pub duration: Duration,
    /// How long to wait for stragglers after the last message.
    pub drain: Duration,
}

/// When arrivals are still missing after the drain, how long the sim waits before it looks
/// once more: a message that comes that late is told apart from one that never comes.
const STRAGGLER_GRACE: Duration = Duration::from_secs(10);
/// Missing arrivals listed by (node, message) in the results; the count is always whole.
pub(crate) const MISSING_LISTED: usize = 50;

/// What happened to the messages.
#[derive(Debug)]
pub(crate) struct Traffic {
    /// Messages published.
    pub sent: usize,
    /// From publishing to arrival, for every (message, node) that arrived; sorted.
    pub latencies: Vec<Duration>,
    /// Per message, from publishing to its first arrival anywhere; sorted. What the
    /// publisher's own queue and first hop took, apart from the spread through the network.
    pub first_arrivals: Vec<Duration>,
    /// Arrivals, of `expected` (every node on the message's topic but the publisher).
    pub delivered: u64,
    pub expected: u64,
    /// Per node, bytes received and sent while publishing (`None`: a node that stopped
    /// meanwhile).
    pub bytes: Vec<Option<(u64, u64)>>,
    /// How long publishing took: the load's duration (or more, on a slow machine).
    pub seconds: f64,
    /// discv5 lookups while publishing (wall-clock time): each checks the signature of
    /// every record it meets, what keeps the cores busy besides the messages.
    pub lookups: Lookups,
    /// Message events a node's receiver missed because it fell behind.
    pub lagged: u64,
    /// Arrivals that came after the drain, within [`STRAGGLER_GRACE`] (counted as delivered,
    /// their latencies among the others).
    pub late: u64,
    /// (node, message index) of arrivals that never came, the first [`MISSING_LISTED`].
    pub missing: Vec<(usize, u64)>,
}

/// Payloads carry their index in their first bytes, which makes every message unique.
pub(crate) const MIN_SIZE: usize = 8;
/// Messages per second the sim will publish at most: beyond this the nodes' send queues, not
/// the network, decide what happens.
pub(crate) const MAX_RATE: f64 = 1000.0;

/// Refuses a load that could not be sent as asked, before any node starts: payloads too small
/// to be unique or too large for the relay, a rate past [`MAX_RATE`], less than a second.
pub(crate) fn check(size: usize, rate: f64, duration: Duration) -> anyhow::Result<()> {
    anyhow::ensure!(size >= MIN_SIZE, "--message-size {size}: at least {MIN_SIZE} bytes");
    let sample = WakuMessage::new(CONTENT_TOPIC, payload(0, size), node::clock::now_ns());
    sample
        .check_publishable(node::message::DEFAULT_MAX_MESSAGE_SIZE)
        .map_err(|e| anyhow::anyhow!("--message-size {size}: {e}"))?;
    anyhow::ensure!(
        rate.is_finite() && rate > 0.0 && rate <= MAX_RATE,
        "--rate {rate}: above 0 and at most {MAX_RATE} messages a second"
    );
    anyhow::ensure!(duration >= Duration::from_secs(1), "--duration: at least 1s");
    Ok(())
}

impl Load {
    /// The same messages in a network `slowdown` times slower than real time: as far apart
    /// again, over as much longer, with as much longer to drain.
    pub(crate) fn slowed(&self, slowdown: u32) -> Self {
        let slowdown = slowdown.max(1);
        Self {
            rate: self.rate / f64::from(slowdown),
            duration: self.duration * slowdown,
            drain: self.drain * slowdown,
            ..self.clone()
        }
    }
}

impl Traffic {
    /// Wall-clock figures of a network `slowdown` times slower than real time in the
    /// network's own time: every latency divided by it, and so the publishing time (which
    /// multiplies the rates back).
    pub(crate) fn in_network_time(mut self, slowdown: u32) -> Self {
        let slowdown = slowdown.max(1);
        for latency in self.latencies.iter_mut().chain(self.first_arrivals.iter_mut()) {
            *latency /= slowdown;
        }
        self.seconds /= f64::from(slowdown);
        self
    }

    /// Per node that ran throughout, bytes per second received and sent while publishing.
    pub(crate) fn rates(&self) -> Vec<(f64, f64)> {
        let seconds = self.seconds.max(1e-3);
        self.bytes
            .iter()
            .flatten()
            .map(|(i, o)| (*i as f64 / seconds, *o as f64 / seconds))
            .collect()
    }

    /// Bytes all nodes that ran throughout received while publishing.
    pub(crate) fn received(&self) -> u64 {
        self.bytes.iter().flatten().map(|(i, _)| i).sum()
    }

    /// Arrivals over expected arrivals.
    pub(crate) fn delivery_ratio(&self) -> f64 {
        if self.expected == 0 { 1.0 } else { self.delivered as f64 / self.expected as f64 }
    }
}

/// A payload of `size` bytes unique to message `index`, not compressible.
fn payload(index: u64, size: usize) -> Vec<u8> {
    let mut state = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut bytes = Vec::with_capacity(size);
    bytes.extend_from_slice(&index.to_be_bytes());
    while bytes.len() < size {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(size.max(MIN_SIZE));
    bytes
}

/// Byte counters of every node: (received, sent); `None` for a node that has stopped. And
/// the discv5 lookups each ran.
async fn counters(nodes: &[SimNode]) -> (Vec<Option<(u64, u64)>>, Vec<u64>) {
    let stats = futures::future::join_all(nodes.iter().map(SimNode::stats)).await;
    let lookups = stats.iter().map(|s| s.as_ref().map_or(0, |s| s.discv5_lookups)).collect();
    let bytes = stats.into_iter().map(|s| s.ok().map(|s| (s.bytes_received, s.bytes_sent)));
    (bytes.collect(), lookups)
}

/// discv5 lookups while the messages flowed: per node per minute of wall-clock time, how
/// many nodes looked at all, and the most one node ran.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub(crate) struct Lookups {
    pub per_node_per_minute: f64,
    pub nodes_looking: usize,
    pub max_per_node: u64,
}

impl Lookups {
    fn between(before: &[u64], after: &[u64], wall: Duration) -> Self {
        let runs: Vec<u64> = before.iter().zip(after).map(|(b, a)| a.saturating_sub(*b)).collect();
        let total: u64 = runs.iter().sum();
        Self {
            per_node_per_minute: total as f64
                / runs.len().max(1) as f64
                / (wall.as_secs_f64() / 60.0).max(1e-3),
            nodes_looking: runs.iter().filter(|&&r| r > 0).count(),
            max_per_node: runs.iter().copied().max().unwrap_or(0),
        }
    }
}

/// Publishes `load` through `nodes` and measures what arrived where. Node `i` is counted as a
/// receiver of the pubsub topics `topics[i]`: a node given none (one that leaves meanwhile, or
/// a misbehaving one) is not counted at all.
pub(crate) async fn run(
    nodes: &[SimNode],
    topics: &[Vec<String>],
    load: &Load,
) -> anyhow::Result<Traffic> {
    anyhow::ensure!(topics.len() == nodes.len(), "one topic list per node");
    anyhow::ensure!(!load.publishers.is_empty(), "no publisher");
    anyhow::ensure!(load.rate > 0.0, "the rate must be above 0");
    // A receiver per node, from before the first message.
    // Every node records what arrives when (each process reads the same clock).
    for recording in futures::future::join_all(nodes.iter().map(SimNode::record)).await {
        recording.context("starting to record arrivals")?;
    }

    let (before, lookups_before) = counters(nodes).await;
    let started = Instant::now();
    let count = (load.duration.as_secs_f64() * load.rate).round().max(1.0) as u64;
    let mut published: Published<'_> = HashMap::new();
    let mut expected = 0u64;
    let mut next_progress = Instant::now() + Duration::from_secs(2);
    for index in 0..count {
        let at = started + Duration::from_secs_f64(index as f64 / load.rate);
        tokio::time::sleep_until(at.into()).await;
        let Publisher { node: publisher, topic, content_topic } =
            &load.publishers[index as usize % load.publishers.len()];
        let publisher = *publisher;
        let now_ns = node::clock::now_ns();
        let message = WakuMessage::new(content_topic.as_str(), payload(index, load.size), now_ns);
        let (hash, sent_at) = nodes
            .get(publisher)
            .with_context(|| format!("no node {publisher} to publish"))?
            .publish(topic, message)
            .await
            .with_context(|| format!("node {publisher} publishing message {index}"))?;
        published.insert(hash, (sent_at, publisher, topic.as_str(), index));
        expected += topics
            .iter()
            .enumerate()
            .filter(|(node, relayed)| *node != publisher && relayed.contains(topic))
            .count() as u64;
        if Instant::now() >= next_progress {
            eprintln!("sim: traffic, {}/{count} messages sent", index + 1);
            next_progress = Instant::now() + Duration::from_secs(2);
        }
    }
    // The window is the whole duration, not up to the last message (a message every 1/rate
    // seconds leaves one interval after it).
    tokio::time::sleep_until((started + load.duration).into()).await;
    let publishing = started.elapsed();
    let (after, lookups_after) = counters(nodes).await;
    let lookups = Lookups::between(&lookups_before, &lookups_after, publishing);
    tokio::time::sleep(load.drain).await;
    let mut counted = collect(nodes, &published, topics).await?;
    let mut late = 0;
    if counted.delivered() < expected {
        // Late or lost? Look once more, a while later.
        eprintln!(
            "sim: traffic, {} of {expected} arrivals missing after the drain; looking again in {STRAGGLER_GRACE:?}",
            expected - counted.delivered()
        );
        tokio::time::sleep(STRAGGLER_GRACE).await;
        let again = collect(nodes, &published, topics).await?;
        late = again.delivered().saturating_sub(counted.delivered());
        counted = again;
    }
    for stopped in futures::future::join_all(nodes.iter().map(SimNode::stop_recording)).await {
        stopped.context("stopping a recording")?;
    }
    let delivered = counted.delivered();
    let Collected { mut latencies, lagged, arrived, first } = counted;
    let mut first_arrivals: Vec<Duration> = first.into_values().collect();
    first_arrivals.sort_unstable();
    let missing = missing_pairs(&published, topics, &arrived, MISSING_LISTED);
    latencies.sort_unstable();
    let bytes = before
        .iter()
        .zip(&after)
        .map(|(before, after)| {
            let ((in0, out0), (in1, out1)) = ((*before)?, (*after)?);
            Some((in1.saturating_sub(in0), out1.saturating_sub(out0)))
        })
        .collect();
    Ok(Traffic {
        sent: published.len(),
        latencies,
        first_arrivals,
        delivered,
        expected,
        bytes,
        seconds: publishing.as_secs_f64(),
        lookups,
        lagged,
        late,
        missing,
    })
}

/// Published messages: when, by which node, on which topic, and their index.
type Published<'a> = HashMap<MessageHash, (SystemTime, usize, &'a str, u64)>;

/// (node, message index) of the arrivals that did not come, in message order, at most
/// `limit`: every node on a message's topic but its publisher should have had it.
fn missing_pairs(
    published: &Published<'_>,
    topics: &[Vec<String>],
    arrived: &std::collections::HashSet<(usize, MessageHash)>,
    limit: usize,
) -> Vec<(usize, u64)> {
    let mut by_index: Vec<_> = published.iter().collect();
    by_index.sort_by_key(|(_, (.., index))| *index);
    by_index
        .into_iter()
        .flat_map(|(hash, (_, publisher, topic, index))| {
            topics
                .iter()
                .enumerate()
                .filter(move |(node, relayed)| {
                    node != publisher
                        && relayed.iter().any(|t| t == topic)
                        && !arrived.contains(&(*node, *hash))
                })
                .map(move |(node, _)| (node, *index))
        })
        .take(limit)
        .collect()
}

/// Arrivals of the published messages at the nodes that should have them.
struct Collected {
    latencies: Vec<Duration>,
    lagged: u64,
    /// (node, message) pairs that arrived.
    arrived: std::collections::HashSet<(usize, MessageHash)>,
    /// Per message, its earliest arrival's latency.
    first: HashMap<MessageHash, Duration>,
}

impl Collected {
    fn delivered(&self) -> u64 {
        self.arrived.len() as u64
    }
}

async fn collect(
    nodes: &[SimNode],
    published: &Published<'_>,
    topics: &[Vec<String>],
) -> anyhow::Result<Collected> {
    let recorded = futures::future::join_all(nodes.iter().map(SimNode::arrivals)).await;
    let mut collected = Collected {
        latencies: Vec::new(),
        lagged: 0,
        arrived: std::collections::HashSet::new(),
        first: HashMap::new(),
    };
    for (index, recorded) in recorded.into_iter().enumerate() {
        let (arrivals, missed) = recorded.with_context(|| format!("node {index}'s arrivals"))?;
        collected.lagged += missed;
        for (hash, at) in arrivals {
            if let Some((sent_at, publisher, topic, _)) = published.get(&hash)
                && *publisher != index
                && topics[index].iter().any(|t| t == topic)
                && collected.arrived.insert((index, hash))
            {
                let latency = at.duration_since(*sent_at).unwrap_or_default();
                collected.latencies.push(latency);
                let first = collected.first.entry(hash).or_insert(latency);
                *first = (*first).min(latency);
            }
        }
    }
    Ok(collected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_that_cannot_be_sent_as_asked_are_refused() {
        let second = Duration::from_secs(1);
        assert!(check(1024, 1.0, second).is_ok());
        assert!(check(7, 1.0, second).unwrap_err().to_string().contains("at least 8 bytes"));
        let too_big = check(200_000, 1.0, second).unwrap_err().to_string();
        assert!(too_big.contains("153600"), "{too_big}");
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e9] {
            assert!(check(1024, rate, second).is_err(), "{rate}");
        }
        assert!(check(1024, 1.0, Duration::ZERO).is_err());
    }

    #[test]
    fn missing_arrivals_are_listed_by_node_and_message_in_order() {
        let hash = |i: u8| MessageHash([i; 32]);
        let topics: Vec<Vec<String>> =
            vec![vec!["a".into()], vec!["a".into()], vec!["b".into()], vec![]];
        let at = SystemTime::UNIX_EPOCH;
        // Message 0 on "a" by node 0, message 1 on "b" by node 1, message 2 on "a" by node 1.
        let published: Published<'_> =
            [(hash(0), (at, 0, "a", 0)), (hash(1), (at, 1, "b", 1)), (hash(2), (at, 1, "a", 2))]
                .into_iter()
                .collect();
        // Node 1 had message 0; node 2 (on "b") nothing; node 0 nothing; node 3 relays none.
        let arrived = [(1, hash(0))].into_iter().collect();
        assert_eq!(missing_pairs(&published, &topics, &arrived, 10), vec![(2, 1), (0, 2)]);
        assert_eq!(missing_pairs(&published, &topics, &arrived, 1), vec![(2, 1)]);
        let all = [(1, hash(0)), (2, hash(1)), (0, hash(2))].into_iter().collect();
        assert!(missing_pairs(&published, &topics, &all, 10).is_empty());
    }

    #[test]
    fn payloads_have_their_size_and_differ() {
        assert_eq!(payload(1, 1024).len(), 1024);
        assert_eq!(payload(2, 10_000).len(), 10_000);
        assert_ne!(payload(1, 64), payload(2, 64));
        assert_eq!(payload(3, 64), payload(3, 64));
    }
}
