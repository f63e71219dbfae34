//! `wakufleet bench ingest`, `bench dns`, `bench rss` and `bench bootstrap` at tiny sizes, so the benchmark commands
//! cannot rot. Only the printed shape is checked (figures present, zero errors); never a time.

use std::process::{Command, Stdio};

use crate::helpers::ok;

/// The number after `prefix` on the line that starts with it.
fn figure(out: &str, prefix: &str) -> String {
    let line = out
        .lines()
        .find_map(|line| line.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{out}"));
    line.trim().to_owned()
}

#[test]
fn bench_ingest_sqlite_prints_figures_and_no_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let args =
        ["bench", "ingest", "--agents", "5", "--reports-per-agent", "2", "--backend", "sqlite"];
    let out = ok(dir.path(), &args);
    assert!(figure(&out, "enrolled 5 agents").contains("enrolments/s"), "{out}");
    let accepted = figure(&out, "accepted ");
    assert!(accepted.starts_with("10/10 reports in ") && accepted.ends_with("reports/s"), "{out}");
    let latency = figure(&out, "latency (request to answer):");
    assert!(latency.contains("p50 ") && latency.contains("p99 "), "{out}");
    assert_eq!(figure(&out, "non-202 answers:"), "0", "{out}");
    assert_eq!(figure(&out, "reports stored:"), "10 (expected 10, beside the untimed ones)");
    // Agents echo the fleet version, as real ones do: a settled fleet's answers carry no hint.
    assert!(figure(&out, "answers:").ends_with(" 0 of 10 with a fleet hint"), "{out}");
    let pages = figure(&out, "with 5 nodes, 20 loads each:");
    assert!(pages.contains("dashboard overview p50 ") && pages.contains("/metrics p50 "), "{out}");
}

#[test]
fn bench_dns_check_only_finds_the_three_servers_agree() {
    // Needs knotd and nsd (tests/run.sh installs them), not dnsperf.
    let dir = tempfile::tempdir().unwrap();
    let out = ok(dir.path(), &["bench", "dns", "--records", "30", "--check-only"]);
    assert!(figure(&out, "dns: tree of 30 records").contains("TXT names"), "{out}");
    let check = figure(&out, "check:");
    assert!(check.contains("resolved 30/30 records from each, 0 errors"), "{out}");
    assert!(check.contains("identically on all 3 servers"), "built-in, Knot and NSD: {out}");
    assert!(!out.contains("queries/s"), "--check-only runs no dnsperf: {out}");
}

#[test]
fn bench_dns_check_only_on_any_address_answers_from_the_address_asked() {
    // Every server on 0.0.0.0, asked at 127.0.0.1: the tree client (hickory) drops an answer
    // from another address, so resolving every record checks where answers come from.
    let dir = tempfile::tempdir().unwrap();
    let args = ["bench", "dns", "--records", "30", "--check-only", "--any-address"];
    let out = ok(dir.path(), &args);
    let check = figure(&out, "check:");
    assert!(check.contains("resolved 30/30 records from each, 0 errors"), "{out}");
    assert!(check.contains("identically on all 3 servers"), "built-in, Knot and NSD: {out}");
}

#[test]
fn bench_dns_without_dnsperf_names_the_package() {
    // An empty PATH hides dnsperf (knotd is still found in /usr/sbin).
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wakufleet"))
        .args(["bench", "dns", "--records", "5", "--seconds", "1"])
        .current_dir(dir.path())
        .env("PATH", "")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one-line error: {stderr}");
    assert!(
        lines[0].contains("`dnsperf` not found") && lines[0].contains("apt-get install dnsperf"),
        "{stderr}"
    );
}

#[test]
fn bench_rss_measures_a_node_and_an_agent() {
    let dir = tempfile::tempdir().unwrap();
    for (args, prefix) in [
        (&["bench", "rss", "--peers", "2"][..], "wakufleet node RSS:"),
        (&["bench", "rss", "--peers", "2", "--agent"][..], "wakufleet agent + node RSS:"),
    ] {
        let out = ok(dir.path(), args);
        let line = figure(&out, prefix);
        assert!(
            line.contains("MiB idle with 0 peers") && line.ends_with("MiB idle with 2 peers"),
            "{out}"
        );
    }
}

/// `bench store` on both backends, filled by the node's writer and by SQL: each query shape is
/// timed through the archive and as raw SQL, and the ratio printed.
#[test]
fn bench_store_times_each_shape_against_its_raw_sql_floor() {
    for (backend, seed) in [("sqlite", false), ("sqlite", true), ("postgres", true)] {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["bench", "store", "--backend", backend, "--messages", "3000"];
        args.extend(["--queries", "5"]);
        if seed {
            args.push("--seed-sql");
        }
        let out = ok(dir.path(), &args);
        let filled = if seed { "seeded 3000 messages by SQL" } else { "inserted 3000 messages" };
        assert!(out.contains(&format!("{backend}: {filled}")), "{out}");
        for shape in ["content topic + time range, page 20", "hash lookup", "deep page"] {
            let line = figure(&out, &format!("{backend}: {shape}"));
            assert!(line.contains("raw SQL p50 ") && line.ends_with("x the floor"), "{out}");
        }
    }
}

#[test]
fn bench_bootstrap_brings_every_node_to_its_relay_peers() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(dir.path(), &["bench", "bootstrap", "--nodes", "12"]);
    let all = figure(&out, "12 nodes (discv5, one bootstrap ENR):");
    assert!(all.contains("every node had 6 relay peers after"), "{out}");
    let each = figure(&out, "per node, start to 6 relay peers");
    assert!(each.starts_with("(12 nodes reached it)"), "{out}");
}
