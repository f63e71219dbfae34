//! `wakufleet bench store`: archive insert rate and query latency, and each query shape's
//! floor: the same rows fetched by a hand-written SQL statement on the same database in the
//! same run, so the archive's own cost is a ratio the machine's noise hardly moves. Prints
//! figures only.

use std::time::{Duration, Instant};

use super::bench::percentile;
use anyhow::{Context, bail};
use node::{
    message::{MessageHash, WakuMessage},
    sql::{create_postgres_database, drop_postgres_database, test_server},
    store::archive::{Archive, StoreQuery},
};

const TOPIC: &str = "/waku/2/rs/0/0";
/// Messages spread over this many content topics.
const CONTENT_TOPICS: usize = 16;

/// Where the benchmark's archive lives: a temporary directory (removed on drop) or a fresh
/// Postgres database (dropped at the end).
enum Place {
    Sqlite { dir: tempfile::TempDir },
    Postgres(String),
}

impl Place {
    /// A second connection pool to the archive's database, for the raw SQL.
    async fn raw(&self) -> anyhow::Result<sqlx::AnyPool> {
        let url = match self {
            Place::Sqlite { dir } => format!("sqlite://{}", dir.path().join("bench.db").display()),
            Place::Postgres(url) => url.clone(),
        };
        Ok(node::sql::connect(&url, 2).await?.0)
    }
}

