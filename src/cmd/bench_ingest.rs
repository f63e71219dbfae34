//! `wakufleet bench ingest`: signed health reports into a real controller over real HTTP.
//!
//! An in-process [`Controller`] (HTTP on 127.0.0.1 port 0) runs against a fresh Postgres
//! database (dropped at the end) or a temporary SQLite file. Simulated agents, each with its own
//! secp256k1 key and signed ENR, redeem one-time tokens through the API, then send reports with
//! rising counters, `concurrency` agents at a time, each agent's reports one after the other
//! (as a real agent delivers them). Report bodies are signed before the timed phase, so the
//! figures are the controller's, not the simulated agents' signing. Prints figures only.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use super::bench::percentile;
use anyhow::{Context, bail};
use contract::{
    report::{Figures, REPORT_VERSION, Report},
    signing::{SIGNATURE_HEADER, sign},
};
use controller::{app::Controller, config::ControllerConfig, keyring::Keyring};
use futures::{StreamExt, stream};
use k256::ecdsa::SigningKey;
use node::clock::now_ms;
use node::{
    crypto::generate_key,
    enrtree::NodeRecord,
    sql::{create_postgres_database, drop_postgres_database, test_server},
};
use serde_json::json;

/// The admin token of the benchmark's controller.
const ADMIN_TOKEN: &str = "bench-operator-token";

/// One simulated agent.
struct Agent {
    key: SigningKey,
    record: NodeRecord,
}

/// A report ready to send: its body and signature header.
struct Signed {
    body: Vec<u8>,
    signature: String,
}

/// What one agent's deliveries came to.
#[derive(Default)]
struct Outcome {
    latencies: Vec<Duration>,
    /// (HTTP status or 0 for a transport error, first answer body) of every non-202 answer.
    refused: Vec<(u16, String)>,
    /// Bytes of every answer body.
    answer_bytes: usize,
    /// Answers that carried a fleet hint.
    hints: usize,
}

/// Where the controller's database lives.
enum Place {
    Sqlite,
    Postgres(String),
}

pub(crate) async fn ingest(
    agents: usize,
    reports_per_agent: usize,
    backend: &str,
    concurrency: usize,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (database_url, place) = match backend {
        "sqlite" => {
            (format!("sqlite://{}", dir.path().join("controller.db").display()), Place::Sqlite)
        }
        "postgres" => {
            let url = create_postgres_database(&test_server(), "wakufleet_bench_ingest")
                .await
                .context("Postgres")?;
            (url.clone(), Place::Postgres(url))
        }
        other => bail!("unknown backend {other:?}: sqlite or postgres"),
    };
    let result =
        run(&dir, &database_url, backend, agents, reports_per_agent, concurrency.max(1)).await;
    if let Place::Postgres(url) = place {
        drop_postgres_database(&url).await.with_context(|| format!("dropping {url}"))?;
    }
    result
}

