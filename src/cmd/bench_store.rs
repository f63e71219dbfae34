//! `wakufleet bench store`: archive insert rate and query latency. Prints figures only.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use node::{
    message::{MessageHash, WakuMessage},
    store::archive::{Archive, StoreQuery, create_postgres_database},
};

const TOPIC: &str = "/waku/2/rs/0/0";
/// Messages spread over this many content topics.
const CONTENT_TOPICS: usize = 16;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted
        .get(((sorted.len().saturating_sub(1)) as f64 * p).round() as usize)
        .copied()
        .unwrap_or_default()
}

async fn open(backend: &str) -> anyhow::Result<(Archive, Option<tempfile::TempDir>)> {
    match backend {
        "sqlite" => {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            Ok((Archive::connect(&url).await?, Some(dir)))
        }
        "postgres" => {
            let server = std::env::var("WAKUFLEET_BENCH_POSTGRES")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
            let url =
                create_postgres_database(&server, "wakufleet_bench").await.context("Postgres")?;
            println!("postgres database {url} (drop it when done)");
            Ok((Archive::connect(&url).await?, None))
        }
        other => bail!("unknown backend {other:?}: sqlite or postgres"),
    }
}

pub(crate) async fn store(backend: &str, messages: usize, queries: usize) -> anyhow::Result<()> {
    let (archive, _dir) = open(backend).await?;
    let base = 1_700_000_000_000_000_000i64;
    let content = |i: usize| format!("/bench/1/topic-{}/proto", i % CONTENT_TOPICS);
    let mut hashes: Vec<MessageHash> = Vec::with_capacity(messages);
    // As the node's archive writer does: batches of up to 256 messages per transaction.
    let started = Instant::now();
    let mut batch = Vec::with_capacity(256);
    for i in 0..messages {
        let mut payload = vec![0u8; 256];
        payload[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let message = WakuMessage::new(content(i), payload, base + i as i64 * 1_000_000);
        hashes.push(message.hash(TOPIC));
        batch.push((TOPIC.to_owned(), message));
        if batch.len() == 256 || i + 1 == messages {
            archive.insert_batch(&batch).await?;
            batch.clear();
        }
        if i > 0 && i % 100_000 == 0 {
            println!("  {i} inserted ({:.0}/s)", i as f64 / started.elapsed().as_secs_f64());
        }
    }
    let insert = started.elapsed();
    println!(
        "{backend}: inserted {messages} messages (256-byte payloads, batches of 256) in {insert:.2?}: {:.0} inserts/s",
        messages as f64 / insert.as_secs_f64()
    );

    let span = messages as i64 * 1_000_000;
    let mut shapes: Vec<(&str, Vec<Duration>)> = Vec::new();
    let mut times = Vec::new();
    for q in 0..queries {
        let start = base + (q as i64 * 7919 % messages.max(1) as i64) * 1_000_000;
        let query = StoreQuery {
            pubsub_topic: Some(TOPIC.into()),
            content_topics: vec![content(q)],
            time_start: Some(start),
            time_end: Some(start + span / 10),
            forward: true,
            limit: 20,
            include_data: true,
            ..StoreQuery::default()
        };
        let t = Instant::now();
        archive.query(&query).await?;
        times.push(t.elapsed());
    }
    shapes.push(("content topic + time range, page 20", times));
    let mut times = Vec::new();
    for q in 0..queries {
        let query = StoreQuery {
            hashes: vec![hashes[q * 104_729 % hashes.len()]],
            include_data: true,
            ..StoreQuery::default()
        };
        let t = Instant::now();
        archive.query(&query).await?;
        times.push(t.elapsed());
    }
    shapes.push(("hash lookup", times));
    // A deep page: the cursor sits 10,000 messages into one content topic.
    let deep_index = (10_000 * CONTENT_TOPICS).min(hashes.len().saturating_sub(1));
    let mut times = Vec::new();
    for _ in 0..queries {
        let query = StoreQuery {
            pubsub_topic: Some(TOPIC.into()),
            content_topics: vec![content(deep_index)],
            cursor: Some(hashes[deep_index]),
            forward: true,
            limit: 20,
            include_data: true,
            ..StoreQuery::default()
        };
        let t = Instant::now();
        archive.query(&query).await?;
        times.push(t.elapsed());
    }
    shapes.push(("deep page (cursor after 10,000), page 20", times));
    for (name, mut times) in shapes {
        times.sort();
        println!(
            "{backend}: {name}: p50 {:.2?}, p99 {:.2?}",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    }
    Ok(())
}