async fn open(backend: &str) -> anyhow::Result<(Archive, Place)> {
    match backend {
        "sqlite" => {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            Ok((Archive::connect(&url).await?, Place::Sqlite { dir }))
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

pub(crate) async fn store(
    backend: &str,
    messages: usize,
    queries: usize,
    seed_sql: bool,
) -> anyhow::Result<()> {
    let (archive, place) = open(backend).await?;
    let result = run(&archive, &place, backend, messages, queries, seed_sql).await;
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

/// The archive's hash of message `i` when seeded by SQL: `i` as 32 big-endian bytes.
fn seeded_hash(i: usize) -> MessageHash {
    let mut hash = [0u8; 32];
    hash[24..].copy_from_slice(&(i as u64).to_be_bytes());
    MessageHash(hash)
}

/// Message `i`'s timestamp and content topic, however it was stored.
const BASE: i64 = 1_700_000_000_000_000_000;

fn content(i: usize) -> String {
    format!("/bench/1/topic-{}/proto", i % CONTENT_TOPICS)
}

/// Inserts messages `0..messages` as the node's writer does; their hashes.
async fn insert(
    archive: &Archive,
    backend: &str,
    messages: usize,
) -> anyhow::Result<Vec<MessageHash>> {
    let mut hashes: Vec<MessageHash> = Vec::with_capacity(messages);
    // As the node's archive writer does: batches of up to 256 messages per transaction.
    let started = Instant::now();
    let mut batch = Vec::with_capacity(256);
    for i in 0..messages {
        let mut payload = vec![0u8; 256];
        payload[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let message = WakuMessage::new(content(i), payload, BASE + i as i64 * 1_000_000);
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
    Ok(hashes)
}

/// Fills the archive's table with messages `0..messages` by SQL, a million per statement
/// (hashes from [`seeded_hash`], 256 zero bytes of payload), then refreshes the planner's
/// statistics; their hashes.
async fn seed(
    raw: &sqlx::AnyPool,
    backend: &str,
    messages: usize,
) -> anyhow::Result<Vec<MessageHash>> {
    let started = Instant::now();
    let sql = if backend == "postgres" {
        "INSERT INTO messages (message_hash, pubsub_topic, content_topic, timestamp, payload, version, meta, stored_at, size) \
         SELECT decode(lpad(to_hex(i), 64, '0'), 'hex'), $1, '/bench/1/topic-' || (i % 16) || '/proto', $2 + i * 1000000, \
         decode(repeat('00', 256), 'hex'), 0, NULL, 0, 256 FROM generate_series(CAST($3 AS BIGINT), CAST($4 AS BIGINT)) AS i"
    } else {
        "WITH RECURSIVE n(i) AS (SELECT $3 UNION ALL SELECT i + 1 FROM n WHERE i < $4) \
         INSERT INTO messages (message_hash, pubsub_topic, content_topic, timestamp, payload, version, meta, stored_at, size) \
         SELECT unhex(printf('%064x', i)), $1, '/bench/1/topic-' || (i % 16) || '/proto', $2 + i * 1000000, \
         zeroblob(256), 0, NULL, 0, 256 FROM n"
    };
    const STEP: usize = 1_000_000;
    for first in (0..messages).step_by(STEP) {
        let last = (first + STEP).min(messages) - 1;
        sqlx::query(sql)
            .bind(TOPIC)
            .bind(BASE)
            .bind(first as i64)
            .bind(last as i64)
            .execute(raw)
            .await
            .context("seeding by SQL")?;
        println!("  {} seeded ({:.2?})", last + 1, started.elapsed());
    }
    sqlx::query("ANALYZE").execute(raw).await?;
    println!("{backend}: seeded {messages} messages by SQL in {:.2?}", started.elapsed());
    Ok((0..messages).map(seeded_hash).collect())
}

/// The columns a store answer carries, as both the archive and the floor fetch them.
const COLUMNS: &str =
    "message_hash, pubsub_topic, content_topic, timestamp, payload, version, meta";

/// Times `queries` one after the other.
async fn timed_raw(
    raw: &sqlx::AnyPool,
    queries: impl Iterator<Item = (String, Vec<RawArg>)>,
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::new();
    for (sql, args) in queries {
        let t = Instant::now();
        let mut statement = sqlx::query(sqlx::AssertSqlSafe(sql));
        for arg in args {
            statement = match arg {
                RawArg::Text(text) => statement.bind(text),
                RawArg::Int(int) => statement.bind(int),
                RawArg::Blob(blob) => statement.bind(blob),
            };
        }
        let rows = statement.fetch_all(raw).await?;
        std::hint::black_box(rows);
        times.push(t.elapsed());
    }
    Ok(times)
}

enum RawArg {
    Text(String),
    Int(i64),
    Blob(Vec<u8>),
}

async fn run(
    archive: &Archive,
    place: &Place,
    backend: &str,
    messages: usize,
    queries: usize,
    seed_sql: bool,
) -> anyhow::Result<()> {
    let raw = place.raw().await?;
    let hashes = if seed_sql {
        seed(&raw, backend, messages).await?
    } else {
        insert(archive, backend, messages).await?
    };
    let span = messages as i64 * 1_000_000;
    let page = |content_topic: String| StoreQuery {
        pubsub_topic: Some(TOPIC.into()),
        content_topics: vec![content_topic],
        forward: true,
        limit: 20,
        include_data: true,
        ..StoreQuery::default()
    };
    let range_of = |q: usize| {
        let start = BASE + (q as i64 * 7919 % messages.max(1) as i64) * 1_000_000;
        (start, start + span / 10)
    };
    let ranges = (0..queries).map(|q| {
        let (start, end) = range_of(q);
        StoreQuery { time_start: Some(start), time_end: Some(end), ..page(content(q)) }
    });
    let raw_ranges = (0..queries).map(|q| {
        let (start, end) = range_of(q);
        let sql = format!(
            "SELECT {COLUMNS} FROM messages WHERE pubsub_topic = $1 AND content_topic = $2 AND timestamp >= $3 AND timestamp < $4 ORDER BY timestamp, message_hash LIMIT 20"
        );
        let args =
            vec![RawArg::Text(TOPIC.into()), RawArg::Text(content(q)), RawArg::Int(start), RawArg::Int(end)];
        (sql, args)
    });
    let lookup_of = |q: usize| hashes[q * 104_729 % hashes.len()];
    let lookups = (0..queries).map(|q| StoreQuery {
        hashes: vec![lookup_of(q)],
        include_data: true,
        ..StoreQuery::default()
    });
    let raw_lookups = (0..queries).map(|q| {
        let sql = format!("SELECT {COLUMNS} FROM messages WHERE message_hash = $1");
        (sql, vec![RawArg::Blob(lookup_of(q).0.to_vec())])
    });
    // A deep page: the cursor sits 10,000 messages into one content topic.
    let deep_index = (10_000 * CONTENT_TOPICS).min(hashes.len().saturating_sub(1));
    let deep = (0..queries)
        .map(|_| StoreQuery { cursor: Some(hashes[deep_index]), ..page(content(deep_index)) });
    // The floor knows the cursor's timestamp; the archive looks it up by the hash first.
    let raw_deep = (0..queries).map(|_| {
        let sql = format!(
            "SELECT {COLUMNS} FROM messages WHERE pubsub_topic = $1 AND content_topic = $2 AND (timestamp, message_hash) > ($3, $4) ORDER BY timestamp, message_hash LIMIT 20"
        );
        let args = vec![
            RawArg::Text(TOPIC.into()),
            RawArg::Text(content(deep_index)),
            RawArg::Int(BASE + deep_index as i64 * 1_000_000),
            RawArg::Blob(hashes[deep_index].0.to_vec()),
        ];
        (sql, args)
    });
    let shapes = [
        (
            "content topic + time range, page 20",
            timed(archive, ranges).await?,
            timed_raw(&raw, raw_ranges).await?,
        ),
        ("hash lookup", timed(archive, lookups).await?, timed_raw(&raw, raw_lookups).await?),
        (
            "deep page (cursor after 10,000), page 20",
            timed(archive, deep).await?,
            timed_raw(&raw, raw_deep).await?,
        ),
    ];
    for (name, mut times, mut floor) in shapes {
        times.sort();
        floor.sort();
        let (p50, floor_p50) = (percentile(&times, 0.5), percentile(&floor, 0.5));
        println!(
            "{backend}: {name}: p50 {p50:.2?}, p99 {:.2?}; raw SQL p50 {floor_p50:.2?}, p99 {:.2?}; {:.2}x the floor",
            percentile(&times, 0.99),
            percentile(&floor, 0.99),
            p50.as_secs_f64() / floor_p50.as_secs_f64().max(1e-9)
        );
    }
    Ok(())
}
