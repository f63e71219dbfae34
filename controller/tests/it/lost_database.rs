//! A controller whose Postgres database disappears: `/health` turns 503 within its timeout
//! (a load balancer takes the instance out of rotation), the API and the dashboard answer 503
//! with a clear message instead of hanging, and reports are refused as "try again" — nothing
//! panics, and the process still stops cleanly.

use crate::common::{self, controller::test_config};

use std::time::{Duration, Instant};

use common::agent::SimAgent;
use controller::{
    app::Controller,
    config::{ControllerConfig, DashboardConfig},
    keyring::Keyring,
};
use serde_json::Value;

const ADMIN: &str = "lost-database-test-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_database_turns_health_to_503_and_loses_nothing_silently() {
    let database = node::sql::TestDatabase::create().await.unwrap();
    let url = database.url().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let config = ControllerConfig {
        reconcile_interval_ms: 200,
        dashboard: DashboardConfig { public: true, ..DashboardConfig::default() },
        ..test_config(dir.path(), ADMIN, Some(&url))
    };
    let controller = Controller::start(config, Keyring::default(), Vec::new()).await.unwrap();
    let base = format!("http://{}", controller.http_addr());
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();
    let mut agent = SimAgent::new(30500);
    agent.join(&http, &base, ADMIN, 8).await;

    let health = |http: reqwest::Client, base: String| async move {
        let response = http.get(format!("{base}/health")).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = health(http.clone(), base.clone()).await;
        assert_eq!(status, 200, "{body}");
        if body["publisher"] == true {
            assert_eq!(body["database"], "ok");
            break;
        }
        assert!(Instant::now() < deadline, "never the publisher: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    node::sql::drop_postgres_database(&url).await.unwrap();

    let started = Instant::now();
    let (status, body) = health(http.clone(), base.clone()).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable", "{body}");
    assert!(started.elapsed() < Duration::from_secs(5), "health took {:?}", started.elapsed());

    let nodes = http.get(format!("{base}/api/v1/nodes")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(nodes.status().as_u16(), 503);
    let error: Value = nodes.json().await.unwrap();
    assert!(error["error"].as_str().unwrap().starts_with("database unavailable"), "{error}");
    let page = http.get(format!("{base}/dashboard")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 503);
    assert!(page.text().await.unwrap().contains("the database is unavailable; try again"));
    // An agent's report: 503, which agents queue and send again later.
    let body = agent.report(8);
    let (status, answer) = agent.post(&http, &base, "/api/v1/reports", &body).await;
    assert_eq!(status, 503, "{answer}");

    tokio::time::timeout(Duration::from_secs(20), controller.shutdown())
        .await
        .expect("stops without its database");
}
