//! `wakufleet sim` at 60 nodes (the CI size): every node reaches its relay target from a
//! fleet's tree alone, and results.json says so in the fields the report promises.

use serde_json::Value;

use crate::helpers::{fails, ok};

#[test]
fn a_sixty_node_cold_start_reaches_the_relay_target_and_writes_its_results() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = ok(
        dir.path(),
        &["sim", "--nodes", "60", "--scenario", "cold-start", "--out", out_dir.to_str().unwrap()],
    );
    assert!(out.contains("60 reached 6 relay peers"), "{out}");
    let text = std::fs::read_to_string(out_dir.join("results.json")).unwrap();
    let results: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(results["scenario"], "cold-start");
    assert_eq!(results["nodes"], 60);
    assert_eq!(results["fleet_nodes"], 3);
    assert_eq!(results["reached_target"], 60, "{text}");
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
    let share = &results["fleet_share"];
    let (mean, most) = (share["mean"].as_f64().unwrap(), share["max"].as_f64().unwrap());
    assert!(0.0 < mean && mean < 1.0 && mean <= most, "{text}");
    assert!(results["rss_bytes_per_node"].as_u64().unwrap() > 0, "{text}");
    assert!(results["propagation_ms"].is_null(), "cold-start sends no messages: {text}");
    // The pictures: one CDF step (two points) per node that reached the target, and the page.
    let svg = std::fs::read_to_string(out_dir.join("bootstrap_cdf.svg")).unwrap();
    let points = svg.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
    assert_eq!(points.split(' ').count(), 120, "{svg}");
    let share = std::fs::read_to_string(out_dir.join("fleet_share_cdf.svg")).unwrap();
    assert!(share.starts_with("<svg") && share.contains("<polyline"), "{share}");
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains("<img src=\"bootstrap_cdf.svg\""), "{html}");
    assert!(html.contains("<th>reached_target</th><td>60</td>"), "{html}");
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
    for out in ["x", "y", "z"] {
        assert!(!dir.path().join(out).exists(), "{out}: nothing written for a refused run");
    }
}
