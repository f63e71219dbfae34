//! A simulated agent for tests: a node key and its signed record, enrolment and report bodies,
//! and requests signed the way real agents sign them. Used by the controller's tests and,
//! through `#[path]`, by the kill-during-publish test in `tests/it`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;

use contract::{
    report::{Figures, Report},
    signing,
};
use k256::ecdsa::SigningKey;
use node::enrtree::NodeRecord;
use serde_json::{Value, json};

/// One simulated agent.
pub(crate) struct SimAgent {
    pub(crate) key: SigningKey,
    pub(crate) record: NodeRecord,
    pub(crate) counter: u64,
    /// The fleet hint version to echo in reports (as an agent does once it applied a hint).
    pub(crate) fleet_version: Option<String>,
}

impl SimAgent {
    /// A fresh key and a record advertising 127.0.0.1 at `port` (TCP and UDP).
    pub(crate) fn new(port: u16) -> Self {
        let key = node::crypto::generate_key();
        let record = NodeRecord::sign(&key, 1, Ipv4Addr::LOCALHOST, port, port).unwrap();
        Self { key, record, counter: 0, fleet_version: None }
    }

    /// An agent for a record made elsewhere (a real node's).
    pub(crate) fn with(key: SigningKey, record: NodeRecord) -> Self {
        Self { key, record, counter: 0, fleet_version: None }
    }

    pub(crate) fn node_id(&self) -> String {
        self.record.node_id_hex()
    }

    /// An enrolment body redeeming `token`.
    pub(crate) fn enrolment(&self, token: &str) -> Vec<u8> {
        let now = node::clock::now_ms();
        json!({ "token": token, "enr": self.record.to_string(), "sentAt": now })
            .to_string()
            .into_bytes()
    }

    /// The next report body: service relay, shard 0 of cluster 1, `relay_peers`.
    pub(crate) fn report(&mut self, relay_peers: u32) -> Vec<u8> {
        self.report_with(vec![0], Figures { relay_peers: Some(relay_peers), ..Figures::default() })
    }

    /// The next report body: service relay, `shards` of cluster 1, `figures`.
    pub(crate) fn report_with(&mut self, shards: Vec<u16>, figures: Figures) -> Vec<u8> {
        self.counter += 1;
        let now = node::clock::now_ms();
        let report = Report {
            version: 1,
            node_id: self.node_id(),
            counter: self.counter,
            sent_at: now,
            measured_at: now,
            enr: self.record.to_string(),
            services: vec!["relay".into()],
            shards,
            cluster_id: Some(1),
            figures,
            fleet_version: self.fleet_version.clone(),
        };
        serde_json::to_vec(&report).unwrap()
    }

    /// POSTs `body` to `base` + `path`, signed with the node key: status and JSON answer.
    pub(crate) async fn post(
        &self,
        http: &reqwest::Client,
        base: &str,
        path: &str,
        body: &[u8],
    ) -> (u16, Value) {
        let response = http
            .post(format!("{base}{path}"))
            .header(signing::SIGNATURE_HEADER, signing::sign(&self.key, body))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Enrols with a fresh token (`admin` creates it) and sends a first report with
    /// `relay_peers`.
    pub(crate) async fn join(
        &mut self,
        http: &reqwest::Client,
        base: &str,
        admin: &str,
        relay_peers: u32,
    ) {
        let token = token(http, base, admin, &["boot"]).await;
        let (status, answer) =
            self.post(http, base, "/api/v1/enrol", &self.enrolment(&token)).await;
        assert_eq!(status, 201, "{answer}");
        self.send_report(http, base, relay_peers).await;
    }

    /// Sends the next report; asserts it is accepted.
    pub(crate) async fn send_report(
        &mut self,
        http: &reqwest::Client,
        base: &str,
        relay_peers: u32,
    ) {
        let body = self.report(relay_peers);
        let (status, answer) = self.post(http, base, "/api/v1/reports", &body).await;
        assert_eq!(status, 202, "{answer}");
    }
}

/// A one-time enrolment token for `roles`, created with the admin token `admin`.
pub(crate) async fn token(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    roles: &[&str],
) -> String {
    labelled_token(http, base, admin, "test", roles).await
}

/// A one-time enrolment token whose node gets `label` (labels are the operators').
pub(crate) async fn labelled_token(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    label: &str,
    roles: &[&str],
) -> String {
    let response = http
        .post(format!("{base}/api/v1/tokens"))
        .bearer_auth(admin)
        .json(&json!({ "label": label, "roles": roles }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let body: Value = response.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

/// GET `base` + `path` with the admin token `admin`: the JSON answer.
pub(crate) async fn operator_get(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    admin: &str,
) -> Value {
    let response = http.get(format!("{base}{path}")).bearer_auth(admin).send().await.unwrap();
    response.json().await.unwrap()
}
