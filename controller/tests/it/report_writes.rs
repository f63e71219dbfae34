//! The report writer's group commit (`Db::accept_reports`) on SQLite and on a real Postgres:
//! the two backends write a batch differently (four statements in a transaction, one
//! statement), and must agree on what a batch leaves behind.

use controller::{
    db::{
        Db,
        nodes::{Membership, ReportUpdate},
    },
    membership::Ceiling,
};
use sqlx::Row;

struct Sent {
    counter: u64,
    measured_at: i64,
    enr: &'static str,
    enr_seq: u64,
}

fn update<'a>(sent: &Sent, body: &'a str, services: &'a [String]) -> ReportUpdate<'a> {
    ReportUpdate {
        counter: sent.counter,
        sent_at: sent.measured_at + 5,
        measured_at: sent.measured_at,
        enr: sent.enr,
        enr_seq: sent.enr_seq,
        services,
        shards: &[0, 3],
        cluster_id: Some(16),
        body,
    }
}

/// One batch of `(node, report)`; each body is `{"n": counter}`.
async fn write(db: &Db, batch: &[(&str, Sent)], keep: i64) -> Vec<bool> {
    let services = vec!["relay".to_owned()];
    let bodies: Vec<String> =
        batch.iter().map(|(_, sent)| format!("{{\"n\":{}}}", sent.counter)).collect();
    let updates: Vec<(&str, ReportUpdate<'_>)> = batch
        .iter()
        .zip(&bodies)
        .map(|((node, sent), body)| (*node, update(sent, body, &services)))
        .collect();
    db.accept_reports(&updates, keep).await.unwrap()
}

/// The counters of a node's kept reports, oldest first (read over a connection of its own).
async fn kept(url: &str, node: &str) -> Vec<i64> {
    let (pool, _) = node::sql::connect(url, 1).await.unwrap();
    let rows = sqlx::query("SELECT counter FROM reports WHERE node_id = $1 ORDER BY counter")
        .bind(node)
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows.iter().map(|r| r.get::<i64, _>(0)).collect()
}

fn sent(counter: u64, measured_at: i64) -> Sent {
    Sent { counter, measured_at, enr: "enr:-first", enr_seq: 1 }
}

async fn scenario(url: &str) {
    let db = Db::connect(url).await.unwrap();
    let ceiling = Ceiling::default();
    for node in ["node-a", "node-b"] {
        let roles = vec!["boot".to_owned()];
        let membership = Membership { label: node, roles: &roles, ceiling: &ceiling };
        db.enrol_node(node, "02ab", &membership, "enr:-first", 1).await.unwrap();
    }

    // A batch of both nodes, and an unknown one: the two are accepted.
    let accepted = write(
        &db,
        &[("node-a", sent(1, 1_000)), ("ghost", sent(1, 1_000)), ("node-b", sent(1, 1_000))],
        3,
    )
    .await;
    assert_eq!(accepted, [true, false, true]);
    // A replay (same counter) and a lower counter: refused, nothing changed.
    assert_eq!(
        write(&db, &[("node-a", sent(1, 2_000)), ("node-b", sent(0, 2_000))], 3).await,
        [false, false]
    );
    let a = db.node("node-a").await.unwrap().unwrap();
    assert_eq!((a.last_counter, a.last_measured_at), (1, Some(1_000)));
    assert_eq!(a.last_report, Some(serde_json::json!({ "n": 1 })));
    assert_eq!(a.services, ["relay"]);
    assert_eq!((a.shards.as_slice(), a.cluster_id), (&[0u16, 3][..], Some(16)));

    // Each node keeps its `keep` newest reports.
    for counter in 2..=6 {
        let measured = 1_000 * counter as i64;
        assert_eq!(write(&db, &[("node-a", sent(counter, measured))], 3).await, [true]);
    }
    assert_eq!(kept(url, "node-a").await, [4, 5, 6]);
    assert_eq!(kept(url, "node-b").await, [1], "another node's reports are not trimmed");

    // A late report (measured before the stored one): kept in the history, but the node's
    // current state stays the fresher one.
    assert_eq!(write(&db, &[("node-a", sent(7, 3_500))], 3).await, [true]);
    let a = db.node("node-a").await.unwrap().unwrap();
    assert_eq!((a.last_counter, a.last_measured_at), (7, Some(6_000)));
    assert_eq!(a.last_report, Some(serde_json::json!({ "n": 6 })));
    assert_eq!(kept(url, "node-a").await, [5, 6, 7]);

    // A newer record: stored, remembered once, and its reachability unknown again.
    db.set_reachable("node-a", 1, true).await.unwrap();
    assert_eq!(db.node("node-a").await.unwrap().unwrap().reachable, Some(true));
    let newer = Sent { counter: 8, measured_at: 8_000, enr: "enr:-second", enr_seq: 2 };
    assert_eq!(write(&db, &[("node-a", newer)], 3).await, [true]);
    let a = db.node("node-a").await.unwrap().unwrap();
    assert_eq!((a.enr.as_str(), a.enr_seq, a.reachable), ("enr:-second", 2, None));
    let again = Sent { counter: 9, measured_at: 9_000, enr: "enr:-second", enr_seq: 2 };
    assert_eq!(write(&db, &[("node-a", again)], 3).await, [true]);
    let seqs: Vec<u64> =
        db.enr_history("node-a").await.unwrap().into_iter().map(|(seq, _, _)| seq).collect();
    assert_eq!(seqs, [1, 2]);

    // Keeping none: the report still moves the node, and no report row stays.
    assert_eq!(write(&db, &[("node-b", sent(2, 2_000))], 0).await, [true]);
    assert_eq!(db.node("node-b").await.unwrap().unwrap().last_counter, 2);
    assert!(kept(url, "node-b").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_batches_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(&format!("sqlite://{}", dir.path().join("reports.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_batches_on_postgres() {
    let database = node::sql::TestDatabase::create().await.unwrap();
    scenario(database.url()).await;
}
