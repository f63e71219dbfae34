//! Health states, like Consul's checks: passing, warning, critical — derived from how fresh a
//! node's newest report is, what it says, and whether the controller could reach the node.

use serde::{Deserialize, Serialize};

use contract::report::Figures;

use crate::{db::nodes::NodeRow, drift::Expectations};

/// A node's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Everything as it should be.
    Passing,
    /// Degraded: listed in trees only if too few passing nodes exist.
    Warning,
    /// Down, silent or unreachable: never listed.
    Critical,
}

impl Health {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passing => "passing",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

impl std::str::FromStr for Health {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "passing" => Ok(Self::Passing),
            "warning" => Ok(Self::Warning),
            "critical" => Ok(Self::Critical),
            other => Err(format!("unknown health state {other:?}")),
        }
    }
}

/// Thresholds, from the controller's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthThresholds {
    /// A report older than this (by measurement time) makes the node a warning.
    pub warning_after_secs: u64,
    /// A report older than this makes it critical.
    pub critical_after_secs: u64,
    /// Fewer relay peers than this is a warning (nwaku aims at 6 good connections).
    pub min_relay_peers: u32,
    /// A node up for less than this without relay peers is *starting* (a warning, not listed)
    /// rather than critical: every node has no peers in its first seconds.
    pub starting_grace_secs: u64,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        Self {
            warning_after_secs: 90,
            critical_after_secs: 300,
            min_relay_peers: 6,
            starting_grace_secs: 60,
        }
    }
}

/// How a starting node's reason begins (trees leave such nodes out).
pub const STARTING: &str = "starting:";

/// The reason of a node whose agent stopped it cleanly.
pub const STOPPED: &str = "stopped by its agent";

/// Evaluates `node` at `now_ms`: the state and a reason an operator can act on. `expected`
/// is what the trees say of its cluster and shards (config drift is a warning).
pub fn evaluate(
    node: &NodeRow,
    thresholds: &HealthThresholds,
    expected: &Expectations,
    now_ms: i64,
) -> (Health, String) {
    evaluate_with(node, &node.figures().unwrap_or_default(), thresholds, expected, now_ms)
}

