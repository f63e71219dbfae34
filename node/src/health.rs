//! nwaku's health report (`GET /health`), from a node's figures: the node's state, how well it is
//! connected, one entry per protocol with nwaku's statuses and descriptions, and each relay
//! shard's topic health. A node with no peers is **not** ready: a Consul check pointed at it
//! must go red when it is isolated (the failure Status's fleets suffered unnoticed).
//!
//! Shapes and words follow nwaku / logos-delivery v0.38 (`../shared/specs/fleet-ops.md` §5, §7):
//! statuses INITIALIZING, READY, NOT_READY, NOT_MOUNTED, SHUTTING_DOWN; Relay NOT_READY "No
//! connected peers"; topic health UNHEALTHY below one mesh peer, MINIMALLY_HEALTHY below
//! gossipsub's dLow (4), else SUFFICIENTLY_HEALTHY.

use serde::Serialize;

use crate::running::NodeStats;

/// gossipsub's `D_low` (Waku's relay parameters): below it a topic is only minimally healthy.
pub const MESH_D_LOW: usize = crate::relay::MESH_N_LOW;
/// Service peers a light node needs to count as connected (logos-delivery v0.38).
pub const HEALTHY_SERVICE_PEERS: usize = 2;

/// Which protocols a node serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mounted {
    /// Relay.
    pub relay: bool,
    /// The store server.
    pub store: bool,
    /// The filter server.
    pub filter: bool,
    /// The lightpush server.
    pub lightpush: bool,
    /// The peer-exchange server.
    pub peer_exchange: bool,
}

/// One protocol's entry, `{"Relay": "READY", "desc": ""}` in JSON (see [`HealthReport::to_json`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolHealth {
    /// nwaku's protocol name, the JSON key of the status.
    pub protocol: &'static str,
    /// INITIALIZING, READY, NOT_READY or NOT_MOUNTED.
    pub status: &'static str,
    /// Why, when not ready.
    pub desc: String,
}

/// One relay shard's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicHealth {
    /// The pubsub topic.
    pub topic: String,
    /// UNHEALTHY, MINIMALLY_HEALTHY or SUFFICIENTLY_HEALTHY.
    pub health: &'static str,
    /// Its mesh size.
    pub mesh_peers: usize,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// READY once the node runs (SHUTTING_DOWN and INITIALIZING are given by whoever knows the
    /// node is not running).
    pub node_health: &'static str,
    /// Disconnected, PartiallyConnected or Connected.
    pub connection_status: &'static str,
    /// One entry per protocol.
    pub protocols: Vec<ProtocolHealth>,
    /// One entry per subscribed relay shard.
    pub topics: Vec<TopicHealth>,
}

impl HealthReport {
    /// The report for a running node with `stats` serving `mounted`.
    pub fn of(stats: &NodeStats, mounted: Mounted) -> Self {
        let connected = stats.peers_inbound + stats.peers_outbound;
        let topics: Vec<TopicHealth> = stats
            .mesh_per_topic
            .iter()
            .map(|(topic, &mesh)| TopicHealth {
                topic: topic.clone(),
                health: topic_health(mesh),
                mesh_peers: mesh,
            })
            .collect();
        let relay_ready = stats.relay_peers > 0;
        let entry = |protocol, on: bool, ready: bool, why: &str| ProtocolHealth {
            protocol,
            status: match (on, ready) {
                (false, _) => "NOT_MOUNTED",
                (true, true) => "READY",
                (true, false) => "NOT_READY",
            },
            desc: if on && !ready { why.to_owned() } else { String::new() },
        };
        let protocols = vec![
            entry("Relay", mounted.relay, relay_ready, "No connected peers"),
            entry("Store", mounted.store, true, ""),
            entry(
                "Filter",
                mounted.filter,
                relay_ready,
                "Relay is not ready, filter will not work",
            ),
            entry(
                "Lightpush",
                mounted.lightpush,
                relay_ready,
                "Node has no relay peers to push messages to",
            ),
            entry("Peer Exchange", mounted.peer_exchange, true, ""),
        ];
        let connection_status = if connected == 0 {
            "Disconnected"
        } else if mounted.relay {
            let all_sufficient =
                !topics.is_empty() && topics.iter().all(|t| t.mesh_peers >= MESH_D_LOW);
            if all_sufficient { "Connected" } else { "PartiallyConnected" }
        } else if connected >= HEALTHY_SERVICE_PEERS {
            "Connected"
        } else {
            "PartiallyConnected"
        };
        Self { node_health: "READY", connection_status, protocols, topics }
    }

