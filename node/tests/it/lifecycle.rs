//! A node that stops takes its helper tasks with it: the archive writer, the retention task and
//! the REST API's message cache. An agent restarts its node many times over its life; a task
//! left behind per restart would be a slow leak.

use std::time::{Duration, Instant};

use node::{
    config::{NodeConfig, Retention},
    running::start,
};

async fn run_once(dir: &std::path::Path, i: usize) {
    let config = NodeConfig {
        store_url: Some(format!("sqlite://{}", dir.join(format!("store-{i}.db")).display())),
        store_retention: Some(Retention::Time(Duration::from_secs(3600))),
        ..NodeConfig::loopback()
    };
    let (handle, task) = start(config).await.unwrap();
    let router = node::rest::router(handle.clone(), node::rest::RestSettings::new(1 << 20));
    handle.shutdown().await;
    task.await.unwrap();
    drop(router);
    drop(handle);
}

async fn settle(limit: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_leaves_no_tasks_behind() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = tokio::runtime::Handle::current().metrics();
    // A first cycle, so that anything spawned once per process is in the baseline.
    run_once(dir.path(), 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = metrics.num_alive_tasks();
    for i in 1..=5 {
        run_once(dir.path(), i).await;
    }
    let settled = settle(Duration::from_secs(10), || metrics.num_alive_tasks() <= baseline).await;
    assert!(
        settled,
        "{} tasks alive after five stopped nodes, {baseline} before",
        metrics.num_alive_tasks()
    );
}
