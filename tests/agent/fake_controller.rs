//! A controller that misbehaves on purpose (500s with garbage, garbage with 200, non-HTTP
//! bytes) or hands out desired configurations: the agent's side of those answers.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU8, Ordering},
    },
    time::Duration,
};

use agent::client::{ClientError, ControllerClient};
use axum::{Router, body::Bytes, extract::State, http::StatusCode, routing::post};
use contract::report::{REPORT_VERSION, Report};
use serde_json::{Value, json};

use crate::helpers::*;

const GARBAGE_500: u8 = 0;
const GARBAGE_200: u8 = 1;
const GOOD: u8 = 2;

#[derive(Default)]
struct Fake {
    mode: AtomicU8,
    accepted: Mutex<Vec<Report>>,
    desired: Mutex<Option<Value>>,
}

async fn enrol(body: Bytes) -> (StatusCode, String) {
    let enrolment: Value = serde_json::from_slice(&body).unwrap();
    let record: node::enrtree::NodeRecord = enrolment["enr"].as_str().unwrap().parse().unwrap();
    (StatusCode::CREATED, json!({ "nodeId": record.node_id_hex() }).to_string())
}

async fn report(State(fake): State<Arc<Fake>>, body: Bytes) -> (StatusCode, Vec<u8>) {
    let report: Report = serde_json::from_slice(&body).unwrap();
    match fake.mode.load(Ordering::Relaxed) {
        GARBAGE_500 => (StatusCode::INTERNAL_SERVER_ERROR, b"\x00\xffgarbage<html>".to_vec()),
        GARBAGE_200 => {
            fake.accepted.lock().unwrap().push(report);
            (StatusCode::OK, b"{{{ not json".to_vec())
        }
        _ => {
            let counter = report.counter;
            fake.accepted.lock().unwrap().push(report);
            let desired = fake.desired.lock().unwrap().clone();
            let answer = json!({ "counter": counter, "desired": desired });
            (StatusCode::ACCEPTED, answer.to_string().into_bytes())
        }
    }
}

