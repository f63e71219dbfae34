//! `wakufleet token create` against a real controller: the token lands in a mode-0600 file and
//! an agent enrols with it; a wrong admin token, an existing file and an unreachable
//! controller each fail with one clear line and leave no file behind.

use std::{os::unix::fs::PermissionsExt, path::Path, process::Output, time::Duration};

use controller::{app::Controller, config::ControllerConfig, keyring::Keyring};

const BIN: &str = env!("CARGO_BIN_EXE_wakufleet");
const ADMIN: &str = "cli-token-test-admin";

async fn token_create(admin: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .args(["token", "create"])
        .args(args)
        .env("WAKUFLEET_ADMIN_TOKEN", admin)
        .output()
        .await
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn start(dir: &Path) -> Controller {
    let token_file = dir.join("admin-token");
    std::fs::write(&token_file, ADMIN).unwrap();
    let config = ControllerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: format!("sqlite://{}", dir.join("controller.db").display()),
        admin_token_file: Some(token_file),
        ..ControllerConfig::default()
    };
    Controller::start(config, Keyring::default(), Vec::new()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_the_cli_enrols_an_agent() {
    let dir = tempfile::tempdir().unwrap();
    let controller = start(dir.path()).await;
    let base = format!("http://{}", controller.http_addr());
    let out = dir.path().join("agent-1.token");
    let out_arg = out.to_str().unwrap();
    let args = ["--controller", &base, "--label", "edge-1", "--roles", "relay,boot", "--ttl", "2h"];

    let created = token_create(ADMIN, &[&args[..], &["--out", out_arg]].concat()).await;
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(created.stdout.is_empty(), "the token goes to the file only");
    assert!(stderr(&created).contains("for edge-1, roles [relay, boot], to be redeemed within 2h"));
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let token = std::fs::read_to_string(&out).unwrap().trim().to_owned();
    assert!(token.starts_with("wft_"), "{token}");

    // The controller knows it with its label and roles, and an agent enrols with it.
    let http = reqwest::Client::new();
    let tokens = crate::sim_agent::operator_get(&http, &base, "/api/v1/tokens", ADMIN).await;
    let listed = &tokens["tokens"][0];
    assert_eq!(
        (listed["label"].as_str(), listed["roles"].clone()),
        (Some("edge-1"), serde_json::json!(["relay", "boot"]))
    );
    let sim = crate::sim_agent::SimAgent::new(30400);
    let (status, answer) = sim.post(&http, &base, "/api/v1/enrol", &sim.enrolment(&token)).await;
    assert_eq!(status, 201, "{answer}");

    // Run again: refused (the file is a token already), or left alone with --keep-existing.
    let again = token_create(ADMIN, &[&args[..], &["--out", out_arg]].concat()).await;
    assert!(!again.status.success());
    assert!(stderr(&again).contains("already exists"), "{}", stderr(&again));
    let kept =
        token_create(ADMIN, &[&args[..], &["--out", out_arg, "--keep-existing"]].concat()).await;
    assert!(kept.status.success(), "{}", stderr(&kept));
    assert_eq!(std::fs::read_to_string(&out).unwrap().trim(), token);

    // A wrong admin token: the controller's reason, and no file.
    let other = dir.path().join("agent-2.token");
    let wrong =
        token_create("not-the-token", &[&args[..], &["--out", other.to_str().unwrap()]].concat())
            .await;
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("401 Unauthorized: unknown or revoked token"),
        "{}",
        stderr(&wrong)
    );
    assert!(!other.exists());
    // Without --out, the token is printed.
    let printed = token_create(ADMIN, &args).await;
    assert!(printed.status.success(), "{}", stderr(&printed));
    assert!(String::from_utf8_lossy(&printed.stdout).starts_with("wft_"));
    controller.shutdown().await;

    // The controller gone: tried for --wait, then one line naming it.
    let started = std::time::Instant::now();
    let gone = token_create(
        ADMIN,
        &[&args[..], &["--out", other.to_str().unwrap(), "--wait", "1s"]].concat(),
    )
    .await;
    assert!(!gone.status.success());
    assert!(started.elapsed() >= Duration::from_secs(1), "it waited");
    assert!(
        stderr(&gone).contains(&format!("controller at {base}/api/v1/tokens")),
        "{}",
        stderr(&gone)
    );
    assert!(!other.exists());
}

async fn access(token: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .arg("access")
        .args(args)
        .env("WAKUFLEET_TOKEN", token)
        .env_remove("WAKUFLEET_ADMIN_TOKEN")
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_tokens_from_the_cli_are_created_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let controller = start(dir.path()).await;
    let base = format!("http://{}", controller.http_addr());
    let out = dir.path().join("grafana.token");
    let api = ["--controller", base.as_str()];

    let out_arg = out.to_str().unwrap();
    let create =
        [&["create"], &api[..], &["--name", "grafana", "--role", "viewer", "--out", out_arg]];
    let created = access(ADMIN, &create.concat()).await;
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(stderr(&created).contains("grafana (viewer)"), "{}", stderr(&created));
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let viewer = std::fs::read_to_string(&out).unwrap().trim().to_owned();
    assert!(viewer.starts_with("wfa_"), "{viewer}");

    // The viewer reads; it may not make accounts (the controller's reason, exit 1).
    let http = reqwest::Client::new();
    let nodes = crate::sim_agent::operator_get(&http, &base, "/api/v1/nodes", &viewer).await;
    assert!(nodes["nodes"].is_array(), "{nodes}");
    let refused =
        access(&viewer, &[&["create"], &api[..], &["--name", "x", "--role", "admin"]].concat())
            .await;
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("403"), "{}", stderr(&refused));
    let bad_role =
        access(ADMIN, &[&["create"], &api[..], &["--name", "x", "--role", "root"]].concat()).await;
    assert!(stderr(&bad_role).contains("unknown role"), "{}", stderr(&bad_role));

    let listed = access(ADMIN, &[&["list"], &api[..]].concat()).await;
    assert!(listed.status.success(), "{}", stderr(&listed));
    let table = String::from_utf8_lossy(&listed.stdout).into_owned();
    let row = table.lines().find(|l| l.starts_with("grafana")).unwrap_or_default().to_owned();
    assert!(row.contains("viewer") && row.contains("active"), "{table}");
    assert!(!table.contains(&viewer), "no secret in the list");

    let revoked = access(ADMIN, &[&["revoke"], &api[..], &["--name", "grafana"]].concat()).await;
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let response = http.get(format!("{base}/api/v1/nodes")).bearer_auth(&viewer).send().await;
    assert_eq!(response.unwrap().status(), 401);
    let listed = access(ADMIN, &[&["list"], &api[..]].concat()).await;
    assert!(String::from_utf8_lossy(&listed.stdout).contains("revoked"));
    controller.shutdown().await;
}

