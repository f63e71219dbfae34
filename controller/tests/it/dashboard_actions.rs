//! The dashboard's forms over plain HTTP, as a browser sends them (urlencoded and multipart
//! bodies, Basic login, Origin): each role sees only the forms it may send, every action needs
//! its role, a same-origin request and the person's CSRF token, lands exactly as the JSON API's
//! action does and is audited under the person's name. On SQLite and Postgres.

use crate::common::{
    self,
    controller::{boot_tree, cold_tree, test_config, test_dns},
};

use common::agent::{SimAgent, operator_get};
use controller::{app::Controller, config::ControllerConfig, keyring::Keyring};
use node::enrtree::request::{DetachedSignature, SignRequest};
use serde_json::json;

const ADMIN: &str = "actions-admin-token";

/// A browser logged in as one account.
struct Browser {
    http: reqwest::Client,
    base: String,
    name: String,
    token: String,
}

impl Browser {
    fn new(base: &str, name: &str, token: &str) -> Self {
        let http =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { http, base: base.into(), name: name.into(), token: token.into() }
    }

    async fn page(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .basic_auth(&self.name, Some(&self.token))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// The CSRF token the pages' forms carry for this account (empty if no page it may see
    /// has a form).
    async fn csrf(&self) -> String {
        for page in ["/dashboard/rollouts", "/dashboard/trees/relay", "/dashboard/trees/cold"] {
            if let Some(csrf) = csrf_in(&self.page(page).await.1) {
                return csrf;
            }
        }
        String::new()
    }

    /// Posts `fields` (plus `csrf`, if given) as the browser submits a form on this site.
    async fn post_with(
        &self,
        path: &str,
        csrf: Option<&str>,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut body = form_urlencoded::Serializer::new(String::new());
        if let Some(csrf) = csrf {
            body.append_pair("csrf", csrf);
        }
        for (name, value) in fields {
            body.append_pair(name, value);
        }
        self.http
            .post(format!("{}{path}", self.base))
            .basic_auth(&self.name, Some(&self.token))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", &self.base)
            .header("sec-fetch-site", "same-origin")
            .body(body.finish())
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let csrf = self.csrf().await;
        self.post_with(path, Some(&csrf), fields).await
    }
}

fn csrf_in(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(html[at..].split('"').next()?.to_owned())
}

/// Asserts a redirect to `to` (303: the browser GETs the page that shows the result).
fn redirected(response: &reqwest::Response, to: &str) {
    assert_eq!(response.status().as_u16(), 303, "{response:?}");
    assert_eq!(response.headers()["location"], to);
}

async fn refused(response: reqwest::Response, status: u16, says: &str) {
    let got = response.status().as_u16();
    // As a person reads it: askama escapes quotes and apostrophes.
    let body = response.text().await.unwrap().replace("&#34;", "\"").replace("&#39;", "'");
    assert_eq!(got, status, "expected {status} ({says:?}): {body}");
    assert!(body.contains(says), "{says:?} not in {body}");
}

/// The text of the element with `id`, roughly (its first text node).
fn secret_in(html: &str) -> String {
    let at = html.find("id=\"secret\">").unwrap() + "id=\"secret\">".len();
    html[at..].split('<').next().unwrap().to_owned()
}

fn config(dir: &std::path::Path, database_url: &str) -> ControllerConfig {
    let mut config = test_config(dir, ADMIN, Some(database_url));
    config.dns = test_dns();
    config.trees = vec![boot_tree(), cold_tree()];
    config
}

async fn forms_act_for_their_roles_only(database_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut keyring = Keyring::default();
    keyring.insert("dev", node::crypto::generate_key());
    let controller =
        Controller::start(config(dir.path(), database_url), keyring, Vec::new()).await.unwrap();
    let base = format!("http://{}", controller.http_addr());
    let http = reqwest::Client::new();
    let mut agents = Vec::new();
    for port in [30401, 30402] {
        let mut agent = SimAgent::new(port);
        agent.join(&http, &base, ADMIN, 8).await;
        agents.push(agent);
    }
    let node = agents[0].node_id();
    let admin = Browser::new(&base, "admin", ADMIN);

    // Accounts, made in the dashboard by the admin: each token shown once, on its own page.
    let mut people = std::collections::BTreeMap::new();
    for (name, role) in [("olga", "operator"), ("vic", "viewer"), ("kim", "key-holder")] {
        let response = admin.post("/dashboard/access", &[("name", name), ("role", role)]).await;
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let token = secret_in(&response.text().await.unwrap());
        assert!(token.starts_with("wfa_"), "{token}");
        people.insert(name, Browser::new(&base, name, &token));
    }
    let (olga, vic, kim) = (&people["olga"], &people["vic"], &people["kim"]);
    let (_, accounts) = admin.page("/dashboard/access").await;
    assert_eq!(accounts.matches("class=\"account\"").count(), 3, "{accounts}");
    assert!(!accounts.contains("wfa_"), "no token is shown twice");

    // Each role sees the forms it may send, and no others.
    let forms = |html: &str| -> Vec<String> {
        html.match_indices("<form")
            .filter_map(|(at, _)| {
                let action = html[at..].split("action=\"").nth(1)?;
                Some(action.split('"').next()?.to_owned())
            })
            .collect()
    };
    let node_page = format!("/dashboard/nodes/{node}");
    let (_, viewer_node) = vic.page(&node_page).await;
    assert!(forms(&viewer_node).is_empty(), "{viewer_node}");
    let (_, viewer_tree) = vic.page("/dashboard/trees/cold").await;
    assert!(forms(&viewer_tree).is_empty());
    assert_eq!(vic.page("/dashboard/tokens").await.0, 403);
    assert_eq!(vic.page("/dashboard/access").await.0, 403);
    let (_, operator_node) = olga.page(&node_page).await;
    assert_eq!(
        forms(&operator_node),
        ["maintenance", "membership", "config", "decommission"]
            .map(|action| format!("/dashboard/nodes/{node}/{action}"))
    );
    assert!(operator_node.contains("olga · operator"));
    let (_, keyholder_node) = kim.page(&node_page).await;
    assert!(forms(&keyholder_node).is_empty());
    let (_, operator_tree) = olga.page("/dashboard/trees/cold").await;
    assert_eq!(forms(&operator_tree), ["/dashboard/trees/cold/definition"]);
    assert_eq!(olga.page("/dashboard/access").await.0, 403);

    // Maintenance from the operator's form: the same state and audit entry as the API's.
    let maintenance = format!("/dashboard/nodes/{node}/maintenance");
    let response = olga.post(&maintenance, &[("reason", " disk swap ")]).await;
    redirected(&response, &node_page);
    let stored = operator_get(&http, &base, &format!("/api/v1/nodes/{node}"), ADMIN).await;
    assert_eq!(stored["node"]["maintenance"]["reason"], "disk swap");
    assert_eq!(stored["node"]["maintenance"]["by"], "person:olga");
    let (_, page) = olga.page(&node_page).await;
    assert!(page.contains("In maintenance: disk swap"), "{page}");
    assert!(forms(&page).contains(&format!("{maintenance}/end")));

    // Refused: another role, no token, someone else's token, another site, public bodies.
    let csrf = olga.csrf().await;
    let end = format!("{maintenance}/end");
    refused(vic.post_with(&end, Some(&csrf), &[]).await, 403, "vic has the role viewer").await;
    refused(olga.post_with(&end, None, &[]).await, 403, "CSRF token").await;
    refused(olga.post_with(&end, Some(&kim.csrf().await), &[]).await, 403, "CSRF token").await;
    refused(olga.post_with(&end, Some(&"0".repeat(64)), &[]).await, 403, "CSRF token").await;
    let cross = olga
        .http
        .post(format!("{base}{end}"))
        .basic_auth("olga", Some(&olga.token))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "https://evil.example")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    refused(cross, 403, "not from this dashboard").await;
    let json_body = olga
        .http
        .post(format!("{base}{end}"))
        .basic_auth("olga", Some(&olga.token))
        .json(&json!({ "csrf": csrf }))
        .send()
        .await
        .unwrap();
    refused(json_body, 415, "form").await;
    let stored = operator_get(&http, &base, &format!("/api/v1/nodes/{node}"), ADMIN).await;
    assert_eq!(stored["node"]["maintenance"]["reason"], "disk swap", "nothing refused acted");
    redirected(&olga.post(&end, &[]).await, &node_page);
    let stored = operator_get(&http, &base, &format!("/api/v1/nodes/{node}"), ADMIN).await;
    assert!(stored["node"]["maintenance"].is_null());

