//! The Grafana dashboards and the alert rules against a live fleet: `wakufleet up` runs a
//! controller and agents, a real Prometheus server scrapes them and loads
//! `deploy/prometheus/wakufleet-rules.yml`, and every query of every panel and variable must
//! evaluate there, name only metrics the fleet exports, and return data; every rule must
//! evaluate without error and none may fire or be pending for a healthy fleet.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::Value;
use tokio::process::{Child, Command};

use crate::helpers::{start_up, tool};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Query-string encoding of one value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Prometheus {
    base: String,
    http: reqwest::Client,
    _child: Child,
}

impl Prometheus {
    async fn start(dir: &Path, controller: &str, agents: &[String]) -> Self {
        let port = node::free_port::free_port();
        let quoted = |targets: &[String]| {
            targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ")
        };
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - '{rules}'\n\
             scrape_configs:\n\
             \x20 - job_name: wakufleet-controller\n    static_configs:\n      - targets: [{controller}]\n\
             \x20 - job_name: wakufleet-agent\n    static_configs:\n      - targets: [{agents}]\n",
            rules = deploy().join("prometheus/wakufleet-rules.yml").display(),
            controller = quoted(&[controller.to_owned()]),
            agents = quoted(agents),
        );
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config).unwrap();
        tool("promtool", &["check", "config", config_file.to_str().unwrap()]).await;
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus (Debian package `prometheus`; `bash tests/run.sh` installs it)");
        let prometheus = Self {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            _child: child,
        };
        prometheus
            .wait("ready", async |p| {
                p.http
                    .get(format!("{}/-/ready", p.base))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            })
            .await;
        prometheus
    }

    async fn wait(&self, what: &str, mut done: impl AsyncFnMut(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(self).await {
            assert!(Instant::now() < deadline, "prometheus: {what} never happened");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn get(&self, path_and_query: &str) -> Value {
        let response =
            self.http.get(format!("{}{path_and_query}", self.base)).send().await.unwrap();
        response.json().await.unwrap()
    }

    /// An instant query: Prometheus's whole answer.
    async fn query(&self, expr: &str) -> Value {
        self.get(&format!("/api/v1/query?query={}", encode(expr))).await
    }
}

/// Grafana's built-in variables and our `$instance`, as Grafana would expand them.
fn expand(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("$instance", ".*")
}

/// The metric names a query refers to.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (start, _) in expr.match_indices(|c: char| c.is_ascii_lowercase()) {
        let before = expr[..start].chars().last();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let word: String =
            expr[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if ["wakufleet_", "waku_", "libp2p_"].iter().any(|p| word.starts_with(p)) {
            names.insert(word);
        }
    }
    names
}

/// Panels of a dashboard, with their titles, queries and layout checked.
fn panels(dashboard: &Value) -> Vec<(String, Vec<String>)> {
    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    let mut out = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap().to_owned();
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "duplicate panel id at {title}");
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
        assert!(x + w <= 24 && grid["h"].as_u64().unwrap() > 0, "{title}: {grid}");
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        assert!(!panel["description"].as_str().unwrap_or("").is_empty(), "{title}: no description");
        let exprs: Vec<String> = panel["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["expr"].as_str().unwrap().to_owned())
            .collect();
        assert!(!exprs.is_empty(), "{title}: no query");
        out.push((title, exprs));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_and_alert_rules_work_on_a_live_fleet() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("fleet");
    let args = ["up", "--nodes", "3", "--dir", dir.to_str().unwrap(), "--dns", "127.0.0.1:0"];
    let up = start_up(&args.map(str::to_owned)).await;
    let (mut controller, mut agents) = (String::new(), Vec::new());
    for line in up.text.lines().map(str::trim) {
        if let Some(url) = line.strip_prefix("metrics:") {
            controller =
                url.trim().trim_start_matches("http://").trim_end_matches("/metrics").into();
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first().is_some_and(|w| w.starts_with("node-")) {
            let port = words.iter().position(|w| *w == "metrics").map(|i| words[i + 1]).unwrap();
            agents.push(format!("127.0.0.1:{port}"));
        }
    }
    assert_eq!(agents.len(), 3, "{agents:?}");

    let prometheus = Prometheus::start(temp.path(), &controller, &agents).await;
    let targets = 1 + agents.len();
    prometheus
        .wait("every target scraped", async |p| {
            let answer = p.query("count(up == 1)").await;
            // Prometheus gives sample values as strings.
            answer["data"]["result"][0]["value"][1].as_str().and_then(|v| v.parse().ok())
                == Some(targets)
        })
        .await;
    // rate() needs two samples in its window; the rules need an evaluation or two.
    tokio::time::sleep(Duration::from_secs(4)).await;

    let mut exported = BTreeSet::new();
    let names: Value = prometheus.get("/api/v1/label/__name__/values").await;
    for name in names["data"].as_array().unwrap() {
        exported.insert(name.as_str().unwrap().to_owned());
    }

    let mut checked = 0;
    for file in ["wakufleet-fleet.json", "wakufleet-nodes.json"] {
        let text = std::fs::read_to_string(deploy().join("grafana").join(file)).unwrap();
        let dashboard: Value = serde_json::from_str(&text).unwrap();
        assert!(dashboard["uid"].as_str().unwrap().starts_with("wakufleet-"), "{file}");
        let variables = dashboard["templating"]["list"].as_array().unwrap();
        assert!(variables.iter().any(|v| v["name"] == "datasource" && v["type"] == "datasource"));
        for (title, exprs) in panels(&dashboard) {
            for expr in exprs {
                for name in metric_names(&expr) {
                    assert!(exported.contains(&name), "{file} · {title}: {name} is not exported");
                }
                let answer = prometheus.query(&expand(&expr)).await;
                assert_eq!(answer["status"], "success", "{file} · {title}: {expr}: {answer}");
                let result = answer["data"]["result"].as_array().unwrap();
                assert!(!result.is_empty(), "{file} · {title}: {expr} returns nothing");
                checked += 1;
            }
        }
        // Variables: label_values(metric, label) must list every agent.
        for variable in variables.iter().filter(|v| v["type"] == "query") {
            let definition = variable["definition"].as_str().unwrap();
            let inner = definition.strip_prefix("label_values(").unwrap().trim_end_matches(')');
            let (metric, label) = inner.split_once(',').unwrap();
            let values = prometheus
                .get(&format!(
                    "/api/v1/label/{}/values?match[]={}",
                    label.trim(),
                    encode(metric.trim())
                ))
                .await;
            let values: BTreeSet<&str> =
                values["data"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            for agent in &agents {
                assert!(
                    values.contains(agent.as_str()),
                    "{file} · ${}: {values:?}",
                    variable["name"]
                );
            }
        }
    }
    assert!(checked >= 30, "only {checked} queries");

    // The shipped rules evaluate against the live metrics, and a healthy fleet raises nothing.
    prometheus
        .wait("every rule evaluated", async |p| {
            let rules = p.get("/api/v1/rules").await;
            rules["data"]["groups"].as_array().unwrap().iter().all(|group| {
                group["rules"].as_array().unwrap().iter().all(|rule| {
                    rule["lastEvaluation"].as_str().is_some_and(|t| !t.starts_with("0001"))
                })
            })
        })
        .await;
    let rules = prometheus.get("/api/v1/rules").await;
    let mut evaluated = 0;
    for group in rules["data"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            assert_eq!(rule["health"], "ok", "{rule}");
            evaluated += 1;
        }
    }
    assert!(evaluated >= 5, "{rules}");
    let alerts = prometheus.get("/api/v1/alerts").await;
    assert_eq!(alerts["data"]["alerts"], serde_json::json!([]), "a healthy fleet raised alerts");

    // And the rules do see the fleet: the shard coverage they alert on is there.
    let coverage = prometheus.query("min(wakufleet_shard_passing_nodes)").await;
    assert_eq!(coverage["data"]["result"][0]["value"][1], "3", "{coverage}");

    let _ = up.stop().await;
}

#[test]
fn metric_names_are_found_in_queries() {
    let names = metric_names(
        "sum by (instance) (rate(waku_node_messages_total{x=\"libp2p_no\"}[1m])) / wakufleet_nodes",
    );
    // Only names (a label value in quotes would also match; such queries are not written).
    assert!(names.contains("waku_node_messages_total") && names.contains("wakufleet_nodes"));
    assert_eq!(expand("rate(x[$__rate_interval]){i=~\"$instance\"}"), "rate(x[1m]){i=~\".*\"}");
}