async fn token_cli(args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .arg("token")
        .args(args)
        .env("WAKUFLEET_ADMIN_TOKEN", ADMIN)
        .env_remove("WAKUFLEET_TOKEN")
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_tokens_are_listed_and_revoked_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let controller = start(dir.path()).await;
    let base = format!("http://{}", controller.http_addr());
    let api = ["--controller", base.as_str()];
    let mut tokens = Vec::new();
    for label in ["edge-1", "edge-2"] {
        let created =
            token_cli(&[&["create"], &api[..], &["--label", label, "--ttl", "1d"]].concat()).await;
        assert!(created.status.success(), "{}", stderr(&created));
        assert!(stderr(&created).contains("within 1 day"), "{}", stderr(&created));
        tokens.push(String::from_utf8_lossy(&created.stdout).trim().to_owned());
    }
    let http = reqwest::Client::new();
    let listed = crate::sim_agent::operator_get(&http, &base, "/api/v1/tokens", ADMIN).await;
    let id_of = |label: &str| {
        listed["tokens"].as_array().unwrap().iter().find(|t| t["label"] == label).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (first_id, second_id) = (id_of("edge-1"), id_of("edge-2"));

    // One is redeemed; the other is revoked by the prefix `list` prints.
    let sim = crate::sim_agent::SimAgent::new(30410);
    let (status, answer) =
        sim.post(&http, &base, "/api/v1/enrol", &sim.enrolment(&tokens[0])).await;
    assert_eq!(status, 201, "{answer}");
    let revoked = token_cli(&[&["revoke"], &api[..], &["--id", &second_id[..12]]].concat()).await;
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let table = token_cli(&[&["list"], &api[..]].concat()).await;
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    let row = |id: &str| table.lines().find(|l| l.starts_with(&id[..16])).unwrap().to_owned();
    assert!(row(&first_id).contains("used by"), "{table}");
    assert!(row(&second_id).contains("revoked"), "{table}");
    assert!(!table.contains(&tokens[1]), "no secret in the list");

    // The revoked token no longer enrols; a redeemed one cannot be revoked (the node is).
    let other = crate::sim_agent::SimAgent::new(30411);
    let (status, answer) =
        other.post(&http, &base, "/api/v1/enrol", &other.enrolment(&tokens[1])).await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer.to_string().contains("revoked"), "{answer}");
    let used = token_cli(&[&["revoke"], &api[..], &["--id", &first_id]].concat()).await;
    assert!(!used.status.success());
    assert!(
        stderr(&used).contains("409") && stderr(&used).contains("redeemed"),
        "{}",
        stderr(&used)
    );
    let short = token_cli(&[&["revoke"], &api[..], &["--id", "abc"]].concat()).await;
    assert!(stderr(&short).contains("at least 8"), "{}", stderr(&short));
    controller.shutdown().await;
}