    // Bad input: a clear page, nothing changed.
    refused(olga.post(&maintenance, &[("reason", "  ")]).await, 400, "reason: fill it in").await;
    let config = format!("/dashboard/nodes/{node}/config");
    refused(olga.post(&config, &[("shards", "0, x")]).await, 400, "shards: \"x\" is not valid")
        .await;
    refused(
        olga.post("/dashboard/nodes/00ff/maintenance", &[("reason", "r")]).await,
        404,
        "no node 00ff",
    )
    .await;
    let decommission = format!("/dashboard/nodes/{}/decommission", agents[1].node_id());
    refused(olga.post(&decommission, &[("confirm", "nope")]).await, 400, "type the node's label")
        .await;

    // Desired configuration and membership.
    redirected(
        &olga.post(&config, &[("shards", "0 1"), ("max-connections", "80")]).await,
        &node_page,
    );
    let stored = operator_get(&http, &base, &format!("/api/v1/nodes/{node}"), ADMIN).await;
    assert_eq!(stored["node"]["desiredConfig"]["shards"], json!([0, 1]));
    assert_eq!(stored["node"]["desiredConfig"]["maxConnections"], 80);
    let membership = format!("/dashboard/nodes/{node}/membership");
    let response =
        olga.post(&membership, &[("roles", "store"), ("roles", "boot"), ("label", "alpha")]).await;
    redirected(&response, &node_page);
    let stored = operator_get(&http, &base, &format!("/api/v1/nodes/{node}"), ADMIN).await;
    assert_eq!(stored["node"]["roles"], json!(["boot", "store"]));
    assert_eq!(stored["node"]["label"], "alpha");

