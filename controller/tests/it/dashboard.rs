//! The HTML dashboard, rendered by a real headless Chromium: a fleet of signed-report agents
//! (passing, warning, critical, one serving a shard nobody else serves, one whose label and
//! errors carry markup) and two trees (one signed online, one waiting for an offline
//! signature). The browser must show what needs attention, the shard coverage, every node and
//! tree — and run none of the markup the agents sent. The login and the error pages are
//! checked over plain HTTP, on SQLite and on a real Postgres.

use crate::common::{
    self,
    controller::{boot_tree, cold_tree, test_config, test_dns},
};

use common::poll::poll_until;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use common::agent::{SimAgent, labelled_token, operator_get};
use contract::report::{Figures, StoreProbe};
use controller::{
    app::Controller,
    config::{ControllerConfig, DashboardConfig},
    keyring::Keyring,
};
use serde_json::json;

const ADMIN: &str = "dashboard-test-token";
const EVIL_LABEL: &str = "<b id=\"injected-label\">evil</b>";
const EVIL_ERROR: &str = "<img id=\"injected-img\" src=x onerror=\"document.title='pwned'\">";

fn chromium() -> PathBuf {
    common::knot::program("chromium").unwrap_or_else(|| {
        panic!(
            "`chromium` not found: the dashboard tests render pages in a real headless browser. \
             `bash tests/run.sh` installs it (Debian package `chromium`)."
        )
    })
}

