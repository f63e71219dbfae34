//! Logs as operators read them: a controller at its default level says what happened
//! (accounts, enrolments, trees) and not what every DNS query was; `--log-format json` gives
//! one JSON object per line for log shippers; text has no colour codes off a terminal.

use std::{process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
    time::timeout,
};

/// Runs a controller (HTTP and DNS on free ports) with `format`, creates an account and sends
/// DNS queries, stops it with SIGTERM; returns its standard error.
async fn controller_logs(format: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin"), "logs-admin").unwrap();
    let (http, dns) = (free_port(), free_port());
    let toml = format!(
        "listen = \"127.0.0.1:{http}\"\ndatabase-url = \"sqlite://{db}\"\nadmin-token-file = \"admin\"\n\
         [dns]\nlisten = \"127.0.0.1:{dns}\"\nzone = \"logs.test\"\n",
        db = dir.path().join("c.db").display()
    );
    std::fs::write(dir.path().join("c.toml"), toml).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wakufleet"))
        .args(["controller", "--config", "c.toml", "--log-format", format])
        .current_dir(dir.path())
        .env_remove("WAKUFLEET_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(line) =
        timeout(Duration::from_secs(20), stdout.next_line()).await.unwrap().unwrap()
    {
        if line.contains("dashboard") || line.contains("http") {
            break;
        }
    }
    let base = format!("http://127.0.0.1:{http}");
    let created = reqwest::Client::new()
        .post(format!("{base}/api/v1/access-tokens"))
        .bearer_auth("logs-admin")
        .json(&serde_json::json!({ "name": "grafana", "role": "viewer" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    for _ in 0..5 {
        crate::helpers::tool(
            "dig",
            &["@127.0.0.1", "-p", &dns.to_string(), "+short", "SOA", "logs.test"],
        )
        .await;
    }
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let output = timeout(Duration::from_secs(15), child.wait_with_output()).await.unwrap().unwrap();
    String::from_utf8_lossy(&output.stderr).into_owned()
}

use node::free_port::free_port;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_logs_lifecycle_events_not_queries_and_json_on_request() {
    let text = controller_logs("text").await;
    assert!(!text.contains('\u{1b}'), "no ANSI codes off a terminal:\n{text}");
    let audited: Vec<&str> = text.lines().filter(|l| l.contains("ctl::audit")).collect();
    assert!(
        audited
            .iter()
            .any(|l| l.contains("INFO") && l.contains("access.create") && l.contains("grafana")),
        "{text}"
    );
    assert!(!text.contains("hickory"), "no line per DNS query at the default level:\n{text}");
    assert!(!text.contains("wfa_"), "no token in the log:\n{text}");

    let json = controller_logs("json").await;
    let events: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let account = events
        .iter()
        .find(|e| e["target"] == "ctl::audit" && e["fields"]["action"] == "access.create")
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(account["level"], "INFO");
    assert_eq!(account["fields"]["subject"], "grafana");
    assert!(account["timestamp"].is_string());
}
