//! Several controllers behind a load balancer share one Postgres: any of them takes reports,
//! exactly one (the holder of the publisher lease) builds and publishes, every one serves the
//! published tree from its own DNS server, and when the publisher stops another takes over.

use crate::common::{
    self,
    controller::{boot_tree, test_config, test_dns},
};

use common::poll::poll_until;

use std::time::Duration;

use common::agent::{SimAgent, operator_get};
use controller::{app::Controller, config::ControllerConfig, keyring::Keyring};
use k256::ecdsa::SigningKey;
use node::{
    dnsdisc::{ClientConfig, HickoryTxtResolver, TreeClient},
    enrtree::LinkEntry,
};

const ADMIN: &str = "two-controllers-token";

async fn start(database_url: &str, key: &SigningKey, dir: &std::path::Path) -> Controller {
    let mut keyring = Keyring::default();
    keyring.insert("dev", key.clone());
    let config = ControllerConfig {
        reconcile_interval_ms: 200,
        root_ttl: 1,
        dns: test_dns(),
        trees: vec![boot_tree()],
        ..test_config(dir, ADMIN, Some(database_url))
    };
    Controller::start(config, keyring, Vec::new()).await.unwrap()
}

async fn resolve(controller: &Controller, url: &LinkEntry) -> (Vec<String>, usize) {
    let resolver = HickoryTxtResolver::with_server(controller.dns_addr().unwrap()).unwrap();
    let resolution = TreeClient::new(resolver, ClientConfig::default()).resolve(url).await;
    let mut enrs: Vec<String> = resolution.records().iter().map(ToString::to_string).collect();
    enrs.sort();
    (enrs, resolution.errors().count())
}

fn publishers(controllers: &[&Controller]) -> usize {
    controllers.iter().filter(|c| c.state().is_publisher()).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_publisher_among_controllers_sharing_postgres_and_a_takeover() {
    let database = node::sql::TestDatabase::create().await.unwrap();
    let url = database.url().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let key = node::crypto::generate_key();
    let a = start(&url, &key, dir.path()).await;
    let b = start(&url, &key, dir.path()).await;
    let http = reqwest::Client::new();

    // Agents talk to either controller, as behind a load balancer.
    let mut agents: Vec<SimAgent> = (0..4).map(|i| SimAgent::new(33_000 + i)).collect();
    for (i, agent) in agents.iter_mut().enumerate() {
        let via = if i % 2 == 0 { &a } else { &b };
        agent.join(&http, &format!("http://{}", via.http_addr()), ADMIN, 6).await;
    }
    let mut all: Vec<String> = agents.iter().map(|a| a.record.to_string()).collect();
    all.sort();
    let tree_url = || async {
        let base = format!("http://{}", a.http_addr());
        let tree = operator_get(&http, &base, "/api/v1/trees/boot", ADMIN).await;
        tree["url"].as_str().map(|u| u.parse::<LinkEntry>().unwrap())
    };
    poll_until("the tree on both DNS servers", Duration::from_secs(30), async || {
        let Some(url) = tree_url().await else { return false };
        resolve(&a, &url).await == (all.clone(), 0) && resolve(&b, &url).await == (all.clone(), 0)
    })
    .await;
    assert_eq!(publishers(&[&a, &b]), 1, "exactly one publisher");
    let url = tree_url().await.unwrap();

    // The publisher stops (releasing its lease); the other takes over and publishes the next
    // membership change, which it hears about through a report sent to it.
    let (publisher, survivor) = if a.state().is_publisher() { (a, b) } else { (b, a) };
    publisher.shutdown().await;
    let survivor_api = format!("http://{}", survivor.http_addr());
    agents[3].send_report(&http, &survivor_api, 0).await;
    let without: Vec<String> =
        all.iter().filter(|e| **e != agents[3].record.to_string()).cloned().collect();
    poll_until(
        "the survivor publishes without the critical node",
        Duration::from_secs(30),
        async || resolve(&survivor, &url).await == (without.clone(), 0),
    )
    .await;
    assert!(survivor.state().is_publisher());
    let audit = operator_get(&http, &survivor_api, "/api/v1/audit", ADMIN).await;
    let builds = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "tree.build")
        .map(|e| e["detail"]["seq"].as_u64().unwrap())
        .collect::<Vec<_>>();
    let mut unique = builds.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), builds.len(), "no seq was built twice: {builds:?}");
    survivor.shutdown().await;
}