/// The page's DOM after Chromium loaded it (and ran whatever it would run).
fn dump_dom(url: &str, profile: &Path) -> String {
    let output = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .unwrap();
    assert!(output.status.success(), "chromium: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn config(dir: &Path, dashboard: DashboardConfig, database_url: String) -> ControllerConfig {
    ControllerConfig {
        reconcile_interval_ms: 200,
        dns: test_dns(),
        dashboard,
        trees: vec![boot_tree(), cold_tree()],
        ..test_config(dir, ADMIN, Some(&database_url))
    }
}

/// Enrols `agent` with a token labelled `label` and sends one report with these shards and figures.
async fn enrol_and_report(
    http: &reqwest::Client,
    base: &str,
    agent: &mut SimAgent,
    label: &str,
    shards: Vec<u16>,
    figures: Figures,
) {
    let token = labelled_token(http, base, ADMIN, label, &["boot"]).await;
    let enrolment = json!({
        "token": token,
        "enr": agent.record.to_string(),
        "sentAt": node::clock::now_ms(),
    });
    let (status, answer) =
        agent.post(http, base, "/api/v1/enrol", enrolment.to_string().as_bytes()).await;
    assert_eq!(status, 201, "{answer}");
    let report = agent.report_with(shards, figures);
    let (status, answer) = agent.post(http, base, "/api/v1/reports", &report).await;
    assert_eq!(status, 202, "{answer}");
}

fn healthy(relay_peers: u32) -> Figures {
    Figures {
        peers_inbound: Some(4),
        peers_outbound: Some(relay_peers.saturating_sub(4)),
        relay_peers: Some(relay_peers),
        fleet_share: Some(0.25),
        bootstrap_seconds: Some(0.42),
        store_probe: Some(StoreProbe { ok: true, latency_ms: Some(3.5), error: None }),
        peers_by_protocol: [("/vac/waku/relay/2.0.0".to_string(), relay_peers)].into(),
        ..Figures::default()
    }
}

/// The text between `<tag …id="id"…>` and the next `<`.
fn text_of(dom: &str, id: &str) -> String {
    let start = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in {dom}"));
    let rest = &dom[start..];
    let open = rest.find('>').unwrap() + 1;
    let mut text = rest[open..].split('<').next().unwrap().trim().to_string();
    if text.is_empty() {
        // `<div id=…><b>2</b>passing</div>`: the first child's text.
        text = rest[open..].split('>').nth(1).unwrap().split('<').next().unwrap().to_string();
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_shows_the_fleet_and_runs_none_of_its_markup() {
    let dir = tempfile::tempdir().unwrap();
    let mut keyring = Keyring::default();
    keyring.insert("dev", node::crypto::generate_key());
    let dashboard = DashboardConfig { public: true, refresh_secs: 0, ..DashboardConfig::default() };
    let database = format!("sqlite://{}", dir.path().join("controller.db").display());
    let controller =
        Controller::start(config(dir.path(), dashboard, database), keyring, Vec::new())
            .await
            .unwrap();
    let base = format!("http://{}", controller.http_addr());
    let http = reqwest::Client::new();

    let mut alpha = SimAgent::new(30301);
    let mut beta = SimAgent::new(30302);
    let mut weak = SimAgent::new(30303);
    let mut down = SimAgent::new(30304);
    enrol_and_report(&http, &base, &mut alpha, "alpha", vec![0], healthy(8)).await;
    enrol_and_report(&http, &base, &mut beta, "beta", vec![0, 1], healthy(7)).await;
    // Three relay peers: warning. Shard 1 then rests on beta alone.
    enrol_and_report(&http, &base, &mut weak, "weak", vec![1], healthy(3)).await;
    // No relay peer: critical; shard 5 has no passing node at all. Its agent sends markup.
    let broken = Figures {
        relay_peers: Some(0),
        errors: vec![EVIL_ERROR.into()],
        store_probe: Some(StoreProbe {
            ok: false,
            latency_ms: None,
            error: Some("timed out".into()),
        }),
        ..Figures::default()
    };
    enrol_and_report(&http, &base, &mut down, EVIL_LABEL, vec![5], broken).await;

    // The online tree is published; the offline one waits for a key holder.
    poll_until("both trees built", Duration::from_secs(30), async || {
        let trees = operator_get(&http, &base, "/api/v1/trees", ADMIN).await;
        let state = |name: &str| {
            trees["trees"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["tree"]["name"] == name)
                .map(|t| t["versions"][0]["state"].clone())
        };
        state("boot") == Some(json!("published")) && state("cold") == Some(json!("pending"))
    })
    .await;

    let profile = dir.path().join("chromium");
    let dom = dump_dom(&format!("{base}/"), &profile);
    // `/` leads to the overview.
    assert!(dom.contains("<title>wakufleet · fleet</title>"), "{dom}");
    assert_eq!(text_of(&dom, "count-passing"), "2");
    assert_eq!(text_of(&dom, "count-warning"), "1");
    assert_eq!(text_of(&dom, "count-critical"), "1");

    // What needs attention, most urgent first.
    let attention = &dom[dom.find("id=\"attention\"").unwrap()..dom.find("id=\"shards\"").unwrap()];
    let uncovered = attention.find("shard 5 of cluster 1: no passing node serves it").unwrap();
    let single = attention.find("shard 1 of cluster 1: a single passing node serves it").unwrap();
    let critical_node = attention.find("is critical: ").unwrap();
    // (Its seq depends on how many builds the reports' arrival took.)
    let waiting = attention.find("tree cold: seq ").unwrap();
    assert!(attention[waiting..].contains("awaits an offline signature"), "{attention}");
    assert!(uncovered < single, "{attention}");
    assert!(critical_node < waiting && uncovered < waiting, "{attention}");
    assert!(attention.contains("node weak"), "{attention}");
    assert!(!attention.contains("node alpha") && !attention.contains("tree boot"), "{attention}");

    // Shard coverage.
    for (shard, level) in [("1/0", "passing"), ("1/1", "warning"), ("1/5", "critical")] {
        let row = dom.find(&format!("data-shard=\"{shard}\"")).unwrap();
        let row = &dom[row..row + dom[row..].find("</tr>").unwrap()];
        assert!(row.contains(&format!("badge {level}")), "shard {shard}: {row}");
    }

    // Every node, worst first, with its figures.
    let rows: Vec<(usize, &str)> = [&down, &weak, &alpha, &beta]
        .iter()
        .map(|agent| {
            let id = agent.node_id();
            let at = dom.find(&format!("data-node=\"{id}\"")).unwrap_or_else(|| panic!("{id}"));
            (at, &dom[at..at + dom[at..].find("</tr>").unwrap()])
        })
        .collect();
    assert!(rows.windows(2).all(|w| w[0].0 < w[1].0), "worst first");
    assert!(rows[0].1.contains("data-health=\"critical\""), "{}", rows[0].1);
    assert!(rows[0].1.contains("failed: timed out"), "{}", rows[0].1);
    assert!(rows[1].1.contains("data-health=\"warning\""), "{}", rows[1].1);
    assert!(rows[1].1.contains("<td class=\"num warning\">3</td>"), "{}", rows[1].1);
    assert!(rows[2].1.contains(">alpha</a>"), "{}", rows[2].1);
    for expected in ["8", "25 %", "0.42 s", "3.5 ms", "4 / 4"] {
        assert!(rows[2].1.contains(&format!(">{expected}</td>")), "{expected}: {}", rows[2].1);
    }

    // Trees: the published one with its seq and URL, the waiting one.
    let boot = dom.find("data-tree=\"boot\"").unwrap();
    let boot = &dom[boot..boot + dom[boot..].find("</tr>").unwrap()];
    assert!(boot.contains("enrtree://") && boot.contains("@boot.fleet.test"), "{boot}");
    assert!(boot.contains(">published</td>"), "{boot}");

    // The agents' markup is text, never elements, and nothing ran.
    assert!(!dom.contains("<b id=\"injected-label\""), "label rendered as markup");
    assert!(dom.contains("&lt;b id=\"injected-label\"&gt;evil&lt;/b&gt;"), "{dom}");
    let node_dom = dump_dom(&format!("{base}/dashboard/nodes/{}", down.node_id()), &profile);
    assert!(!node_dom.contains("<img id=\"injected-img\""), "error rendered as markup");
    assert!(node_dom.contains("&lt;img id=\"injected-img\""), "{node_dom}");
    // The handler would have renamed the page.
    assert!(node_dom.contains("<title>wakufleet · node &lt;b id="), "a script ran: {node_dom}");
    assert_eq!(text_of(&node_dom, "health"), "critical");
    assert_eq!(text_of(&node_dom, "node-id"), down.node_id());
    assert_eq!(text_of(&node_dom, "enr"), down.record.to_string());

    // Shard coverage over time, from the publisher's samples.
    let coverage =
        dom.split("aria-label=\"Passing nodes per shard\"").nth(1).expect("no coverage chart");
    let coverage = coverage.split("</svg>").next().unwrap();
    assert!(
        coverage.contains("<polyline") && coverage.contains("one node: no spare"),
        "{coverage}"
    );
    // The fleet's bootstrap latencies as a distribution: the three nodes that measured one.
    let bootstrap = dom.split("aria-label=\"Bootstrap latency").nth(1).expect("no bootstrap chart");
    let points = bootstrap.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
    assert_eq!(points.split(' ').count(), 3, "{bootstrap}");

    // Two more reports from alpha: its pictures draw all three kept ones.
    for relay_peers in [4, 9] {
        let report = alpha.report_with(vec![0], healthy(relay_peers));
        let (status, answer) = alpha.post(&http, &base, "/api/v1/reports", &report).await;
        assert_eq!(status, 202, "{answer}");
    }

    // A node's page names the trees listing it; a tree's page its nodes and versions.
    let alpha_dom = dump_dom(&format!("{base}/dashboard/nodes/{}", alpha.node_id()), &profile);
    assert!(alpha_dom.contains("href=\"/dashboard/trees/boot\""), "{alpha_dom}");
    // Pictures, rendered by Chromium as SVG: four charts; relay peers as three points, the
    // minimum as a dashed line.
    assert_eq!(alpha_dom.matches("<svg class=\"chart\"").count(), 4, "{alpha_dom}");
    let relay = alpha_dom.split("aria-label=\"Relay peers against the minimum\"").nth(1).unwrap();
    let relay = relay.split("</svg>").next().unwrap();
    let points = relay.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
    assert_eq!(points.split(' ').count(), 3, "{relay}");
    assert!(relay.contains("class=\"threshold\"") && relay.contains("minimum 6"), "{relay}");
    let tree = operator_get(&http, &base, "/api/v1/trees/boot", ADMIN).await;
    let published = &tree["versions"][0];
    let tree_dom = dump_dom(&format!("{base}/dashboard/trees/boot"), &profile);
    assert_eq!(tree_dom.matches("<svg class=\"chart\"").count(), 2, "{tree_dom}");
    assert!(tree_dom.contains("aria-label=\"Records per version, by signing state\""));
    assert_eq!(text_of(&tree_dom, "seq"), published["seq"].to_string());
    assert_eq!(text_of(&tree_dom, "url"), tree["url"].as_str().unwrap());
    assert_eq!(
        tree_dom.matches("class=\"member\"").count(),
        published["enrs"].as_array().unwrap().len()
    );
    assert!(tree_dom.contains(&format!("href=\"/dashboard/nodes/{}\"", alpha.node_id())));
    assert!(!tree_dom.contains(&down.node_id()), "a critical node is never listed");
    let cold_dom = dump_dom(&format!("{base}/dashboard/trees/cold"), &profile);
    assert!(text_of(&cold_dom, "pending").ends_with("waits for a key holder."), "{cold_dom}");
    assert!(cold_dom.contains("/api/v1/trees/cold/sign-request"), "{cold_dom}");
    // A public dashboard is read-only: nobody logged in, so no page offers a form.
    for dom in [&dom, &cold_dom, &tree_dom, &alpha_dom] {
        assert!(!dom.contains("<form"), "{dom}");
    }

    // And it looks like a dashboard: a screenshot for people reading the test output.
    let shot = dir.path().join("dashboard.png");
    let status = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--window-size=1400,1000", "--hide-scrollbars"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("{base}/dashboard"))
        .output()
        .unwrap();
    assert!(status.status.success());
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "{} bytes", png.len());
    if let Some(keep) = std::env::var_os("WAKUFLEET_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    controller.shutdown().await;
}

async fn login_and_errors(database_url: String) {
    let dir = tempfile::tempdir().unwrap();
    let mut keyring = Keyring::default();
    keyring.insert("dev", node::crypto::generate_key());
    let controller = Controller::start(
        config(dir.path(), DashboardConfig::default(), database_url),
        keyring,
        Vec::new(),
    )
    .await
    .unwrap();
    let base = format!("http://{}", controller.http_addr());
    let http = reqwest::Client::new();
    let mut agent = SimAgent::new(30310);
    agent.join(&http, &base, ADMIN, 8).await;

    // No login, a wrong one, the bearer token of the API: the browser is asked to log in.
    for request in [
        http.get(format!("{base}/dashboard")),
        http.get(format!("{base}/dashboard")).basic_auth("admin", Some("wrong")),
        http.get(format!("{base}/dashboard")).bearer_auth(ADMIN),
        http.get(format!("{base}/dashboard/nodes/{}", agent.node_id())),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401);
        assert_eq!(
            response.headers()["www-authenticate"],
            "Basic realm=\"wakufleet\", charset=\"UTF-8\""
        );
        let body = response.text().await.unwrap();
        assert!(body.contains("access token"), "{body}");
        assert!(!body.contains(&agent.node_id()), "nothing of the fleet before a login");
    }

    let page = http
        .get(format!("{base}/dashboard"))
        .basic_auth("admin", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.starts_with("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let body = page.text().await.unwrap();
    assert!(body.contains(&format!("data-node=\"{}\"", agent.node_id())), "{body}");
    assert!(body.contains("<meta http-equiv=\"refresh\" content=\"15\">"));

    // A node in maintenance says so, with the reason.
    let maintenance = format!("{base}/api/v1/nodes/{}/maintenance", agent.node_id());
    let reason = serde_json::json!({ "reason": "kernel upgrade" });
    let put = http.put(maintenance).bearer_auth(ADMIN).json(&reason).send().await.unwrap();
    assert_eq!(put.status().as_u16(), 200);
    let url = format!("{base}/dashboard/nodes/{}", agent.node_id());
    let page = http.get(url).basic_auth("admin", Some(ADMIN)).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains("In maintenance: kernel upgrade (person:admin,"), "{page}");

    // Unknown things: a 404 page that says what was not found, and leaves nothing changed.
    for (path, says) in
        [("/dashboard/nodes/00ff", "no node 00ff"), ("/dashboard/trees/nope", "no tree nope")]
    {
        let response = http
            .get(format!("{base}{path}"))
            .basic_auth("admin", Some(ADMIN))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 404, "{path}");
        assert!(response.text().await.unwrap().contains(says), "{path}");
    }
    let nodes = operator_get(&http, &base, "/api/v1/nodes", ADMIN).await;
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 1);
    controller.shutdown().await;

    // Disabled: no dashboard at all, the API unchanged.
    let dir = tempfile::tempdir().unwrap();
    let mut keyring = Keyring::default();
    keyring.insert("dev", node::crypto::generate_key());
    let dashboard = DashboardConfig { enabled: false, ..DashboardConfig::default() };
    let database = format!("sqlite://{}", dir.path().join("off.db").display());
    let controller =
        Controller::start(config(dir.path(), dashboard, database), keyring, Vec::new())
            .await
            .unwrap();
    let base = format!("http://{}", controller.http_addr());
    for path in ["/", "/dashboard"] {
        let response = http
            .get(format!("{base}{path}"))
            .basic_auth("admin", Some(ADMIN))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 404, "{path}");
    }
    assert_eq!(http.get(format!("{base}/health")).send().await.unwrap().status().as_u16(), 200);
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_login_and_errors_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    login_and_errors(format!("sqlite://{}", dir.path().join("controller.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_login_and_errors_on_postgres() {
    let database = node::sql::TestDatabase::create().await.unwrap();
    login_and_errors(database.url().to_owned()).await;
}
