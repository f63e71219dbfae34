//! Alerts reach a person (issue: the operators' console): the shipped Alertmanager routing
//! (`deploy/alertmanager/alertmanager.yml`) passes `amtool check-config`, and end to end — a
//! controller, an agent as its own process, Prometheus with our rules, Alertmanager with our
//! routing, a webhook receiver run by this test — killing the agent brings the node's alert to
//! the receiver, and bringing the agent back sends the resolution.
//!
//! Only the timings are shortened for the test (rule `for:` durations, Alertmanager's group
//! waits, the controller's health thresholds) and the receivers' URL pointed at the test.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Json, Router, extract::State, routing::post};
use controller::{
    app::Controller, config::ControllerConfig, health::HealthThresholds, keyring::Keyring,
};
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::helpers::{ok, password_file, tool};

const ADMIN: &str = "alerting-admin";

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

use node::free_port::free_port;

#[test]
fn the_shipped_routing_passes_amtool() {
    let config = deploy().join("alertmanager/alertmanager.yml");
    let out = std::process::Command::new("amtool")
        .args(["check-config", config.to_str().unwrap()])
        .output()
        .expect("amtool (Debian package `prometheus-alertmanager`; tests/run.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("3 inhibit rules") && text.contains("4 receivers"), "{text}");
}

/// Webhook bodies Alertmanager posted, by path.
type Received = Arc<Mutex<Vec<(String, Value)>>>;

async fn webhook_receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let record = |path: &'static str| {
        move |State(received): State<Received>, Json(body): Json<Value>| async move {
            received.lock().unwrap().push((path.to_owned(), body));
        }
    };
    let app = Router::new()
        .route("/alerts/team", post(record("team")))
        .route("/alerts/on-call", post(record("on-call")))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, received)
}

/// `program` with `args` in `dir`, its output discarded, killed when dropped.
fn spawn(program: &str, args: &[String], dir: &Path) -> Child {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e} (tests/run.sh installs it)"))
}

async fn until(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The agent as its own process (so it can be killed like a crashed host's).
fn start_agent(dir: &Path) -> Child {
    let args = ["agent", "--config", "agent.toml"].map(str::to_owned);
    spawn(env!("CARGO_BIN_EXE_wakufleet"), &args, dir)
}

/// Alerts named `alertname` with `status` among everything the receiver got at `path`.
fn notified(received: &Received, path: &str, alertname: &str, status: &str) -> Vec<Value> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p == path)
        .flat_map(|(_, body)| body["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["labels"]["alertname"] == alertname && a["status"] == status)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_reaches_a_person_and_its_return_resolves_it() {
    let temp = tempfile::tempdir().unwrap();
    let d = temp.path();

    // The controller: a node silent for 2 s is critical.
    std::fs::write(d.join("admin"), ADMIN).unwrap();
    let config = ControllerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: format!("sqlite://{}", d.join("controller.db").display()),
        admin_token_file: Some(d.join("admin")),
        reconcile_interval_ms: 200,
        health: HealthThresholds {
            warning_after_secs: 1,
            critical_after_secs: 2,
            ..HealthThresholds::default()
        },
        ..ControllerConfig::default()
    };
    let controller = Controller::start(config, Keyring::default(), Vec::new()).await.unwrap();
    let base = format!("http://{}", controller.http_addr());

    // One agent, enrolled with a token, reporting every 200 ms.
    let password = password_file(d);
    ok(d, &["key", "new", "node.json", "--light-kdf", "--password-file", password]);
    let token: Value = reqwest::Client::new()
        .post(format!("{base}/api/v1/tokens"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({ "label": "edge-1", "roles": ["relay"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    std::fs::write(d.join("token"), token["token"].as_str().unwrap()).unwrap();
    std::fs::write(
        d.join("agent.toml"),
        format!(
            "data-dir = \"state\"\n[controller]\nurl = \"{base}\"\ntoken-file = \"token\"\n\
             report-interval = \"200ms\"\n[node]\nnodekey = \"node.json\"\npassword-file = \"{password}\"\n\
             listen-address = \"127.0.0.1\"\ntcp-port = 0\ncluster-id = 1\n"
        ),
    )
    .unwrap();
    let mut agent = start_agent(d);

    // Alertmanager with the shipped routing: receivers pointed here, waits shortened.
    let (receiver, received) = webhook_receiver().await;
    let routing = std::fs::read_to_string(deploy().join("alertmanager/alertmanager.yml"))
        .unwrap()
        .replace("http://127.0.0.1:9095", &receiver)
        .replace("group_wait: 30s", "group_wait: 1s")
        .replace("group_interval: 5m", "group_interval: 1s")
        .replace("resolve_timeout: 5m", "resolve_timeout: 10s");
    std::fs::write(d.join("alertmanager.yml"), routing).unwrap();
    tool("amtool", &["check-config", d.join("alertmanager.yml").to_str().unwrap()]).await;
    let am_port = free_port();
    let _alertmanager = spawn(
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", d.join("alertmanager.yml").display()),
            format!("--storage.path={}", d.join("am-data").display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            // One Alertmanager: no gossip cluster.
            "--cluster.listen-address=".to_owned(),
        ],
        d,
    );

    // Prometheus with the shipped rules, each `for:` cut to 1 s.
    let rules = std::fs::read_to_string(deploy().join("prometheus/wakufleet-rules.yml")).unwrap();
    let rules: String = rules
        .lines()
        .map(|l| if l.trim_start().starts_with("for: ") { "        for: 1s" } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(d.join("rules.yml"), rules).unwrap();
    let prom_config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - '{rules}'\n\
         alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n\
         scrape_configs:\n  - job_name: wakufleet-controller\n    static_configs:\n      - targets: ['{controller}']\n",
        rules = d.join("rules.yml").display(),
        controller = controller.http_addr(),
    );
    std::fs::write(d.join("prometheus.yml"), prom_config).unwrap();
    tool("promtool", &["check", "config", d.join("prometheus.yml").to_str().unwrap()]).await;
    let _prometheus = spawn(
        "prometheus",
        &[
            format!("--config.file={}", d.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", d.join("prom-data").display()),
            format!("--web.listen-address=127.0.0.1:{}", free_port()),
        ],
        d,
    );

    // The node reports; then its agent dies as a crashed host's would.
    let http = reqwest::Client::new();
    let node_health = async || {
        let nodes: Value = http
            .get(format!("{base}/api/v1/nodes"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        nodes["nodes"][0]["health"].as_str().unwrap_or("").to_owned()
    };
    until("the node reporting", Duration::from_secs(30), async || {
        !node_health().await.is_empty() && node_health().await != "critical"
    })
    .await;
    agent.kill().await.unwrap();

    until("the alert reaching the team's webhook", Duration::from_secs(60), async || {
        !notified(&received, "team", "WakufleetNodeCritical", "firing").is_empty()
    })
    .await;
    let alert = notified(&received, "team", "WakufleetNodeCritical", "firing")[0].clone();
    assert_eq!(alert["labels"]["label"], "edge-1", "{alert}");
    assert_eq!(alert["labels"]["severity"], "warning", "{alert}");
    // A warning goes to the team, not the pager.
    assert!(notified(&received, "on-call", "WakufleetNodeCritical", "firing").is_empty());

    // Back: the node reports again and the alert is resolved.
    let mut agent = start_agent(d);
    until("the resolution reaching the webhook", Duration::from_secs(60), async || {
        !notified(&received, "team", "WakufleetNodeCritical", "resolved").is_empty()
    })
    .await;
    assert_ne!(node_health().await, "critical");
    let _ = agent.kill().await;
    controller.shutdown().await;
}
