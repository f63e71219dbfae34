//! `wakufleet sim` at CI sizes. 60 nodes, fleet-loss: every node reaches its relay target from
//! a fleet's tree alone over links of 40–130 ms, messages reach every node, then the whole
//! fleet crashes (no FIN: its links go silent) and messages still reach every survivor, and
//! the survivors drop their dead connections. 40 nodes, shards: messages reach the nodes of
//! their shard. results.json says so in the fields the report promises.

use serde_json::Value;

use crate::helpers::{fails, ok};

#[test]
fn sixty_nodes_reach_the_relay_target_deliver_and_survive_the_fleets_crash() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let args = [
        "sim",
        "--nodes",
        "60",
        "--scenario",
        "fleet-loss",
        "--duration",
        "5s",
        "--rate",
        "4",
        "--out",
        out_dir.to_str().unwrap(),
    ];
    let out = ok(dir.path(), &args);
    // The survivors: every one at its target.
    assert!(out.contains("57 reached 6 relay peers"), "{out}");
    let text = std::fs::read_to_string(out_dir.join("results.json")).unwrap();
    let results: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(results["scenario"], "fleet-loss");
    assert_eq!(results["rtt"], "40ms-130ms", "the default links");
    assert_eq!(results["nodes"], 60);
    assert_eq!(results["fleet_nodes"], 3);
    assert_eq!(results["reached_target"], 57, "{text}");
    assert!(results["relay_peers"]["min"].as_u64().unwrap() >= 6, "{text}");
    let bootstrap = &results["bootstrap_seconds"];
    let (p50, p99, max) = (
        bootstrap["p50"].as_f64().unwrap(),
        bootstrap["p99"].as_f64().unwrap(),
        bootstrap["max"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{text}");
    // Non-fleet nodes came in through the fleet's tree, then found each other: the fleet
    // holds some of their relay peers, not all.
    // Once the fleet is gone, no survivor's relay peers are fleet nodes.
    let share = &results["fleet_share"];
    assert_eq!(share["max"].as_f64().unwrap(), 0.0, "{text}");
    let loss = &results["fleet_loss"];
    assert!(loss["delivery_before"].as_f64().unwrap() >= 0.99, "{text}");
    assert!(loss["delivery_after"].as_f64().unwrap() >= 0.99, "{text}");
    assert_eq!(loss["healed"], 57, "{text}");
    // A crashed peer sends no FIN; the survivors found out by ping, well within the limit.
    let gone = loss["dead_connections_gone_seconds"].as_f64();
    assert!(gone.is_some_and(|s| s < 100.0), "{text}");
    assert!(results["rss_bytes_per_node"].as_u64().unwrap() > 0, "{text}");
    // After the crash, 20 messages from 10 publishers reached the 56 other survivors, none
    // faster than one hop of the shortest link (20 ms one way): the links were shaped.
    assert_eq!(results["messages"]["sent"], 20, "{text}");
    assert_eq!(results["messages"]["publishers"], 10, "{text}");
    assert!(results["delivery_ratio"].as_f64().unwrap() >= 0.99, "{text}");
    let propagation = &results["propagation_ms"];
    let (p50, p95, max) = (
        propagation["p50"].as_f64().unwrap(),
        propagation["p95"].as_f64().unwrap(),
        propagation["max"].as_f64().unwrap(),
    );
    assert!(20.0 <= p50 && p50 <= p95 && p95 <= max, "{text}");
    // Every node received at least the payloads (4 KiB/s) and sent something.
    let bandwidth = &results["bandwidth_bytes_per_sec_per_node"];
    assert!(bandwidth["in_mean"].as_f64().unwrap() > 4096.0, "{text}");
    assert!(bandwidth["out_mean"].as_f64().unwrap() > 0.0, "{text}");
    assert!(results["messages"]["received_bytes_per_payload_byte"].as_f64().unwrap() >= 1.0);
    for picture in ["propagation_cdf.svg", "bandwidth_in_cdf.svg", "bandwidth_out_cdf.svg"] {
        let svg = std::fs::read_to_string(out_dir.join(picture)).unwrap();
        assert!(svg.contains("<polyline"), "{picture}: {svg}");
    }
    // The pictures: one CDF step (two points) per node that reached the target, and the page.
    let svg = std::fs::read_to_string(out_dir.join("bootstrap_cdf.svg")).unwrap();
    let points = svg.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
    assert_eq!(points.split(' ').count(), 114, "{svg}");
    let share = std::fs::read_to_string(out_dir.join("fleet_share_cdf.svg")).unwrap();
    assert!(share.starts_with("<svg") && share.contains("<polyline"), "{share}");
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains("<img src=\"bootstrap_cdf.svg\""), "{html}");
    assert!(html.contains("<th>reached_target</th><td>57</td>"), "{html}");
}

#[test]
fn bad_arguments_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    fails(
        dir.path(),
        &["sim", "--scenario", "meteor", "--out", "x"],
        "unknown scenario \"meteor\"",
    );
    fails(dir.path(), &["sim", "--nodes", "70000", "--out", "y"], "at most 59750 nodes");
    fails(dir.path(), &["sim", "--nodes", "1", "--out", "z"], "at least 2 nodes");
    // clap's own error, with its usage hint.
    let out = crate::helpers::wakufleet(dir.path(), &["sim", "--rtt", "130ms-40ms", "--out", "w"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("lower bound is above"), "{stderr}");
    fails(
        dir.path(),
        &["sim", "--scenario", "steady", "--publishers", "0", "--out", "v"],
        "at least one publisher",
    );
    fails(dir.path(), &["sim", "--link-mbit", "0", "--out", "u"], "must be above 0");
    for out in ["x", "y", "z", "w", "v", "u"] {
        assert!(!dir.path().join(out).exists(), "{out}: nothing written for a refused run");
    }
}

/// The shards scenario at 40 nodes over 4 shards: the fleet relays all four, each other node
/// one; a message is expected only where its shard is relayed, and it arrives there.
#[test]
fn forty_nodes_on_four_shards_deliver_each_message_to_its_shard() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let args = [
        "sim",
        "--nodes",
        "40",
        "--scenario",
        "shards",
        "--shards",
        "4",
        "--duration",
        "4s",
        "--rate",
        "2",
        "--rtt",
        "none",
        "--out",
        out_dir.to_str().unwrap(),
    ];
    let out = ok(dir.path(), &args);
    assert!(out.contains("40 reached 6 relay peers"), "{out}");
    let text = std::fs::read_to_string(out_dir.join("results.json")).unwrap();
    let results: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(results["shards"], 4, "{text}");
    let messages = &results["messages"];
    let sent = messages["sent"].as_u64().unwrap();
    let expected = messages["arrivals_expected"].as_u64().unwrap();
    // 37 clients over 4 shards (9 or 10 each) and the 3 fleet nodes: at most 12 other nodes
    // relay a message's shard, not the 39 a single topic would reach.
    assert_eq!(sent, 8, "{text}");
    assert!(expected >= sent * 11 && expected <= sent * 12, "{text}");
    assert_eq!(messages["arrivals"].as_u64().unwrap(), expected, "{text}");
    assert_eq!(results["delivery_ratio"].as_f64().unwrap(), 1.0, "{text}");
}
