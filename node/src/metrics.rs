//! Prometheus metrics under nwaku's names where the concept is the same, so existing Grafana
//! dashboards and alert rules carry over. Built from a [`NodeStats`] snapshot at scrape time:
//! no global registry, nothing to keep in sync.

use prometheus::{
    Encoder, Gauge, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::running::NodeStats;

/// Errors while encoding metrics (only programming errors: duplicate names and the like).
pub type MetricsError = prometheus::Error;

/// The Prometheus text exposition of `stats`.
pub fn render(stats: &NodeStats, version: &str) -> Result<String, MetricsError> {
    let registry = Registry::new();

    let version_gauge =
        IntGaugeVec::new(Opts::new("waku_version", "Waku version info"), &["version"])?;
    version_gauge.with_label_values(&[version]).set(1);
    registry.register(Box::new(version_gauge))?;

    let connected = IntGaugeVec::new(
        Opts::new("waku_connected_peers", "Connected peers by direction and protocol"),
        &["direction", "protocol"],
    )?;
    for ((direction, protocol), count) in &stats.peers_by_direction_protocol {
        connected.with_label_values(&[direction, protocol]).set(as_i64(*count));
    }
    registry.register(Box::new(connected))?;

    let peers = IntGaugeVec::new(
        Opts::new("libp2p_peers_by_direction", "Connected peers by direction"),
        &["direction"],
    )?;
    peers.with_label_values(&["in"]).set(as_i64(stats.peers_inbound));
    peers.with_label_values(&["out"]).set(as_i64(stats.peers_outbound));
    registry.register(Box::new(peers))?;

    let total = IntGauge::new("libp2p_peers", "Connected peers")?;
    total.set(as_i64(stats.peers_inbound + stats.peers_outbound));
    registry.register(Box::new(total))?;

    let mesh = IntGaugeVec::new(
        Opts::new("libp2p_gossipsub_peers_per_topic_mesh", "Relay mesh size per pubsub topic"),
        &["topic"],
    )?;
    for (topic, size) in &stats.mesh_per_topic {
        mesh.with_label_values(&[topic]).set(as_i64(*size));
    }
    registry.register(Box::new(mesh))?;

    let relay = IntGauge::new("waku_relay_peers", "Peers relaying on this node's topics")?;
    relay.set(as_i64(stats.relay_peers));
    registry.register(Box::new(relay))?;

    let fleet =
        Gauge::new("wakufleet_fleet_relay_share", "Share of relay peers that are fleet nodes")?;
    fleet.set(stats.fleet_relay_share.unwrap_or(0.0));
    registry.register(Box::new(fleet))?;

    let bootstrap = Gauge::new(
        "wakufleet_time_to_target_relay_peers_seconds",
        "Seconds from start to 6 relay peers (0 until reached)",
    )?;
    bootstrap.set(stats.time_to_target_relay_peers.map_or(0.0, |d| d.as_secs_f64()));
    registry.register(Box::new(bootstrap))?;

    let messages =
        IntCounterVec::new(Opts::new("waku_node_messages_total", "Messages by type"), &["type"])?;
    messages.with_label_values(&["relay"]).inc_by(stats.messages_received);
    messages.with_label_values(&["published"]).inc_by(stats.messages_published);
    registry.register(Box::new(messages))?;

    let errors =
        IntCounterVec::new(Opts::new("waku_node_errors_total", "Errors by type"), &["type"])?;
    errors.with_label_values(&["invalid_message"]).inc_by(stats.invalid_messages);
    errors.with_label_values(&["metadata_rejection"]).inc_by(stats.metadata_rejections);
    errors.with_label_values(&["refused_inbound"]).inc_by(stats.refused_inbound);
    errors.with_label_values(&["dial_failure"]).inc_by(stats.dials_failed);
    errors.with_label_values(&["invalid_record"]).inc_by(stats.invalid_records);
    errors.with_label_values(&["store_query_refused"]).inc_by(stats.store_queries_refused);
    registry.register(Box::new(errors))?;

    let queries = IntCounterVec::new(
        Opts::new("waku_store_queries_total", "Store queries served, by outcome"),
        &["outcome"],
    )?;
    let refused = stats.store_queries_refused;
    queries.with_label_values(&["answered"]).inc_by(stats.store_queries.saturating_sub(refused));
    queries.with_label_values(&["refused"]).inc_by(refused);
    registry.register(Box::new(queries))?;

    let store = IntGauge::new("waku_peer_store_size", "Known peers")?;
    store.set(as_i64(stats.known_peers));
    registry.register(Box::new(store))?;

    let dns = IntGauge::new("waku_dnsdisc_discovered", "Peers found through DNS discovery")?;
    dns.set(i64::try_from(stats.dns_discovered).unwrap_or(i64::MAX));
    registry.register(Box::new(dns))?;

    // nwaku's name, which its Grafana dashboard plots as rate(...) * 8 bits per second.
    let bytes = IntCounterVec::new(
        Opts::new("libp2p_network_bytes_total", "Bytes over the node's TCP connections"),
        &["direction"],
    )?;
    bytes.with_label_values(&["in"]).inc_by(stats.bytes_received);
    bytes.with_label_values(&["out"]).inc_by(stats.bytes_sent);
    registry.register(Box::new(bytes))?;

    let uptime = Gauge::new("wakufleet_uptime_seconds", "Seconds since the node started")?;
    uptime.set(stats.uptime.as_secs_f64());
    registry.register(Box::new(uptime))?;

    let mut out = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_nwaku_names() {
        let mut stats = NodeStats {
            peers_inbound: 2,
            peers_outbound: 3,
            relay_peers: 4,
            bytes_received: 1234,
            bytes_sent: 99,
            ..NodeStats::default()
        };
        stats.mesh_per_topic.insert("/waku/2/rs/0/0".into(), 4);
        stats.peers_by_direction_protocol.insert(("in".into(), "/vac/waku/relay/2.0.0".into()), 5);
        let text = render(&stats, "v0.1.0").unwrap();
        for needle in [
            "libp2p_peers 5",
            "libp2p_gossipsub_peers_per_topic_mesh{topic=\"/waku/2/rs/0/0\"} 4",
            "waku_connected_peers{direction=\"in\",protocol=\"/vac/waku/relay/2.0.0\"} 5",
            "waku_version{version=\"v0.1.0\"} 1",
            "waku_node_messages_total{type=\"relay\"} 0",
            "libp2p_network_bytes_total{direction=\"in\"} 1234",
            "libp2p_network_bytes_total{direction=\"out\"} 99",
        ] {
            assert!(text.contains(needle), "missing {needle}:\n{text}");
        }
    }
}