    // Enrolment tokens: made (shown once), listed, revoked.
    let response = olga
        .post("/dashboard/tokens", &[("label", "node-9"), ("roles", "boot"), ("ttl-hours", "2")])
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let token = secret_in(&response.text().await.unwrap());
    assert!(token.starts_with("wft_"), "{token}");
    let listed = operator_get(&http, &base, "/api/v1/tokens", ADMIN).await;
    let made =
        listed["tokens"].as_array().unwrap().iter().find(|t| t["label"] == "node-9").unwrap();
    assert_eq!(made["createdBy"], "person:olga");
    let id = made["id"].as_str().unwrap().to_owned();
    let (_, tokens_page) = olga.page("/dashboard/tokens").await;
    assert!(tokens_page.contains(&format!("/dashboard/tokens/{id}/revoke")));
    redirected(
        &olga.post(&format!("/dashboard/tokens/{id}/revoke"), &[]).await,
        "/dashboard/tokens",
    );
    let late = SimAgent::new(30409);
    let (status, _) = late.post(&http, &base, "/api/v1/enrol", &late.enrolment(&token)).await;
    assert_eq!(status, 401, "a revoked token enrols nobody");

    // Rollouts: nodes chosen by role and shard, watched, cancelled.
    let response = olga
        .post(
            "/dashboard/rollouts",
            &[("select-role", "boot"), ("config-max-connections", "60"), ("healthy-secs", "0")],
        )
        .await;
    assert_eq!(response.status().as_u16(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let id = location.strip_prefix("/dashboard/rollouts/").unwrap().to_owned();
    let rollout = operator_get(&http, &base, &format!("/api/v1/rollouts/{id}"), ADMIN).await;
    assert_eq!(rollout["rollout"]["steps"].as_array().unwrap().len(), 2, "both boot nodes");
    assert_eq!(rollout["rollout"]["createdBy"], "person:olga");
    let (_, page) = vic.page(&location).await;
    assert_eq!(page.matches("class=\"step\"").count(), 2);
    assert!(forms(&page).is_empty(), "a viewer watches, never cancels");
    redirected(&olga.post(&format!("{location}/cancel"), &[]).await, &location);
    let rollout = operator_get(&http, &base, &format!("/api/v1/rollouts/{id}"), ADMIN).await;
    assert_eq!(rollout["rollout"]["state"], "cancelled");
    let none =
        olga.post("/dashboard/rollouts", &[("select-shard", "7"), ("config-shards", "1")]).await;
    refused(none, 400, "no node selected").await;

    // Trees: defined and edited by the operator, retired by the key holder.
    let response = olga
        .post(
            "/dashboard/trees",
            &[
                ("name", "relay"),
                ("domain", "relay.fleet.test"),
                ("signer", "key:dev"),
                ("roles", "boot"),
                ("max-entries", "4"),
                ("list-nodes", "on"),
            ],
        )
        .await;
    redirected(&response, "/dashboard/trees/relay");
    let tree = operator_get(&http, &base, "/api/v1/trees/relay", ADMIN).await;
    assert_eq!(tree["tree"]["policy"]["maxEntries"], 4);
    let again = olga
        .post(
            "/dashboard/trees",
            &[("name", "relay"), ("domain", "relay.fleet.test"), ("signer", "offline")],
        )
        .await;
    refused(again, 409, "exists").await;
    let outside = olga
        .post(
            "/dashboard/trees",
            &[("name", "far"), ("domain", "far.example"), ("signer", "key:dev")],
        )
        .await;
    assert!(outside.status().is_client_error());
    let edit = olga
        .post(
            "/dashboard/trees/relay/definition",
            &[
                ("domain", "relay.fleet.test"),
                ("signer", "key:dev"),
                ("roles", "store"),
                ("list-nodes", "on"),
            ],
        )
        .await;
    redirected(&edit, "/dashboard/trees/relay");
    let tree = operator_get(&http, &base, "/api/v1/trees/relay", ADMIN).await;
    assert_eq!(tree["tree"]["policy"]["roles"], json!(["store"]));
    refused(
        olga.post("/dashboard/trees/relay/retire", &[("overlap-hours", "1")]).await,
        403,
        "may not sign",
    )
    .await;
    redirected(
        &kim.post("/dashboard/trees/relay/retire", &[("overlap-hours", "1")]).await,
        "/dashboard/trees/relay",
    );
    let (_, page) = kim.page("/dashboard/trees/relay").await;
    assert!(forms(&page).contains(&"/dashboard/trees/relay/keep".to_owned()), "{page}");
    redirected(&kim.post("/dashboard/trees/relay/keep", &[]).await, "/dashboard/trees/relay");
    let tree = operator_get(&http, &base, "/api/v1/trees/relay", ADMIN).await;
    assert!(tree["tree"]["retireAt"].is_null());

    // The key holder's flow: download the request, sign it offline, upload the file.
    controller.reconcile_now().await.unwrap();
    let (_, page) = kim.page("/dashboard/trees/cold").await;
    assert!(page.contains("href=\"/dashboard/trees/cold/sign-request\""), "{page}");
    assert_eq!(vic.page("/dashboard/trees/cold/sign-request").await.0, 403);
    let download = kim
        .http
        .get(format!("{base}/dashboard/trees/cold/sign-request"))
        .basic_auth("kim", Some(&kim.token))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status().as_u16(), 200);
    let disposition = download.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(disposition.starts_with("attachment; filename=\"cold-seq"), "{disposition}");
    let request = SignRequest::from_json(&download.text().await.unwrap()).unwrap();
    let holder = node::crypto::generate_key();
    let signature = DetachedSignature::sign(&request.verify().unwrap(), &request.domain, &holder);
    let upload = |csrf: String, file: String| {
        let boundary = "----wakufleet-test";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"signature\"; filename=\"r.sig.json\"\r\n\
             Content-Type: application/json\r\n\r\n{file}\r\n--{boundary}--\r\n"
        );
        kim.http
            .post(format!("{base}/dashboard/trees/cold/signature"))
            .basic_auth("kim", Some(&kim.token))
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .header("origin", &base)
            .body(body)
            .send()
    };
    let mut tampered = signature.clone();
    tampered.root_content.push('x');
    refused(upload(kim.csrf().await, tampered.to_json()).await.unwrap(), 400, "does not verify")
        .await;
    let mut other_seq = signature.clone();
    other_seq.seq += 1;
    refused(upload(kim.csrf().await, other_seq.to_json()).await.unwrap(), 409, "pending version")
        .await;
    refused(upload(String::new(), signature.to_json()).await.unwrap(), 403, "CSRF token").await;
    let huge = upload(kim.csrf().await, "x".repeat(20_000)).await.unwrap();
    refused(huge, 413, "over 16384 bytes").await;
    let accepted = upload(kim.csrf().await, signature.to_json()).await.unwrap();
    assert_eq!(accepted.status().as_u16(), 200);
    let page = accepted.text().await.unwrap();
    assert!(page.contains("The signature verifies"), "{page}");
    controller.reconcile_now().await.unwrap();
    let tree = operator_get(&http, &base, "/api/v1/trees/cold", ADMIN).await;
    assert_eq!(tree["versions"][0]["state"], "published", "{tree}");