async fn start_fake() -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake::default());
    let router = Router::new()
        .route("/api/v1/enrol", post(enrol))
        .route("/api/v1/reports", post(report))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (fake, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_500s_keep_reports_queued_and_the_node_running() {
    capture_logs();
    let (fake, url) = start_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let (agent, _key) = start_agent(agent_config(dir.path(), &url, ""), "wft_fake").await;
    let metrics = agent.metrics().clone();
    poll_until("failed deliveries", Duration::from_secs(10), async || {
        metrics.reports_failed.load(Ordering::Relaxed) >= 5
    })
    .await;
    assert!(fake.accepted.lock().unwrap().is_empty());
    assert!(metrics.reports_queued.load(Ordering::Relaxed) >= 5);
    assert_eq!(metrics.outages.load(Ordering::Relaxed), 1);
    let lines = log_lines(&["controller unavailable", &url]);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("500") && lines[0].contains("unreadable answer"), "{}", lines[0]);
    assert!(agent.supervisor().current().is_some());
    assert_eq!(get(agent.rest_addr().unwrap(), "/health").await.0, 200);

    // 200 with a garbage body: accepted (the status says so), the backlog drains in order.
    fake.mode.store(GARBAGE_200, Ordering::Relaxed);
    poll_until("drained", Duration::from_secs(10), async || {
        metrics.reports_queued.load(Ordering::Relaxed) == 0
    })
    .await;
    let accepted = fake.accepted.lock().unwrap().clone();
    assert!(accepted.len() >= 5);
    assert!(accepted.windows(2).all(|w| w[0].counter < w[1].counter));
    assert!(accepted.windows(2).all(|w| w[0].measured_at < w[1].measured_at));
    assert!(accepted.iter().all(|r| r.version == REPORT_VERSION));
    // The 500s' error reached a report.
    assert!(
        accepted.iter().any(|r| r.figures.errors.iter().any(|e| e.contains("controller failed"))),
        "{:?}",
        accepted.iter().map(|r| &r.figures.errors).collect::<Vec<_>>()
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn non_http_answers_are_transient_errors() {
    // A port that answers with bytes that are not HTTP, then closes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket.write_all(b"\x16\x03\x01 this is not http\r\n\r\n").await;
        }
    });
    let client = ControllerClient::new(
        &format!("http://{addr}"),
        node::crypto::generate_key(),
        Duration::from_secs(2),
        &[],
    )
    .unwrap();
    let report = Report {
        version: REPORT_VERSION,
        node_id: "00".into(),
        counter: 1,
        sent_at: 1,
        measured_at: 1,
        enr: "enr:x".into(),
        services: Vec::new(),
        shards: Vec::new(),
        cluster_id: None,
        figures: Default::default(),
        fleet_version: None,
    };
    let error = client.report(&report).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(matches!(error, ClientError::Unreachable(_) | ClientError::Server { .. }), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desired_configuration_is_applied_or_rolled_back_and_reported() {
    capture_logs();
    let (fake, url) = start_fake().await;
    fake.mode.store(GOOD, Ordering::Relaxed);
    let dir = tempfile::tempdir().unwrap();
    // Store is off; the archive named here cannot be created (for the rollback below).
    let config = agent_config(
        dir.path(),
        &url,
        "store-message-db-url = \"sqlite:///nonexistent-wakufleet-dir/x/store.db\"",
    );
    let (agent, _key) = start_agent(config, "wft_fake").await;
    poll_until("a report", Duration::from_secs(10), async || {
        !fake.accepted.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(fake.accepted.lock().unwrap()[0].shards, [0]);

    *fake.desired.lock().unwrap() =
        Some(json!({ "version": 1, "shards": [0, 3], "roles": ["relay", "filter", "boot"] }));
    let applied = |r: &Report| r.figures.config.as_ref().is_some_and(|c| c.version == 1);
    poll_until("version 1 reported", Duration::from_secs(10), async || {
        fake.accepted.lock().unwrap().iter().any(applied)
    })
    .await;
    let report = fake.accepted.lock().unwrap().iter().find(|r| applied(r)).unwrap().clone();
    assert!(report.figures.config.as_ref().unwrap().applied);
    assert_eq!(report.shards, [0, 3]);
    // What runs, not what was asked: `boot` is a role, which only operators give.
    assert_eq!(report.services, ["relay", "filter"].map(String::from).to_vec());
    let instance = agent.supervisor().current().unwrap();
    assert_eq!(instance.shards, [0, 3]);

    // A configuration the node cannot run (its archive cannot be opened): rolled back to
    // version 1, reported as failed.
    *fake.desired.lock().unwrap() = Some(json!({ "version": 2, "roles": ["relay", "store"] }));
    let v2 = |r: &Report| r.figures.config.as_ref().is_some_and(|c| c.version == 2);
    poll_until("version 2 reported", Duration::from_secs(10), async || {
        fake.accepted.lock().unwrap().iter().any(v2)
    })
    .await;
    let report = fake.accepted.lock().unwrap().iter().find(|r| v2(r)).unwrap().clone();
    let status = report.figures.config.unwrap();
    assert!(!status.applied);
    assert!(status.error.as_deref().unwrap().contains("database"), "{status:?}");
    assert_eq!(report.shards, [0, 3], "back on version 1");
    assert!(!agent.supervisor().current().unwrap().store);
    assert!(report.figures.errors.iter().any(|e| e.contains("desired configuration 2 failed")));

    // Out of bounds: refused before the node is touched.
    let before = agent.supervisor().current().unwrap();
    *fake.desired.lock().unwrap() = Some(json!({ "version": 3, "shards": [2000] }));
    let v3 = |r: &Report| r.figures.config.as_ref().is_some_and(|c| c.version == 3);
    poll_until("version 3 reported", Duration::from_secs(10), async || {
        fake.accepted.lock().unwrap().iter().any(v3)
    })
    .await;
    let report = fake.accepted.lock().unwrap().iter().find(|r| v3(r)).unwrap().clone();
    assert!(report.figures.config.unwrap().error.unwrap().contains("1..64 shards"));
    assert!(Arc::ptr_eq(&before, &agent.supervisor().current().unwrap()), "not restarted");
    assert_eq!(agent.supervisor().stats().restarts(), 0, "applying is not a crash");
    agent.shutdown().await;
}