/// [`evaluate`] with the figures of the node's newest report given (a report being accepted
/// has them parsed already; `node.last_report` is not read).
pub fn evaluate_with(
    node: &NodeRow,
    figures: &Figures,
    thresholds: &HealthThresholds,
    expected: &Expectations,
    now_ms: i64,
) -> (Health, String) {
    let Some(measured) = node.last_measured_at else {
        return (Health::Critical, "no report yet".into());
    };
    let age_secs = (now_ms - measured).max(0) / 1000;
    if age_secs as u64 >= thresholds.critical_after_secs {
        return (Health::Critical, format!("last report {age_secs} s ago"));
    }
    if node.reachable == Some(false) {
        return (Health::Critical, "advertised address unreachable".into());
    }
    if figures.stopping == Some(true) {
        return (Health::Critical, STOPPED.into());
    }
    // No peers yet, shortly after the node started: every node begins so. Only "none": a node
    // that had peers and lost some is an ordinary warning (and stays listed). The reason does
    // not count the seconds, so it does not change (and get written) on every pass.
    if let (Some(up), Some(0)) = (figures.node_uptime_secs, figures.relay_peers)
        && up < thresholds.starting_grace_secs
    {
        return (Health::Warning, format!("{STARTING} no relay peers yet"));
    }
    // Only relaying nodes report relay peers.
    if figures.relay_peers == Some(0) {
        return (Health::Critical, "no relay peers".into());
    }
    // Before the peer count: a node on the wrong cluster has few peers *because* of it.
    if let Some(reason) = expected.drift(node) {
        return (Health::Warning, reason);
    }
    if let Some(reason) = expected.oversized(node) {
        return (Health::Warning, reason);
    }
    if let Some(n) = figures.relay_peers
        && n < thresholds.min_relay_peers
    {
        return (
            Health::Warning,
            format!("{n} relay peers, fewer than {}", thresholds.min_relay_peers),
        );
    }
    // The node's own /health words for its shards: a shard with relay peers but no mesh
    // carries no messages (UNHEALTHY in nwaku's topic health).
    if figures.relay_peers.is_some_and(|n| n > 0)
        && let Some((topic, _)) = figures
            .mesh_per_shard
            .iter()
            .find(|(_, mesh)| node::health::topic_health(**mesh as usize) == "UNHEALTHY")
    {
        return (Health::Warning, format!("shard {topic} UNHEALTHY: no mesh peers"));
    }
    if let Some(probe) = &figures.store_probe
        && !probe.ok
    {
        return (
            Health::Warning,
            format!("store probe failed: {}", probe.error.as_deref().unwrap_or("no answer")),
        );
    }
    if age_secs as u64 >= thresholds.warning_after_secs {
        return (Health::Warning, format!("last report {age_secs} s ago"));
    }
    (Health::Passing, "ok".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reported(figures: serde_json::Value) -> NodeRow {
        NodeRow {
            last_measured_at: Some(1_000),
            last_report: Some(serde_json::json!({ "figures": figures })),
            ..NodeRow::example("aa")
        }
    }

    #[test]
    fn the_same_words_as_the_nodes_own_health() {
        let t = HealthThresholds::default();
        let none = Expectations::default();
        let isolated = reported(serde_json::json!({ "relayPeers": 0 }));
        assert_eq!(
            evaluate(&isolated, &t, &none, 2_000),
            (Health::Critical, "no relay peers".into())
        );
        // Peers, but no mesh on a shard: nwaku's UNHEALTHY topic.
        let meshless = reported(serde_json::json!({
            "relayPeers": 7, "meshPerShard": { "/waku/2/rs/1/0": 4, "/waku/2/rs/1/1": 0 }
        }));
        assert_eq!(
            evaluate(&meshless, &t, &none, 2_000),
            (Health::Warning, "shard /waku/2/rs/1/1 UNHEALTHY: no mesh peers".into())
        );
        let good = reported(serde_json::json!({
            "relayPeers": 7, "meshPerShard": { "/waku/2/rs/1/0": 2 }
        }));
        assert_eq!(evaluate(&good, &t, &none, 2_000), (Health::Passing, "ok".into()));
    }

    #[test]
    fn a_starting_node_is_not_critical_and_a_stopping_one_is() {
        let t = HealthThresholds::default();
        let none = Expectations::default();
        let fresh = reported(serde_json::json!({ "relayPeers": 0, "nodeUptimeSecs": 5 }));
        assert_eq!(
            evaluate(&fresh, &t, &none, 2_000),
            (Health::Warning, "starting: no relay peers yet".into())
        );
        // Some peers, fewer than the minimum, soon after start: an ordinary warning (listed),
        // not "starting" — a node that lost peers must not leave its trees for it.
        let short = reported(serde_json::json!({ "relayPeers": 1, "nodeUptimeSecs": 5 }));
        assert_eq!(
            evaluate(&short, &t, &none, 2_000),
            (Health::Warning, "1 relay peers, fewer than 6".into())
        );
        // Past the grace period, no peers is critical again.
        let stuck = reported(serde_json::json!({ "relayPeers": 0, "nodeUptimeSecs": 61 }));
        assert_eq!(evaluate(&stuck, &t, &none, 2_000).0, Health::Critical);
        // A starting node with enough peers is simply passing.
        let quick = reported(serde_json::json!({ "relayPeers": 6, "nodeUptimeSecs": 5 }));
        assert_eq!(evaluate(&quick, &t, &none, 2_000).0, Health::Passing);
        let leaving = reported(
            serde_json::json!({ "relayPeers": 9, "nodeUptimeSecs": 500, "stopping": true }),
        );
        assert_eq!(evaluate(&leaving, &t, &none, 2_000), (Health::Critical, STOPPED.into()));
    }
}
