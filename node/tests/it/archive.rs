//! The message archive against both backends: SQLite in a temporary file and a real Postgres
//! server (a fresh database per test; `WAKUFLEET_TEST_POSTGRES` overrides the server URL).

use crate::common;

use node::{
    message::{MessageHash, WakuMessage},
    store::archive::{Archive, ArchiveError, Backend, StoreQuery},
};

const TOPIC: &str = "/waku/2/rs/0/0";
const CONTENT: &str = "/wakufleet/1/store/proto";

/// What keeps a backend's storage while a test runs: a directory or a database (dropped after).
#[allow(dead_code)]
enum Keep {
    Dir(tempfile::TempDir),
    Database(node::sql::TestDatabase),
}

async fn backends() -> Vec<(Archive, Keep)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Archive::connect(&format!("sqlite://{}", dir.path().join("store.db").display()))
        .await
        .unwrap();
    assert_eq!(sqlite.backend(), Backend::Sqlite);
    let database = common::postgres_database().await;
    let postgres = Archive::connect(database.url()).await.unwrap();
    assert_eq!(postgres.backend(), Backend::Postgres);
    vec![(sqlite, Keep::Dir(dir)), (postgres, Keep::Database(database))]
}

fn message(i: i64, content: &str) -> WakuMessage {
    WakuMessage::new(
        content,
        format!("message {i}").into_bytes(),
        1_700_000_000_000_000_000 + i * 1_000,
    )
}

async fn fill(archive: &Archive, n: i64) -> Vec<MessageHash> {
    let mut hashes = Vec::new();
    for i in 0..n {
        let m = message(i, CONTENT);
        assert!(archive.insert(TOPIC, &m).await.unwrap());
        hashes.push(m.hash(TOPIC));
    }
    hashes
}

fn content_query(forward: bool, limit: usize) -> StoreQuery {
    StoreQuery {
        pubsub_topic: Some(TOPIC.into()),
        content_topics: vec![CONTENT.into()],
        forward,
        limit,
        include_data: true,
        ..StoreQuery::default()
    }
}

#[tokio::test]
async fn messages_are_stored_once_and_pages_follow_the_cursor() {
    for (archive, _dir) in backends().await {
        let hashes = fill(&archive, 50).await;
        assert!(!archive.insert(TOPIC, &message(0, CONTENT)).await.unwrap(), "stored once");
        archive.insert(TOPIC, &message(99, "/other/1/x/proto")).await.unwrap();
        assert_eq!(archive.count().await.unwrap(), 51);

        // Forward paging: every page oldest first, pages in order, the last without a cursor.
        let mut seen = Vec::new();
        let mut query = content_query(true, 7);
        loop {
            let page = archive.query(&query).await.unwrap();
            assert!(page.messages.len() <= 7);
            seen.extend(page.messages.iter().map(|m| m.hash));
            match page.cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => break,
            }
        }
        assert_eq!(seen, hashes, "{:?}", archive.backend());

        // Backward paging: newest page first, each page still oldest first.
        let mut pages = Vec::new();
        let mut query = content_query(false, 7);
        loop {
            let page = archive.query(&query).await.unwrap();
            let page_hashes: Vec<_> = page.messages.iter().map(|m| m.hash).collect();
            pages.push(page_hashes);
            match page.cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => break,
            }
        }
        assert_eq!(pages[0], hashes[43..].to_vec(), "the newest 7, in forward order");
        let rebuilt: Vec<_> = pages.into_iter().rev().flatten().collect();
        assert_eq!(rebuilt, hashes);

        // Messages come back intact.
        let first = archive.query(&content_query(true, 1)).await.unwrap();
        assert_eq!(first.messages[0].message.as_ref().unwrap(), &message(0, CONTENT));
        assert_eq!(first.messages[0].pubsub_topic, TOPIC);
    }
}

