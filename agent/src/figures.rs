//! Health figures (report schema v1 [`Figures`]) from the node's [`NodeStats`] and what the
//! agent itself knows (restarts, errors, the store probe, the applied configuration).
//!
//! Pure: the sampler keeps the previous counters to turn them into rates, and takes the time
//! as a parameter.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use contract::{
    desired::ConfigStatus,
    report::{Figures, StoreProbe},
};
use node::running::NodeStats;

/// Errors kept between two reports.
pub const ERROR_BUFFER: usize = 16;
/// Longest error text kept.
pub const ERROR_LENGTH: usize = 240;

/// Recent errors, shared by the supervisor, the probe and the reporter; bounded, the oldest
/// go first.
#[derive(Debug, Clone, Default)]
pub struct ErrorLog(Arc<Mutex<VecDeque<String>>>);

impl ErrorLog {
    /// Records `error`.
    pub fn push(&self, error: impl Into<String>) {
        let mut error: String = error.into();
        if error.len() > ERROR_LENGTH {
            let mut end = ERROR_LENGTH;
            while !error.is_char_boundary(end) {
                end -= 1;
            }
            error.truncate(end);
        }
        let mut errors = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if errors.len() >= ERROR_BUFFER {
            errors.pop_front();
        }
        errors.push_back(error);
    }

    /// Takes every recorded error.
    pub fn drain(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).drain(..).collect()
    }
}

/// What the agent adds to the node's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentFigures {
    /// Node restarts by the supervisor.
    pub restarts: u64,
    /// Errors since the last measurement.
    pub errors: Vec<String>,
    /// The newest store probe.
    pub store_probe: Option<StoreProbe>,
    /// The newest desired configuration's outcome.
    pub config: Option<ConfigStatus>,
    /// How long the running node has been up.
    pub node_uptime: Option<std::time::Duration>,
}

/// Turns snapshots into figures.
#[derive(Debug, Default)]
pub struct Sampler {
    previous: Option<(Instant, u64, u64)>,
    inbound_seen: bool,
}

impl Sampler {
    /// Figures from `stats` at `now`. `stats` is `None` while the node is down.
    pub fn sample(
        &mut self,
        stats: Option<&NodeStats>,
        agent: AgentFigures,
        now: Instant,
    ) -> Figures {
        let mut figures = Figures {
            restarts: Some(agent.restarts),
            errors: agent.errors,
            store_probe: agent.store_probe,
            config: agent.config,
            node_uptime_secs: agent.node_uptime.map(|d| d.as_secs()),
            ..Figures::default()
        };
        let Some(stats) = stats else {
            // Down: no peers, and rates start over with the next node.
            self.previous = None;
            figures.relay_peers = Some(0);
            figures.peers_inbound = Some(0);
            figures.peers_outbound = Some(0);
            figures.inbound_seen = Some(self.inbound_seen);
            return figures;
        };
        self.inbound_seen |= stats.peers_inbound > 0;
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        figures.peers_inbound = Some(count(stats.peers_inbound));
        figures.peers_outbound = Some(count(stats.peers_outbound));
        for ((direction, protocol), n) in &stats.peers_by_direction_protocol {
            figures.peers_by_protocol.insert(format!("{direction}:{protocol}"), count(*n));
        }
        figures.relay_peers = Some(count(stats.relay_peers));
        figures.mesh_per_shard =
            stats.mesh_per_topic.iter().map(|(topic, n)| (topic.clone(), count(*n))).collect();
        figures.fleet_share = stats.fleet_relay_share;
        figures.bootstrap_seconds = stats.time_to_target_relay_peers.map(|d| d.as_secs_f64());
        figures.inbound_seen = Some(self.inbound_seen);
        figures.discv5_table = Some(count(stats.discv5_table_size));
        let (received, published) = (stats.messages_received, stats.messages_published);
        if let Some((then, old_received, old_published)) = self.previous {
            let secs = now.saturating_duration_since(then).max(Duration::from_millis(1));
            // A restarted node counts from zero again.
            let rate = |new: u64, old: u64| {
                let delta = if new >= old { new - old } else { new };
                delta as f64 / secs.as_secs_f64()
            };
            figures.messages_in_per_sec = Some(rate(received, old_received));
            figures.messages_out_per_sec = Some(rate(published, old_published));
        }
        self.previous = Some((now, received, published));
        figures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_from_stats_with_rates_across_a_restart() {
        let mut sampler = Sampler::default();
        let t0 = Instant::now();
        let mut stats = NodeStats {
            peers_inbound: 2,
            peers_outbound: 5,
            relay_peers: 6,
            fleet_relay_share: Some(0.5),
            time_to_target_relay_peers: Some(Duration::from_millis(1500)),
            discv5_table_size: 17,
            messages_received: 100,
            messages_published: 10,
            ..NodeStats::default()
        };
        stats.mesh_per_topic.insert("/waku/2/rs/1/0".into(), 4);
        stats.peers_by_direction_protocol.insert(("in".into(), "/vac/waku/relay/2.0.0".into()), 2);
        let first = sampler.sample(Some(&stats), AgentFigures::default(), t0);
        assert_eq!(first.messages_in_per_sec, None, "no rate from one sample");
        assert_eq!(first.relay_peers, Some(6));
        assert_eq!(first.mesh_per_shard["/waku/2/rs/1/0"], 4);
        assert_eq!(first.peers_by_protocol["in:/vac/waku/relay/2.0.0"], 2);
        assert_eq!(first.bootstrap_seconds, Some(1.5));
        assert_eq!(first.discv5_table, Some(17));
        assert_eq!(first.inbound_seen, Some(true));

        stats.messages_received = 300;
        stats.messages_published = 30;
        stats.peers_inbound = 0;
        let agent = AgentFigures { restarts: 3, errors: vec!["x".into()], ..Default::default() };
        let second = sampler.sample(Some(&stats), agent, t0 + Duration::from_secs(2));
        assert_eq!(second.messages_in_per_sec, Some(100.0));
        assert_eq!(second.messages_out_per_sec, Some(10.0));
        assert_eq!(second.inbound_seen, Some(true), "seen once stays seen");
        assert_eq!(second.restarts, Some(3));
        assert_eq!(second.errors, ["x"]);

        stats.messages_received = 40;
        let third =
            sampler.sample(Some(&stats), AgentFigures::default(), t0 + Duration::from_secs(4));
        assert_eq!(third.messages_in_per_sec, Some(20.0), "counter reset by a restart");

        let down = sampler.sample(None, AgentFigures::default(), t0 + Duration::from_secs(6));
        assert_eq!(down.relay_peers, Some(0));
        assert_eq!(down.messages_in_per_sec, None);
    }

    #[test]
    fn error_log_is_bounded() {
        let log = ErrorLog::default();
        for i in 0..40 {
            log.push(format!("error {i} {}", "é".repeat(200)));
        }
        let errors = log.drain();
        assert_eq!(errors.len(), ERROR_BUFFER);
        assert!(errors[0].starts_with("error 24 "));
        assert!(errors.iter().all(|e| e.len() <= ERROR_LENGTH));
        assert!(log.drain().is_empty());
    }
}