    /// The JSON body nwaku's handler answers with.
    pub fn to_json(&self) -> serde_json::Value {
        let protocols: Vec<serde_json::Value> = self
            .protocols
            .iter()
            .map(|p| serde_json::json!({ p.protocol: p.status, "desc": p.desc }))
            .collect();
        serde_json::json!({
            "nodeHealth": self.node_health,
            "connectionStatus": self.connection_status,
            "protocolsHealth": protocols,
            "shardsHealth": self.topics,
        })
    }
}

/// A relay topic's health from its mesh size.
pub fn topic_health(mesh_peers: usize) -> &'static str {
    match mesh_peers {
        0 => "UNHEALTHY",
        n if n < MESH_D_LOW => "MINIMALLY_HEALTHY",
        _ => "SUFFICIENTLY_HEALTHY",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELAY: Mounted =
        Mounted { relay: true, store: false, filter: true, lightpush: false, peer_exchange: true };

    fn stats(peers: usize, relay_peers: usize, mesh: usize) -> NodeStats {
        NodeStats {
            peers_outbound: peers,
            relay_peers,
            mesh_per_topic: [("/waku/2/rs/1/0".to_owned(), mesh)].into(),
            ..NodeStats::default()
        }
    }

    fn status(report: &HealthReport, protocol: &str) -> (&'static str, String) {
        let entry = report.protocols.iter().find(|p| p.protocol == protocol).unwrap();
        (entry.status, entry.desc.clone())
    }

    #[test]
    fn an_isolated_node_is_not_ready() {
        let report = HealthReport::of(&stats(0, 0, 0), RELAY);
        assert_eq!(status(&report, "Relay"), ("NOT_READY", "No connected peers".into()));
        assert_eq!(status(&report, "Filter").0, "NOT_READY");
        assert_eq!(status(&report, "Lightpush").0, "NOT_MOUNTED");
        assert_eq!(status(&report, "Peer Exchange").0, "READY");
        assert_eq!(report.connection_status, "Disconnected");
        assert_eq!(report.topics[0].health, "UNHEALTHY");
        let json = report.to_json();
        assert_eq!(json["protocolsHealth"][0]["Relay"], "NOT_READY");
        assert_eq!(json["protocolsHealth"][0]["desc"], "No connected peers");
    }

    #[test]
    fn mesh_size_sets_topic_health_and_connection_status() {
        let partial = HealthReport::of(&stats(2, 2, 2), RELAY);
        assert_eq!(status(&partial, "Relay"), ("READY", String::new()));
        assert_eq!(partial.topics[0].health, "MINIMALLY_HEALTHY");
        assert_eq!(partial.connection_status, "PartiallyConnected");
        let good = HealthReport::of(&stats(6, 6, MESH_D_LOW), RELAY);
        assert_eq!(good.topics[0].health, "SUFFICIENTLY_HEALTHY");
        assert_eq!(good.connection_status, "Connected");
        assert_eq!(good.to_json()["shardsHealth"][0]["meshPeers"], MESH_D_LOW);
    }

    #[test]
    fn a_light_node_is_connected_with_two_service_peers() {
        let light = Mounted::default();
        let mut one = stats(1, 0, 0);
        one.mesh_per_topic.clear();
        assert_eq!(HealthReport::of(&one, light).connection_status, "PartiallyConnected");
        one.peers_outbound = HEALTHY_SERVICE_PEERS;
        let report = HealthReport::of(&one, light);
        assert_eq!(report.connection_status, "Connected");
        assert!(report.protocols.iter().all(|p| p.status == "NOT_MOUNTED"));
    }
}
