//! People and their roles (issue: trust boundary, part 6): every route × every role × no token
//! × a revoked token, on SQLite and Postgres; accounts made, listed, revoked; the audit log
//! names the person; the dashboard logs in per name; tokens are kept only as digests.
//!
//! The route table is the test's own; it must cover exactly the routes `/openapi.json`
//! documents as people's (a new route without a line here fails), with the same permission.

use std::collections::BTreeSet;

use controller::{
    access::{Permission, Role},
    app::Controller,
    config::{ControllerConfig, MetricsConfig},
    keyring::Keyring,
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::controller::{boot_tree, test_config, test_dns};

const ADMIN: &str = "roles-test-admin";

use Permission::{Administer, Operate, Read, Sign};

/// (method, path as documented, path requested, what it needs). Requests carry `{}` as their
/// body, so an allowed one fails validation or finds nothing and changes nothing.
const ROUTES: &[(&str, &str, &str, Permission)] = &[
    ("POST", "/api/v1/tokens", "/api/v1/tokens", Operate),
    ("GET", "/api/v1/tokens", "/api/v1/tokens", Operate),
    ("DELETE", "/api/v1/tokens/{id}", "/api/v1/tokens/nope", Operate),
    ("GET", "/api/v1/nodes", "/api/v1/nodes", Read),
    ("GET", "/api/v1/nodes/{id}", "/api/v1/nodes/nope", Read),
    ("DELETE", "/api/v1/nodes/{id}", "/api/v1/nodes/nope", Operate),
    ("PUT", "/api/v1/nodes/{id}/config", "/api/v1/nodes/nope/config", Operate),
    ("PUT", "/api/v1/nodes/{id}/membership", "/api/v1/nodes/nope/membership", Operate),
    ("PUT", "/api/v1/nodes/{id}/maintenance", "/api/v1/nodes/nope/maintenance", Operate),
    ("DELETE", "/api/v1/nodes/{id}/maintenance", "/api/v1/nodes/nope/maintenance", Operate),
    ("POST", "/api/v1/rollouts", "/api/v1/rollouts", Operate),
    ("GET", "/api/v1/rollouts", "/api/v1/rollouts", Read),
    ("GET", "/api/v1/rollouts/{id}", "/api/v1/rollouts/999", Read),
    ("DELETE", "/api/v1/rollouts/{id}", "/api/v1/rollouts/999", Operate),
    ("GET", "/api/v1/trees", "/api/v1/trees", Read),
    ("PUT", "/api/v1/trees/{name}", "/api/v1/trees/new", Operate),
    ("GET", "/api/v1/trees/{name}", "/api/v1/trees/boot", Read),
    ("GET", "/api/v1/trees/{name}/sign-request", "/api/v1/trees/boot/sign-request", Sign),
    ("POST", "/api/v1/trees/{name}/signature", "/api/v1/trees/boot/signature", Sign),
    ("POST", "/api/v1/trees/{name}/retire", "/api/v1/trees/nope/retire", Sign),
    ("DELETE", "/api/v1/trees/{name}/retire", "/api/v1/trees/nope/retire", Sign),
    ("GET", "/api/v1/audit", "/api/v1/audit", Read),
    ("POST", "/api/v1/access-tokens", "/api/v1/access-tokens", Administer),
    ("GET", "/api/v1/access-tokens", "/api/v1/access-tokens", Administer),
    ("DELETE", "/api/v1/access-tokens/{name}", "/api/v1/access-tokens/nobody", Administer),
];

/// The dashboard's pages: every role may look; HTTP Basic with the account's name.
const PAGES: &[&str] = &["/dashboard", "/dashboard/nodes/nope", "/dashboard/trees/boot"];

struct Fixture {
    controller: Controller,
    http: reqwest::Client,
    base: String,
    _dir: tempfile::TempDir,
}

async fn start(database_url: Option<&str>, metrics: MetricsConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut keyring = Keyring::default();
    keyring.insert("dev", node::crypto::generate_key());
    let config = ControllerConfig {
        dns: test_dns(),
        trees: vec![boot_tree()],
        metrics,
        ..test_config(dir.path(), ADMIN, database_url)
    };
    let controller = Controller::start(config, keyring, Vec::new()).await.unwrap();
    let base = format!("http://{}", controller.http_addr());
    Fixture { controller, http: reqwest::Client::new(), base, _dir: dir }
}

impl Fixture {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn page(&self, path: &str, login: Option<(&str, &str)>) -> u16 {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some((name, token)) = login {
            request = request.basic_auth(name, Some(token));
        }
        request.send().await.unwrap().status().as_u16()
    }

    async fn create(&self, name: &str, role: &str) -> String {
        let body = json!({ "name": name, "role": role });
        let (status, answer) =
            self.call("POST", "/api/v1/access-tokens", Some(ADMIN), Some(body)).await;
        assert_eq!(status, 201, "{answer}");
        assert_eq!(answer["name"], name);
        assert_eq!(answer["role"], role);
        answer["token"].as_str().unwrap().to_owned()
    }
}

async fn role_table(database_url: Option<&str>) {
    let fixture = start(database_url, MetricsConfig::default()).await;

    // The table covers exactly what the API documents as people's routes.
    let (_, document) = fixture.call("GET", "/openapi.json", None, None).await;
    let mut documented = BTreeSet::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            if let Some(permission) = operation["x-wakufleet-permission"].as_str() {
                documented.insert((method.to_uppercase(), path.clone(), permission.to_owned()));
            }
        }
    }
    let tested: BTreeSet<_> = ROUTES
        .iter()
        .map(|(method, path, _, need)| ((*method).to_owned(), (*path).to_owned(), name(*need)))
        .collect();
    assert_eq!(tested, documented, "the role table and /openapi.json differ");

    let mut tokens = Vec::new();
    for role in Role::ALL {
        let name = format!("{role}-1");
        tokens.push((role, name.clone(), fixture.create(&name, role.as_str()).await));
    }
    let revoked = fixture.create("gone", "admin").await;
    let (status, _) = fixture.call("DELETE", "/api/v1/access-tokens/gone", Some(ADMIN), None).await;
    assert_eq!(status, 204);
    let (_, audit) = fixture.call("GET", "/api/v1/audit", Some(ADMIN), None).await;
    let audited_before = audit["entries"].as_array().unwrap().len();

    for (method, _, path, need) in ROUTES {
        let body = (*method != "GET" && *method != "DELETE").then(|| json!({}));
        let what = format!("{method} {path}");
        let (status, _) = fixture.call(method, path, None, body.clone()).await;
        assert_eq!(status, 401, "{what} without a token");
        let (status, _) = fixture.call(method, path, Some(&revoked), body.clone()).await;
        assert_eq!(status, 401, "{what} with a revoked token");
        let (status, _) = fixture.call(method, path, Some("wfa_guessed"), body.clone()).await;
        assert_eq!(status, 401, "{what} with an unknown token");
        for (role, _, token) in &tokens {
            let (status, answer) = fixture.call(method, path, Some(token), body.clone()).await;
            if role.may(*need) {
                assert!(![401, 403].contains(&status), "{what} as {role}: {status} {answer}");
            } else {
                assert_eq!(status, 403, "{what} as {role}: {answer}");
                let why = answer["error"].as_str().unwrap();
                assert!(why.contains(role.as_str()) && why.contains(need.as_str()), "{why}");
            }
        }
    }
    for path in PAGES {
        assert_eq!(fixture.page(path, None).await, 401, "{path} without a login");
        assert_eq!(fixture.page(path, Some(("gone", &revoked))).await, 401, "{path} revoked");
        for (role, name, token) in &tokens {
            let status = fixture.page(path, Some((name, token))).await;
            assert!([200, 404].contains(&status), "{path} as {role}: {status}");
            // The login is the account's name and its token, not any name.
            let status = fixture.page(path, Some(("someone-else", token))).await;
            assert_eq!(status, 401, "{path} as {role} under another name");
        }
    }
    // Nothing in the table changed anything: the audit log did not grow.
    let (_, audit) = fixture.call("GET", "/api/v1/audit", Some(ADMIN), None).await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(
        entries.len(),
        audited_before,
        "{:?}",
        &entries[audited_before.min(entries.len())..]
    );
    fixture.controller.shutdown().await;
}

