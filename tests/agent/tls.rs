//! An agent reporting to a controller that serves HTTPS itself, trusting the fleet's private
//! CA through `ca-file`; without that trust it never enrols (a man in the middle cannot hand it
//! a configuration), plain HTTP to the HTTPS port gets nothing, and a client that connects and
//! stays silent does not hold up anyone else's handshake.

use std::time::Duration;

use controller::{
    app::Controller,
    config::{ControllerConfig, TlsConfig},
    keyring::Keyring,
};
use serde_json::Value;

use crate::helpers::*;

#[path = "../../controller/tests/common/agent.rs"]
mod sim_agent;
#[path = "../../node/tests/support/fleet_ca.rs"]
mod support;
use sim_agent::operator_get;

fn https_client(ca: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(node::tls::client_config(ca).unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_reports_over_https_to_a_controller_it_trusts() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, _, _) = support::fleet_ca(dir.path());
    std::fs::write(dir.path().join("admin-token"), ADMIN).unwrap();
    let tls =
        TlsConfig { cert_file: dir.path().join("cert.pem"), key_file: dir.path().join("key.pem") };
    let config = ControllerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: format!("sqlite://{}", dir.path().join("controller.db").display()),
        admin_token_file: Some(dir.path().join("admin-token")),
        reconcile_interval_ms: 3_600_000,
        tls: Some(tls.clone()),
        ..ControllerConfig::default()
    };
    let controller =
        Controller::start(config.clone(), Keyring::default(), Vec::new()).await.unwrap();
    let addr = controller.http_addr();
    let base = format!("https://{addr}");

    // Someone connects and says nothing: the others' handshakes go on regardless.
    let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let http = https_client(&ca);
    let health = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    // Plain HTTP to the HTTPS port: no HTTP answer at all.
    assert!(reqwest::get(format!("http://{addr}/health")).await.is_err());
    // The web PKI alone does not know the fleet's CA.
    assert!(https_client(&[]).get(format!("{base}/health")).send().await.is_err());

    let token = async || {
        let response = http
            .post(format!("{base}/api/v1/tokens"))
            .bearer_auth(ADMIN)
            .json(&serde_json::json!({ "label": "tls", "roles": ["boot"] }))
            .send()
            .await
            .unwrap();
        response.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
    };
    let node_count = async || {
        let nodes = operator_get(&http, &base, "/api/v1/nodes", ADMIN).await;
        nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["lastCounter"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };

    // An agent trusting the CA enrols and reports.
    let trusting_dir = dir.path().join("trusting");
    let mut trusting = agent_config(&trusting_dir, &base, "");
    trusting.controller.ca_file = Some(dir.path().join("ca.pem"));
    let (trusting, _) = start_agent(trusting, &token().await).await;
    // An agent that does not: it keeps its node running and never gets through.
    let wary_dir = dir.path().join("wary");
    let (wary, _) = start_agent(agent_config(&wary_dir, &base, ""), &token().await).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let counters = node_count().await;
        if counters.len() == 1 && counters[0] >= 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "reports over HTTPS: {counters:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(node_count().await.len(), 1, "the agent without the CA never enrolled");
    assert!(wary.supervisor().current().is_some(), "its node keeps running");
    trusting.shutdown().await;
    wary.shutdown().await;
    controller.shutdown().await;

    // A key that is not a key: the controller refuses to start, naming it.
    std::fs::write(
        dir.path().join("bad.pem"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let bad = ControllerConfig {
        tls: Some(TlsConfig { key_file: dir.path().join("bad.pem"), ..tls }),
        ..config
    };
    let error = Controller::start(bad, Keyring::default(), Vec::new()).await.err().unwrap();
    assert!(error.to_string().starts_with("tls:"), "{error}");
}
