//! `wakufleet bench store`: archive insert rate and query latency. Prints figures only.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use node::{
    message::{MessageHash, WakuMessage},
    sql::{create_postgres_database, drop_postgres_database, test_server},
    store::archive::{Archive, StoreQuery},
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

/// Where the benchmark's archive lives: a temporary directory (removed on drop) or a fresh
/// Postgres database (dropped at the end).
enum Place {
    Sqlite { _dir: tempfile::TempDir },
    Postgres(String),
}

async fn open(backend: &str) -> anyhow::Result<(Archive, Place)> {
    match backend {
        "sqlite" => {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            Ok((Archive::connect(&url).await?, Place::Sqlite { _dir: dir }))
        }
        "postgres" => {
            let url = create_postgres_database(&test_server(), "wakufleet_bench")
                .await
                .context("Postgres")?;
            Ok((Archive::connect(&url).await?, Place::Postgres(url)))
        }
        other => bail!("unknown backend {other:?}: sqlite or postgres"),
    }
}

pub(crate) async fn store(backend: &str, messages: usize, queries: usize) -> anyhow::Result<()> {
    let (archive, place) = open(backend).await?;
    let result = run(&archive, backend, messages, queries).await;
    drop(archive);
    if let Place::Postgres(url) = place {
        drop_postgres_database(&url).await.with_context(|| format!("dropping {url}"))?;
    }
    result
}

/// Times `queries` one after the other.
async fn timed(
    archive: &Archive,
    queries: impl Iterator<Item = StoreQuery>,
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::new();
    for query in queries {
        let t = Instant::now();
        archive.query(&query).await?;
        times.push(t.elapsed());
    }
    Ok(times)
}

async fn run(
    archive: &Archive,
    backend: &str,
    messages: usize,
    queries: usize,
) -> anyhow::Result<()> {
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
    let page = |content_topic: String| StoreQuery {
        pubsub_topic: Some(TOPIC.into()),
        content_topics: vec![content_topic],
        forward: true,
        limit: 20,
        include_data: true,
        ..StoreQuery::default()
    };
    let ranges = (0..queries).map(|q| {
        let start = base + (q as i64 * 7919 % messages.max(1) as i64) * 1_000_000;
        StoreQuery {
            time_start: Some(start),
            time_end: Some(start + span / 10),
            ..page(content(q))
        }
    });
    let lookups = (0..queries).map(|q| StoreQuery {
        hashes: vec![hashes[q * 104_729 % hashes.len()]],
        include_data: true,
        ..StoreQuery::default()
    });
    // A deep page: the cursor sits 10,000 messages into one content topic.
    let deep_index = (10_000 * CONTENT_TOPICS).min(hashes.len().saturating_sub(1));
    let deep = (0..queries)
        .map(|_| StoreQuery { cursor: Some(hashes[deep_index]), ..page(content(deep_index)) });
    let shapes = [
        ("content topic + time range, page 20", timed(archive, ranges).await?),
        ("hash lookup", timed(archive, lookups).await?),
        ("deep page (cursor after 10,000), page 20", timed(archive, deep).await?),
    ];
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