#[tokio::test]
async fn time_ranges_hash_lookups_and_limits() {
    for (archive, _dir) in backends().await {
        let hashes = fill(&archive, 30).await;
        let base = 1_700_000_000_000_000_000i64;
        // Start inclusive, end exclusive: messages 5..10.
        let query = StoreQuery {
            time_start: Some(base + 5_000),
            time_end: Some(base + 10_000),
            ..content_query(true, 100)
        };
        let page = archive.query(&query).await.unwrap();
        assert_eq!(
            page.messages.iter().map(|m| m.hash).collect::<Vec<_>>(),
            hashes[5..10].to_vec()
        );

        let lookup = StoreQuery {
            hashes: vec![hashes[3], hashes[17]],
            forward: true,
            ..StoreQuery::default()
        };
        let found = archive.query(&lookup).await.unwrap();
        assert_eq!(
            found.messages.iter().map(|m| m.hash).collect::<Vec<_>>(),
            vec![hashes[3], hashes[17]]
        );
        assert!(found.messages.iter().all(|m| m.message.is_none()), "no data unless asked");

        assert_eq!(
            archive.query(&content_query(true, 0)).await.unwrap().messages.len(),
            20,
            "default page"
        );
        fill_more(&archive, 30, 150).await;
        assert_eq!(
            archive.query(&content_query(true, 1000)).await.unwrap().messages.len(),
            100,
            "capped page"
        );
    }
}

async fn fill_more(archive: &Archive, from: i64, to: i64) {
    for i in from..to {
        archive.insert(TOPIC, &message(i, CONTENT)).await.unwrap();
    }
}

#[tokio::test]
async fn bad_queries_are_refused_and_retention_deletes_oldest_first() {
    for (archive, _dir) in backends().await {
        let hashes = fill(&archive, 20).await;
        let unknown = MessageHash([7; 32]);
        let with_cursor = StoreQuery { cursor: Some(unknown), ..content_query(true, 5) };
        assert!(matches!(archive.query(&with_cursor).await, Err(ArchiveError::CursorNotFound)));
        let inverted =
            StoreQuery { time_start: Some(10), time_end: Some(5), ..content_query(true, 5) };
        assert!(matches!(archive.query(&inverted).await, Err(ArchiveError::BadQuery(_))));
        let many = StoreQuery {
            content_topics: (0..101).map(|i| format!("/a/1/t{i}/p")).collect(),
            ..content_query(true, 5)
        };
        assert!(matches!(archive.query(&many).await, Err(ArchiveError::BadQuery(_))));
        let no_topic = StoreQuery { pubsub_topic: None, ..content_query(true, 5) };
        assert!(matches!(archive.query(&no_topic).await, Err(ArchiveError::BadQuery(_))));
        let mixed = StoreQuery { hashes: vec![hashes[0]], ..content_query(true, 5) };
        assert!(matches!(archive.query(&mixed).await, Err(ArchiveError::BadQuery(_))));

        // Retention by age, then by size.
        let base = 1_700_000_000_000_000_000i64;
        assert_eq!(archive.delete_older_than(base + 5_000).await.unwrap(), 5);
        assert_eq!(archive.count().await.unwrap(), 15);
        let one = prost::Message::encoded_len(&message(19, CONTENT)) as i64;
        archive.shrink_to(one * 4).await.unwrap();
        let left = archive.query(&content_query(true, 100)).await.unwrap();
        assert!(left.messages.len() <= 4 && !left.messages.is_empty());
        assert_eq!(left.messages.last().unwrap().hash, hashes[19], "the newest survive");
    }
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    assert!(matches!(Archive::connect("mysql://x").await, Err(ArchiveError::Url(_))));
}

#[tokio::test]
async fn batches_store_each_message_once() {
    for (archive, _dir) in backends().await {
        let batch: Vec<(String, WakuMessage)> =
            (0..10).map(|i| (TOPIC.to_owned(), message(i, CONTENT))).collect();
        assert_eq!(archive.insert_batch(&batch).await.unwrap(), 10);
        assert_eq!(archive.insert_batch(&batch[5..]).await.unwrap(), 0, "duplicates are skipped");
        assert_eq!(archive.count().await.unwrap(), 10);
    }
}