async fn run(
    dir: &tempfile::TempDir,
    database_url: &str,
    backend: &str,
    agents: usize,
    reports_per_agent: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, ADMIN_TOKEN)?;
    let config = ControllerConfig {
        listen: (Ipv4Addr::LOCALHOST, 0).into(),
        database_url: database_url.to_owned(),
        admin_token_file: Some(token_file),
        // Measure ingest: no timed passes during the run (accepted reports still wake the
        // loop; the passes are counted and printed).
        reconcile_interval_ms: 3_600_000,
        // Bodies are signed before the timed phase; a long run must not make them stale.
        max_skew_secs: 24 * 3600,
        // Keep every report, so the stored count checks that none was lost.
        reports_kept: i64::try_from((reports_per_agent + UNTIMED_ROUNDS as usize).max(100))
            .unwrap_or(i64::MAX),
        ..ControllerConfig::default()
    };
    let controller = Controller::start(config, Keyring::default(), Vec::new())
        .await
        .context("starting the controller")?;
    let base = format!("http://{}", controller.http_addr());
    let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let result = drive(
        &controller,
        &http,
        &base,
        database_url,
        backend,
        agents,
        reports_per_agent,
        concurrency,
    )
    .await;
    controller.shutdown().await;
    result
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    controller: &Controller,
    http: &reqwest::Client,
    base: &str,
    database_url: &str,
    backend: &str,
    agents: usize,
    reports_per_agent: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    println!(
        "ingest: {backend}, {agents} agents x {reports_per_agent} reports, concurrency {concurrency}"
    );
    let started = Instant::now();
    let fleet = (0..agents)
        .map(|i| {
            let key = generate_key();
            let ip = Ipv4Addr::from(0x0a00_0000_u32.wrapping_add(u32::try_from(i).unwrap_or(0)));
            let record = NodeRecord::sign(&key, 1, ip, 60_000, 9_000)?;
            Ok(Agent { key, record })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    println!("generated {agents} keys and signed ENRs in {:.2?}", started.elapsed());

    // Enrolment: one token per agent from the operators' API, redeemed by the agent.
    let started = Instant::now();
    let enrolled: Vec<anyhow::Result<()>> = stream::iter(&fleet)
        .map(|agent| enrol(http, base, agent))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let enrol_time = started.elapsed();
    let failed: Vec<_> = enrolled.into_iter().filter_map(Result::err).collect();
    if let Some(first) = failed.first() {
        bail!("{} of {agents} enrolments failed; first: {first:#}", failed.len());
    }
    println!(
        "enrolled {agents} agents (token + signed enrolment each) in {enrol_time:.2?}: {:.0} enrolments/s",
        agents as f64 / enrol_time.as_secs_f64()
    );

    // Agents echo the fleet hint's version (as `wakufleet agent` does), so a steady fleet's
    // answers carry no hint. Untimed rounds first, one report per agent each, a reconcile
    // pass after each, until no answer carries a hint. Not before the second round: the
    // first reports find the fleet empty (no hint to give) and make the nodes passing, which
    // changes the fleet every later answer describes. (Stopping after a first round without
    // hints had every timed answer carry the 59 KB hint of the fleet that then formed.)
    let mut versions: Vec<Option<String>> = vec![None; agents];
    let mut rounds = 0u64;
    for round in 1..=UNTIMED_ROUNDS {
        let answers = first_contact(http, base, &fleet, round, &versions, concurrency).await?;
        rounds = round;
        let hinted = answers.iter().filter(|v| v.is_some()).count();
        for (version, answer) in versions.iter_mut().zip(answers) {
            if answer.is_some() {
                *version = answer;
            }
        }
        if hinted == 0 && round > 1 {
            break;
        }
        controller.reconcile_now().await.context("reconcile pass between untimed rounds")?;
    }
    println!(
        "{rounds} untimed rounds (one report per agent each) until answers carried no fleet hint"
    );
    let first_timed = rounds + 1;

    // Pre-sign every timed report: signing would otherwise dominate.
    let started = Instant::now();
    let bodies = fleet
        .iter()
        .zip(&versions)
        .map(|(agent, version)| {
            (first_timed..first_timed + reports_per_agent as u64)
                .map(|counter| report(agent, counter, version.clone()))
                .collect()
        })
        .collect::<anyhow::Result<Vec<Vec<Signed>>>>()?;
    let total = agents * reports_per_agent;
    let mean_size = bodies.iter().flatten().map(|s| s.body.len()).sum::<usize>() / total.max(1);
    println!(
        "pre-signed {total} report bodies (~{mean_size} B each) in {:.2?} (not timed below)",
        started.elapsed()
    );

    let (passes_before, _) = reconcile_figures(&scrape(http, base).await?);
    let started = Instant::now();
    let outcomes: Vec<Outcome> = stream::iter(bodies)
        .map(|reports| deliver(http, base, reports))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let metrics = scrape(http, base).await?;
    let (passes, last_pass) = reconcile_figures(&metrics);
    let passes = passes.saturating_sub(passes_before);
    let batches = metric(&metrics, "wakufleet_report_batch_size_count");
    let batched = metric(&metrics, "wakufleet_report_batch_size_sum");

    let mut latencies: Vec<Duration> =
        outcomes.iter().flat_map(|o| o.latencies.iter().copied()).collect();
    latencies.sort();
    let refused: Vec<&(u16, String)> = outcomes.iter().flat_map(|o| &o.refused).collect();
    let accepted = total - refused.len();
    println!(
        "accepted {accepted}/{total} reports in {elapsed:.2?}: {:.0} reports/s",
        accepted as f64 / elapsed.as_secs_f64()
    );
    println!(
        "latency (request to answer): p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    let answer_bytes: usize = outcomes.iter().map(|o| o.answer_bytes).sum();
    let hints: usize = outcomes.iter().map(|o| o.hints).sum();
    println!(
        "answers: {} B on average, {hints} of {total} with a fleet hint",
        answer_bytes / total.max(1)
    );
    println!(
        "group commits (untimed rounds included): {batches:.0}, {:.1} reports each on average",
        batched / batches.max(1.0)
    );
    println!("non-202 answers: {}", refused.len());
    if let Some((status, body)) = refused.first() {
        println!("  first: {status} {body}");
    }
    println!(
        "reconcile passes during the run (woken by accepted reports): {passes}, the last took {last_pass:.2?}"
    );
    let stored = stored_reports(database_url).await? - (rounds * agents as u64) as i64;
    println!("reports stored: {stored} (expected {total}, beside the untimed ones)");
    // What operators wait for on a fleet of this size: the dashboard and a Prometheus scrape.
    let seeded = seed_shard_samples(database_url).await?;
    println!("seeded a day of shard samples ({seeded} rows) for the overview's coverage picture");
    let (dashboard, dashboard_bytes) = time_page(http, &format!("{base}/dashboard")).await?;
    let (metrics, metrics_bytes) = time_page(http, &format!("{base}/metrics")).await?;
    let node_url =
        fleet.first().map(|a| format!("{base}/dashboard/nodes/{}", a.record.node_id_hex()));
    if let Some(url) = node_url {
        let (page, bytes) = time_page(http, &url).await?;
        println!(
            "a node's page (its pictures over {} kept reports): p50 {:.2?} p99 {:.2?} ({} KiB)",
            reports_per_agent.min(100),
            percentile(&page, 0.5),
            percentile(&page, 0.99),
            bytes / 1024
        );
    }
    println!(
        "with {agents} nodes, {PAGE_LOADS} loads each: dashboard overview p50 {:.2?} p99 {:.2?} ({} KiB), /metrics p50 {:.2?} p99 {:.2?} ({} KiB)",
        percentile(&dashboard, 0.5),
        percentile(&dashboard, 0.99),
        dashboard_bytes / 1024,
        percentile(&metrics, 0.5),
        percentile(&metrics, 0.99),
        metrics_bytes / 1024,
    );
    if !refused.is_empty() || stored != total as i64 {
        bail!("{} reports refused, {stored} of {total} stored", refused.len());
    }
    Ok(())
}

/// Loads of each page timed after the run.
const PAGE_LOADS: usize = 20;

/// Loads `url` [`PAGE_LOADS`] times (logged in as an operator): sorted times, page size.
async fn time_page(http: &reqwest::Client, url: &str) -> anyhow::Result<(Vec<Duration>, usize)> {
    let mut times = Vec::with_capacity(PAGE_LOADS);
    let mut size = 0;
    for _ in 0..PAGE_LOADS {
        let started = Instant::now();
        let response = http.get(url).basic_auth("admin", Some(ADMIN_TOKEN)).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        times.push(started.elapsed());
        if !status.is_success() {
            bail!("{url}: {status}");
        }
        size = body.len();
    }
    times.sort();
    Ok((times, size))
}

async fn enrol(http: &reqwest::Client, base: &str, agent: &Agent) -> anyhow::Result<()> {
    let response = http
        .post(format!("{base}/api/v1/tokens"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "label": "bench", "roles": ["relay"] }))
        .send()
        .await?;
    let status = response.status();
    let answer: serde_json::Value = response.json().await?;
    let token = answer["token"]
        .as_str()
        .with_context(|| format!("token request answered {status}: {answer}"))?;
    let body =
        json!({ "token": token, "enr": agent.record.to_string(), "sentAt": now_ms() }).to_string();
    let response = http
        .post(format!("{base}/api/v1/enrol"))
        .header(SIGNATURE_HEADER, sign(&agent.key, body.as_bytes()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = response.status();
    if status != reqwest::StatusCode::CREATED {
        bail!("enrolment answered {status}: {}", response.text().await.unwrap_or_default());
    }
    Ok(())
}

/// A report like an agent's: a few figures, roles, shards, the node's ENR.
fn report(agent: &Agent, counter: u64, fleet_version: Option<String>) -> anyhow::Result<Signed> {
    let now = now_ms();
    let figures = Figures {
        peers_inbound: Some(20),
        peers_outbound: Some(10),
        relay_peers: Some(12),
        mesh_per_shard: [("/waku/2/rs/1/0".to_owned(), 6)].into(),
        fleet_share: Some(0.25),
        discv5_table: Some(150),
        messages_in_per_sec: Some(3.5),
        messages_out_per_sec: Some(0.5),
        ..Figures::default()
    };
    let report = Report {
        version: REPORT_VERSION,
        node_id: agent.record.node_id_hex(),
        counter,
        sent_at: now,
        measured_at: now,
        enr: agent.record.to_string(),
        services: vec!["relay".into()],
        shards: vec![0],
        cluster_id: Some(1),
        figures,
        fleet_version,
    };
    let body = serde_json::to_vec(&report)?;
    let signature = sign(&agent.key, &body);
    Ok(Signed { body, signature })
}

/// Untimed rounds at most before the timed one.
const UNTIMED_ROUNDS: u64 = 6;

/// One untimed report (`counter`) from every agent, echoing `versions`; the fleet version of
/// each answer that carried a hint.
async fn first_contact(
    http: &reqwest::Client,
    base: &str,
    fleet: &[Agent],
    counter: u64,
    versions: &[Option<String>],
    concurrency: usize,
) -> anyhow::Result<Vec<Option<String>>> {
    let url = format!("{base}/api/v1/reports");
    let answers: Vec<anyhow::Result<Option<String>>> = stream::iter(fleet.iter().zip(versions))
        .map(|(agent, version)| {
            let url = url.clone();
            async move {
                let response = post(http, &url, report(agent, counter, version.clone())?).await?;
                let status = response.status();
                let answer: serde_json::Value = response.json().await?;
                if status != reqwest::StatusCode::ACCEPTED {
                    bail!("untimed report {counter}: {status} {answer}");
                }
                Ok(answer["fleet"]["version"].as_str().map(str::to_owned))
            }
        })
        .buffered(concurrency)
        .collect()
        .await;
    answers.into_iter().collect()
}

/// Sends one agent's reports in counter order, each after the previous one's answer.
async fn deliver(http: &reqwest::Client, base: &str, reports: Vec<Signed>) -> Outcome {
    let mut outcome = Outcome::default();
    let url = format!("{base}/api/v1/reports");
    for signed in reports {
        let sent = Instant::now();
        match post(http, &url, signed).await {
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                outcome.latencies.push(sent.elapsed());
                outcome.answer_bytes += text.len();
                outcome.hints += usize::from(text.contains("\"fleet\":{"));
                if status != reqwest::StatusCode::ACCEPTED {
                    outcome.refused.push((status.as_u16(), text));
                }
            }
            Err(error) => outcome.refused.push((0, error.to_string())),
        }
    }
    outcome
}

/// The controller's `/metrics` text.
async fn scrape(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    Ok(http.get(format!("{base}/metrics")).send().await?.text().await?)
}

/// The sum of every sample of `name` (all its label sets) in a `/metrics` text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Reconcile passes so far (all results) and the last one's duration.
fn reconcile_figures(metrics: &str) -> (u64, Duration) {
    let passes = metric(metrics, "wakufleet_reconcile_passes_total") as u64;
    let last = metric(metrics, "wakufleet_reconcile_last_duration_seconds");
    (passes, Duration::try_from_secs_f64(last).unwrap_or_default())
}

/// Posts one signed report.
async fn post(
    http: &reqwest::Client,
    url: &str,
    signed: Signed,
) -> reqwest::Result<reqwest::Response> {
    http.post(url)
        .header(SIGNATURE_HEADER, signed.signature)
        .header("content-type", "application/json")
        .body(signed.body)
        .send()
        .await
}

/// A day of the publisher's shard samples (8 shards, one sample every five minutes), as a fleet that has
/// run a day has them: the overview draws the last day. Returns the rows written.
async fn seed_shard_samples(database_url: &str) -> anyhow::Result<usize> {
    use sqlx::Connection;
    let mut connection = sqlx::AnyConnection::connect(database_url).await?;
    let mut tx = connection.begin().await?;
    let now = now_ms();
    let mut rows = 0;
    for minute in (5..=1_440_i64).step_by(5) {
        for shard in 0..8_i64 {
            sqlx::query(
                "INSERT INTO shard_samples (taken_at, cluster_id, shard, passing) VALUES ($1, $2, $3, $4)",
            )
            .bind(now - minute * 60_000)
            .bind(1_i64)
            .bind(shard)
            .bind(100 + (minute + shard) % 30)
            .execute(&mut *tx)
            .await?;
            rows += 1;
        }
    }
    tx.commit().await?;
    Ok(rows)
}

async fn stored_reports(database_url: &str) -> anyhow::Result<i64> {
    use sqlx::{Connection, Row};
    let mut connection = sqlx::AnyConnection::connect(database_url).await?;
    let row = sqlx::query("SELECT COUNT(*) FROM reports").fetch_one(&mut connection).await?;
    Ok(row.try_get(0)?)
}
