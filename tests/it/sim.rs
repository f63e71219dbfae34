//! `wakufleet sim` at CI sizes. 60 nodes, fleet-loss: the fleet is a real controller with an
//! agent per fleet node, and every other node reaches its relay target from the controller's
//! tree alone over links of 40–130 ms, messages reach every node, then the whole fleet crashes
//! (no FIN: its links go silent) and messages still reach every survivor, and the survivors
//! drop their dead connections; its clients run in two worker processes (`--workers 2`), the
//! fleet in the sim's own. 40 nodes, shards: messages reach the nodes of their shard.
//! 40 nodes, hostile: unreachable and free-riding nodes cost the honest ones failed dials but
//! no message. 40 nodes, churn: nodes leave and join while messages still reach every node
//! that stayed, and the joiners bootstrap. results.json says so in the fields the report
//! promises.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::helpers::{fails, ok};

/// Runs `wakufleet sim --scenario <scenario> --out <dir>/out` with `extra` arguments: its
/// output, its results.json (parsed and as text) and the output directory.
fn sim(dir: &Path, scenario: &str, extra: &[&str]) -> (String, Value, String, PathBuf) {
    let out_dir = dir.join("out");
    let mut args = vec!["sim", "--scenario", scenario, "--out", out_dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = ok(dir, &args);
    let text = std::fs::read_to_string(out_dir.join("results.json")).unwrap();
    let results = serde_json::from_str(&text).unwrap();
    (out, results, text, out_dir)
}

#[test]
fn sixty_nodes_reach_the_relay_target_deliver_and_survive_the_fleets_crash() {
    let dir = tempfile::tempdir().unwrap();
    let (out, results, text, out_dir) = sim(
        dir.path(),
        "fleet-loss",
        &["--nodes", "60", "--duration", "5s", "--rate", "4", "--workers", "2", "--settle", "1s"],
    );
    assert_eq!(results["settle_seconds"], 1.0, "{text}");
    // The clients ran in two worker processes, the fleet in this one: links between them,
    // the crash and the arrivals crossed processes.
    assert_eq!(results["workers"], 2, "{text}");
    // The survivors: every one at its target.
    assert!(out.contains("57 reached 6 relay peers"), "{out}");
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
    // Each message's first arrival anywhere: one hop at least, and no later than the median.
    let first = &results["messages"]["first_arrival_ms"];
    let (first_p50, first_max) = (first["p50"].as_f64().unwrap(), first["max"].as_f64().unwrap());
    assert!(20.0 <= first_p50 && first_p50 <= p50 && first_max <= max, "{text}");
    // What did not arrive is counted and listed (by node and message), not just a ratio.
    let messages = &results["messages"];
    let missing = messages["missing"].as_u64().unwrap();
    assert_eq!(
        missing,
        messages["arrivals_expected"].as_u64().unwrap() - messages["arrivals"].as_u64().unwrap(),
        "{text}"
    );
    let listed = messages["missing_listed"].as_array().unwrap();
    assert_eq!(listed.len() as u64, missing.min(50), "{text}");
    // Listed nodes are survivors (3..60) and messages among the 20 sent.
    assert!(
        listed
            .iter()
            .all(|pair| (3..60).contains(&pair[0].as_u64().unwrap())
                && pair[1].as_u64().unwrap() < 20),
        "{text}"
    );
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
    // The fleet was the controller's: three agents enrolled and reported, it published a
    // signed tree of their three records (the only way the clients could have found them),
    // and its own work was timed while the simulation ran.
    let controller = &results["controller"];
    assert_eq!(controller["agents"], 3, "{text}");
    // With the whole fleet gone the controller keeps the last tree rather than publish an
    // empty one (which it did before): the registry has no node passing, the tree its three.
    assert_eq!(controller["registry_passing"], 0, "{text}");
    assert_eq!(controller["tree_records"], 3, "{text}");
    assert_eq!(controller["tree_seq"], 1, "{text}");
    assert!(controller["reconcile_seconds"]["passes"].as_u64().unwrap() > 0, "{text}");
    assert!(controller["reconcile_seconds"]["max"].as_f64().unwrap() > 0.0, "{text}");
    assert!(controller["metrics_scrape_ms"]["scrapes"].as_u64().unwrap() > 0, "{text}");
    assert_eq!(controller["metrics_scrape_ms"]["failed"], 0, "{text}");
    assert!(controller["dashboard_ms"].as_f64().unwrap() > 0.0, "{text}");
    assert!(out.contains("controller: 3 agents"), "{out}");
}

/// 40 nodes of which 20 % refuse connections and 20 % relay nothing: the honest nodes reach
/// their target, waste dials on the unreachable, and still get every message; the unreachable
/// get their peers by dialing out.
#[test]
fn forty_nodes_with_unreachable_and_free_riding_ones_still_deliver_to_the_honest() {
    let dir = tempfile::tempdir().unwrap();
    let (_, results, text, _) = sim(
        dir.path(),
        "hostile",
        &["--nodes", "40", "--duration", "4s", "--rate", "2", "--rtt", "none", "--workers", "3"],
    );
    // Refusals are the link model's, in every process: the unreachable ran in workers.
    assert_eq!(results["workers"], 3, "{text}");
    let hostile = &results["hostile"];
    let (unreachable, non_relaying, honest) = (
        hostile["unreachable"].as_u64().unwrap(),
        hostile["non_relaying"].as_u64().unwrap(),
        hostile["honest"].as_u64().unwrap(),
    );
    // 37 clients, a fifth of them each way; the fleet is honest.
    assert!((6..=9).contains(&unreachable) && (6..=9).contains(&non_relaying), "{text}");
    assert_eq!(unreachable + non_relaying + honest, 40, "{text}");
    assert_eq!(results["reached_target"].as_u64().unwrap(), honest, "{text}");
    assert!(hostile["dials_failed_per_honest_node"].as_f64().unwrap() > 0.0, "{text}");
    assert_eq!(hostile["unreachable_reached_target"].as_u64().unwrap(), unreachable, "{text}");
    // Only honest nodes are counted, publishers among them.
    let messages = &results["messages"];
    let sent = messages["sent"].as_u64().unwrap();
    assert_eq!(sent, 8, "{text}");
    assert_eq!(messages["arrivals_expected"].as_u64().unwrap(), sent * (honest - 1), "{text}");
    assert_eq!(results["delivery_ratio"].as_f64().unwrap(), 1.0, "{text}");
}

/// 40 nodes, 60 % of the clients per minute for 10 s: four leave (two crash), four new ones
/// join and bootstrap from the tree, and every message reaches every node that stayed.
#[test]
fn forty_nodes_with_churn_deliver_to_those_that_stay_and_the_joiners_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    let (_, results, text, _) = sim(
        dir.path(),
        "churn",
        &[
            "--nodes",
            "40",
            "--churn",
            "60",
            "--duration",
            "10s",
            "--rate",
            "2",
            "--rtt",
            "none",
            "--workers",
            "2",
        ],
    );
    // The leavers and the joiners in two worker processes: crashes reach every process.
    assert_eq!(results["workers"], 2, "{text}");
    let churn = &results["churn"];
    assert_eq!(churn["left"], 4, "{text}");
    assert_eq!(churn["crashed"], 2, "{text}");
    assert_eq!(churn["stayed"], 36, "{text}");
    assert_eq!(churn["joined_reached_target"], 4, "{text}");
    assert!(churn["joined_bootstrap_seconds"]["max"].as_f64().unwrap() > 0.0, "{text}");
    // The 36 that stayed and the 4 joiners, all at their target.
    assert_eq!(results["reached_target"], 40, "{text}");
    let messages = &results["messages"];
    let sent = messages["sent"].as_u64().unwrap();
    assert_eq!(sent, 20, "{text}");
    assert_eq!(messages["arrivals_expected"].as_u64().unwrap(), sent * 35, "{text}");
    assert_eq!(results["delivery_ratio"].as_f64().unwrap(), 1.0, "{text}");
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
    fails(
        dir.path(),
        &[
            "sim",
            "--scenario",
            "hostile",
            "--unreachable",
            "0.7",
            "--non-relaying",
            "0.3",
            "--out",
            "t",
        ],
        "leave no honest node",
    );
    fails(dir.path(), &["sim", "--scenario", "churn", "--churn", "0", "--out", "s"], "--churn 0");
    fails(dir.path(), &["sim", "--nodes", "10", "--workers", "8", "--out", "w"], "--workers 8");
    // A worker is only ever started by the sim, which sends its setup first.
    fails(dir.path(), &["sim-worker"], "no setup on stdin");
    fails(
        dir.path(),
        &["sim", "--scenario", "churn", "--nodes", "3", "--out", "r"],
        "churn needs nodes besides the fleet's",
    );
    fails(dir.path(), &["sim", "--arrival", "0", "--out", "q"], "--arrival 0: clients started");
    fails(
        dir.path(),
        &["sim", "--max-connections", "3", "--out", "o"],
        "at least the relay target",
    );
    fails(dir.path(), &["sim", "--arrival", "NaN", "--out", "p"], "--arrival NaN");
    fails(
        dir.path(),
        &["sim", "--scenario", "fleet-loss", "--slowdown", "2", "--out", "m"],
        "only steady and shards run slowed down",
    );
    let out = crate::helpers::wakufleet(dir.path(), &["sim", "--slowdown", "0", "--out", "l"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("--slowdown"), "{stderr}");
    // So slow that the last start would be past any time there is: refused, not a panic.
    fails(dir.path(), &["sim", "--arrival", "1e-300", "--out", "n"], "clients started per second");
    for out in ["x", "y", "z", "w", "v", "u", "t", "s", "r", "q", "p", "o", "n", "m", "l"] {
        assert!(!dir.path().join(out).exists(), "{out}: nothing written for a refused run");
    }
}

/// The shards scenario at 40 nodes over 4 shards: the fleet relays all four, each other node
/// one; a message is expected only where its shard is relayed, and it arrives there.
#[test]
fn forty_nodes_on_four_shards_deliver_each_message_to_its_shard() {
    let dir = tempfile::tempdir().unwrap();
    let (out, results, text, _) = sim(
        dir.path(),
        "shards",
        &[
            "--nodes",
            "40",
            "--shards",
            "4",
            "--duration",
            "4s",
            "--rate",
            "2",
            "--rtt",
            "100ms",
            "--slowdown",
            "2",
            "--arrival",
            "20",
        ],
    );
    assert!(out.contains("40 reached 6 relay peers"), "{out}");
    // Run twice slower than real time: a hop of the 100 ms round trip took 100 ms of wall
    // time and is reported as the network's 50 ms; the load is the network's 2 a second.
    assert_eq!(results["slowdown"], 2, "{text}");
    assert_eq!(results["messages"]["per_second"].as_f64(), Some(2.0), "{text}");
    let first_hop = results["messages"]["first_arrival_ms"]["p50"].as_f64().unwrap();
    assert!((50.0..100.0).contains(&first_hop), "one hop in the network's time: {text}");
    assert!(results["propagation_ms"]["p50"].as_f64().unwrap() >= first_hop, "{text}");
    // The 37 clients arrived 20 a second: the last 1.8 s after the first, and the run lasted
    // at least that (the fleet starts first).
    assert_eq!(results["arrival_per_second"].as_f64(), Some(20.0), "{text}");
    assert!(results["wall_seconds"].as_f64().unwrap() >= 1.8, "{text}");
    // Meshes formed (one per shard a node relays), and the machine's load was taken.
    assert!(results["mesh_peers"]["p50"].as_u64().unwrap() >= 1, "{text}");
    // Not every node thin, and none below D_low exactly when the smallest mesh is at it.
    let below = results["mesh_below_d_low"].as_u64().unwrap();
    assert!(below < 40, "{text}");
    let smallest = results["mesh_peers"]["min"].as_u64().unwrap();
    assert_eq!(below == 0, smallest >= 4, "{text}");
    // A passing run ends with every node at its target, after the second look at most.
    assert!(results["refused_inbound_per_node"].as_f64().unwrap() >= 0.0, "{text}");
    let first_look = results["below_target_first_look"].as_u64().unwrap();
    assert!(first_look >= 40 - results["reached_target"].as_u64().unwrap(), "{text}");
    // Every client in one group by the relay peers that dialled it, ascending, and the thin
    // ones among them no more than all the thin.
    let groups = results["below_d_low_by_inbound"].as_array().unwrap();
    let count = |key: &str| groups.iter().map(|g| g[key].as_u64().unwrap()).sum::<u64>();
    let clients = 40 - results["fleet_nodes"].as_u64().unwrap();
    assert_eq!(count("clients"), clients, "{text}");
    assert!(count("below_d_low") <= below, "{text}");
    let inbound: Vec<u64> =
        groups.iter().map(|g| g["inbound_relay_peers"].as_u64().unwrap()).collect();
    assert!(inbound.windows(2).all(|w| w[0] < w[1]) && inbound.iter().all(|&i| i <= 4), "{text}");
    let cpu = &results["cpu_busy"];
    assert!(cpu["cores"].as_u64().unwrap() >= 1, "{text}");
    for phase in ["bootstrap", "traffic"] {
        let busy = cpu[phase].as_f64().unwrap();
        assert!(busy > 0.0 && busy <= 1.0, "{phase}: {text}");
    }
    assert!(out.contains("cores busy while bootstrapping"), "{out}");
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
