//! `wakufleet agent` as an operator runs it: a bad file is a one-line error; a good one runs
//! the node from a keystore, enrols, reports, serves nwaku's ports and stops on SIGTERM.

use std::{process::Stdio, time::Duration};

use controller::{app::Controller, config::ControllerConfig, keyring::Keyring};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
    time::timeout,
};

use crate::helpers::{fails, ok, password_file};

#[test]
fn malformed_agent_toml_is_a_one_line_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("agent.toml"),
        "data-dir = \"state\"\n[controller]\nurl = \"http://127.0.0.1:1\"\nreport-interval = \"often\"\n",
    )
    .unwrap();
    fails(dir.path(), &["agent", "--config", "agent.toml"], "agent.toml: ");
    fails(dir.path(), &["agent", "--config", "agent.toml"], "\"often\" is not a duration");
    fails(dir.path(), &["agent", "--config", "missing.toml"], "missing.toml: cannot read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_runs_from_a_keystore_reports_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let password = password_file(dir.path());
    ok(dir.path(), &["key", "new", "node.json", "--light-kdf", "--password-file", password]);
    std::fs::write(dir.path().join("admin"), "cli-agent-admin").unwrap();
    let config = ControllerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: format!("sqlite://{}", dir.path().join("controller.db").display()),
        admin_token_file: Some(dir.path().join("admin")),
        reconcile_interval_ms: 3_600_000,
        ..ControllerConfig::default()
    };
    let controller = Controller::start(config, Keyring::default(), Vec::new()).await.unwrap();
    let base = format!("http://{}", controller.http_addr());
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{base}/api/v1/tokens"))
        .bearer_auth("cli-agent-admin")
        .json(&serde_json::json!({ "label": "cli", "roles": ["boot"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    std::fs::write(dir.path().join("token"), token["token"].as_str().unwrap()).unwrap();
    let toml = format!(
        "data-dir = \"state\"\n[controller]\nurl = \"{base}\"\ntoken-file = \"token\"\nreport-interval = \"200ms\"\n\
         [compat]\nrest-address = \"127.0.0.1:0\"\nmetrics-address = \"127.0.0.1:0\"\n\
         [node]\nnodekey = \"node.json\"\npassword-file = \"{password}\"\nlisten-address = \"127.0.0.1\"\ntcp-port = 0\ncluster-id = 1\n"
    );
    std::fs::write(dir.path().join("agent.toml"), toml).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_wakufleet"))
        .args(["agent", "--config", "agent.toml"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut rest, mut metrics) = (String::new(), String::new());
    while metrics.is_empty() {
        let line = timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap();
        let line = line.expect("the agent printed its ports");
        if let Some(url) = line.strip_prefix("rest: ") {
            rest = url.to_owned();
        }
        if let Some(url) = line.strip_prefix("metrics: ") {
            metrics = url.to_owned();
        }
    }
    let health = reqwest::get(format!("{rest}/health")).await.unwrap();
    assert_eq!(health.status().as_u16(), 200);

    // Enrolled and reporting.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let nodes =
            crate::sim_agent::operator_get(&http, &base, "/api/v1/nodes", "cli-agent-admin").await;
        if nodes["nodes"][0]["lastCounter"].as_u64() >= Some(3) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no reports: {nodes}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
    assert!(text.contains("wakufleet_agent_enrolled 1"), "{text}");
    let pid = child.id().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("VmRSS: ?");
    println!("agent + node, idle, no peers: {rss}");

    let kill = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    assert!(kill.unwrap().success());
    let exit = timeout(Duration::from_secs(15), child.wait()).await.expect("stops").unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(reqwest::get(format!("{rest}/health")).await.is_err(), "ports closed");

    // A second node given the same (now used) token: the agent cannot ever enrol, so it exits
    // non-zero with the controller's reason on one line instead of running as if healthy.
    ok(dir.path(), &["key", "new", "node2.json", "--light-kdf", "--password-file", password]);
    let second = std::fs::read_to_string(dir.path().join("agent.toml"))
        .unwrap()
        .replace("data-dir = \"state\"", "data-dir = \"state2\"")
        .replace("node.json", "node2.json");
    std::fs::write(dir.path().join("agent2.toml"), &second).unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_wakufleet"))
        .args(["agent", "--config", "agent2.toml"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output();
    let output = timeout(Duration::from_secs(30), run).await.expect("exits by itself").unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error.len(), 1, "{stderr}");
    assert!(error[0].contains("enrolment token already used"), "{stderr}");

    // No token file at all: the start fails, naming it.
    std::fs::write(
        dir.path().join("agent3.toml"),
        second
            .replace("token-file = \"token\"", "token-file = \"gone\"")
            .replace("state2", "state3"),
    )
    .unwrap();
    fails(
        dir.path(),
        &["agent", "--config", "agent3.toml"],
        "cannot enrol: enrolment token file gone",
    );
    controller.shutdown().await;
}