fn name(permission: Permission) -> String {
    match permission {
        Read => "read",
        Operate => "operate",
        Sign => "sign",
        Administer => "administer",
    }
    .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_table_on_sqlite() {
    role_table(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_table_on_postgres() {
    let database = node::sql::TestDatabase::create().await.unwrap();
    role_table(Some(database.url())).await;
}

#[tokio::test]
async fn accounts_are_named_audited_revocable_and_kept_only_as_digests() {
    let database = node::sql::TestDatabase::create().await.unwrap();
    let fixture = start(Some(database.url()), MetricsConfig::default()).await;
    let alice = fixture.create("alice", "operator").await;
    let viewer = fixture.create("grafana", "viewer").await;

    // Bad requests are refused with the reason and make nothing.
    for (body, why) in [
        (json!({ "name": "alice", "role": "viewer" }), "exists"),
        (json!({ "name": "admin", "role": "viewer" }), "bootstrap admin"),
        (json!({ "name": "bob", "role": "root" }), "unknown role"),
        (json!({ "name": "<b>bob</b>", "role": "viewer" }), "letters, digits"),
        (json!({ "name": "bob", "role": "viewer", "extra": 1 }), "unknown field"),
    ] {
        let (status, answer) =
            fixture.call("POST", "/api/v1/access-tokens", Some(ADMIN), Some(body)).await;
        assert!([400, 409].contains(&status), "{why}: {status} {answer}");
        assert!(answer["error"].as_str().unwrap().contains(why), "{answer}");
    }
    // Accounts cannot make accounts unless they are admins.
    let body = json!({ "name": "mallory", "role": "admin" });
    let (status, _) = fixture.call("POST", "/api/v1/access-tokens", Some(&alice), Some(body)).await;
    assert_eq!(status, 403);

    // What alice does is audited under her name.
    let body = json!({ "label": "edge-1", "roles": ["relay"] });
    let (status, _) = fixture.call("POST", "/api/v1/tokens", Some(&alice), Some(body)).await;
    assert_eq!(status, 201);
    let (_, audit) = fixture.call("GET", "/api/v1/audit", Some(&viewer), None).await;
    let entry = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "token.create")
        .unwrap()
        .clone();
    assert_eq!(entry["actor"], "person:alice", "{entry}");

    // The list shows names, roles and use, never a secret.
    let (status, list) = fixture.call("GET", "/api/v1/access-tokens", Some(ADMIN), None).await;
    assert_eq!(status, 200);
    let text = list.to_string();
    assert!(!text.contains(&alice) && !text.contains(&viewer), "{text}");
    let accounts = list["accessTokens"].as_array().unwrap();
    assert_eq!(accounts.len(), 2, "{list}");
    let alice_row = accounts.iter().find(|a| a["name"] == "alice").unwrap();
    assert_eq!(alice_row["role"], "operator");
    assert!(alice_row["lastUsedAt"].is_i64(), "{alice_row}");
    assert!(alice_row["revokedAt"].is_null());

    // At rest: the digest only.
    let pool = sqlx::PgPool::connect(database.url()).await.unwrap();
    let stored: Vec<(String, String)> =
        sqlx::query_as("SELECT name, token_hash FROM access_tokens")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(stored.len(), 2);
    for (_, hash) in &stored {
        assert_eq!(hash.len(), 64, "a SHA-256 in hex");
        assert!(*hash != alice && *hash != viewer);
    }
    pool.close().await;

    // Revoked: the next request is refused; the name can be given out again, with a new token.
    let (status, _) =
        fixture.call("DELETE", "/api/v1/access-tokens/alice", Some(ADMIN), None).await;
    assert_eq!(status, 204);
    let (status, _) = fixture.call("GET", "/api/v1/nodes", Some(&alice), None).await;
    assert_eq!(status, 401);
    let (status, _) =
        fixture.call("DELETE", "/api/v1/access-tokens/alice", Some(ADMIN), None).await;
    assert_eq!(status, 404, "revoking twice");
    let alice_again = fixture.create("alice", "viewer").await;
    assert_ne!(alice_again, alice);
    let (status, _) = fixture.call("GET", "/api/v1/nodes", Some(&alice_again), None).await;
    assert_eq!(status, 200);
    let (status, _) = fixture.call("GET", "/api/v1/nodes", Some(&alice), None).await;
    assert_eq!(status, 401, "the old token stays dead");
    let (_, audit) = fixture.call("GET", "/api/v1/audit", Some(ADMIN), None).await;
    let revoke = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "access.revoke")
        .unwrap()
        .clone();
    assert_eq!(
        (revoke["actor"].as_str(), revoke["subject"].as_str()),
        (Some("person:admin"), Some("alice"))
    );
    fixture.controller.shutdown().await;
}

#[tokio::test]
async fn metrics_behind_a_token_take_a_viewers() {
    let fixture = start(None, MetricsConfig { require_token: true }).await;
    let viewer = fixture.create("prometheus", "viewer").await;
    fixture.controller.reconcile_now().await.unwrap();
    let (status, _) = fixture.call("GET", "/metrics", None, None).await;
    assert_eq!(status, 401);
    let response = fixture
        .http
        .get(format!("{}/metrics", fixture.base))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    // The fleet's state comes from the first pass's snapshot, with its age.
    assert!(text.contains("wakufleet_fleet_state_age_seconds"), "{text}");
    assert!(text.contains("wakufleet_tree_build_error{tree=\"boot\"}"), "{text}");
    fixture.controller.shutdown().await;
}