    // Decommissioning needs the label typed; revoking an account ends its logins.
    let second = agents[1].node_id();
    let label = operator_get(&http, &base, &format!("/api/v1/nodes/{second}"), ADMIN).await["node"]
        ["label"]
        .as_str()
        .unwrap()
        .to_owned();
    redirected(&olga.post(&decommission, &[("confirm", &label)]).await, "/dashboard");
    let nodes = operator_get(&http, &base, "/api/v1/nodes", ADMIN).await;
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 1);
    redirected(&admin.post("/dashboard/access/vic/revoke", &[]).await, "/dashboard/access");
    assert_eq!(vic.page("/dashboard").await.0, 401);

    // Every action is in the audit log under the person who did it.
    let audit = operator_get(&http, &base, "/api/v1/audit?limit=200", ADMIN).await;
    let entries = audit["entries"].as_array().unwrap();
    for (actor, action) in [
        ("person:olga", "node.maintenance.start"),
        ("person:olga", "node.maintenance.end"),
        ("person:olga", "node.config"),
        ("person:olga", "node.membership"),
        ("person:olga", "token.create"),
        ("person:olga", "token.revoke"),
        ("person:olga", "rollout.create"),
        ("person:olga", "rollout.cancel"),
        ("person:olga", "tree.create"),
        ("person:olga", "node.decommission"),
        ("person:kim", "tree.retire"),
        ("person:kim", "tree.retire.cancel"),
        ("person:kim", "tree.sign"),
        ("person:admin", "access.create"),
        ("person:admin", "access.revoke"),
    ] {
        assert!(
            entries.iter().any(|e| e["actor"] == actor && e["action"] == action),
            "{actor} {action} not audited: {audit}"
        );
    }
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_forms_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    forms_act_for_their_roles_only(&format!("sqlite://{}", dir.path().join("c.db").display()))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_forms_on_postgres() {
    let database = node::sql::TestDatabase::create().await.unwrap();
    forms_act_for_their_roles_only(database.url()).await;
}

/// A public dashboard shows no forms and takes no action.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_dashboard_is_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("c.db").display());
    let mut config = config(dir.path(), &database);
    config.dashboard.public = true;
    let mut keyring = Keyring::default();
    keyring.insert("dev", node::crypto::generate_key());
    let controller = Controller::start(config, keyring, Vec::new()).await.unwrap();
    let base = format!("http://{}", controller.http_addr());
    let http = reqwest::Client::new();
    let mut agent = SimAgent::new(30420);
    agent.join(&http, &base, ADMIN, 8).await;
    let anyone = Browser::new(&base, "", "");
    let (status, page) = anyone.page(&format!("/dashboard/nodes/{}", agent.node_id())).await;
    assert_eq!(status, 200);
    assert!(!page.contains("<form"), "{page}");
    let post = anyone
        .post_with(
            &format!("/dashboard/nodes/{}/maintenance", agent.node_id()),
            Some(""),
            &[("reason", "x")],
        )
        .await;
    refused(post, 403, "public and read-only").await;
    assert_eq!(anyone.page("/dashboard/tokens").await.0, 403);
    controller.shutdown().await;
}
