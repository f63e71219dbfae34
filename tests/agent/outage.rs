//! The controller stops under report load: nothing is lost, everything arrives in order, the
//! outage is logged once.

use std::{sync::atomic::Ordering, time::Duration};

use crate::helpers::*;

async fn outage(mut ctl: ControllerFixture, down_for: Duration) {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let config = agent_config(dir.path(), &ctl.url(), "");
    let interval = config.controller.report_interval;
    let (agent, _key) = start_agent(config, &ctl.token().await).await;
    let id = node_id(&agent);
    ctl.wait_node(&id, Duration::from_secs(10), |n| n["lastCounter"].as_u64() >= Some(3)).await;

    ctl.stop().await;
    let stopped_at = node::clock::now_ms();
    // The outage itself: the controller is away this long.
    tokio::time::sleep(down_for).await;
    let queued = agent.metrics().reports_queued.load(Ordering::Relaxed);
    let expected = (down_for.as_millis() / interval.as_millis()) as u64;
    assert!(queued >= expected * 7 / 10, "queued {queued} of about {expected}");
    ctl.start(300).await;
    let restarted_at = node::clock::now_ms();

    // Drained: every queued report delivered.
    poll_until("the queue drained", Duration::from_secs(30), async || {
        agent.metrics().reports_queued.load(Ordering::Relaxed) == 0
    })
    .await;
    let metrics = agent.metrics().clone();
    agent.shutdown().await;
    let sent = metrics.reports_sent.load(Ordering::Relaxed);
    assert_eq!(metrics.reports_refused.load(Ordering::Relaxed), 0);
    assert_eq!(metrics.reports_merged.load(Ordering::Relaxed), 0, "within the bound");
    assert_eq!(metrics.outages.load(Ordering::Relaxed), 1);

    let reports = ctl.reports(&id).await;
    assert_eq!(reports.len() as u64, sent, "the controller has every report the agent sent");
    for pair in reports.windows(2) {
        assert!(pair[0].0 < pair[1].0, "counters rise: {pair:?}");
        assert!(pair[0].1 < pair[1].1, "measurements in order: {pair:?}");
    }
    // The outage is covered: measurements taken while the controller was down, sent later.
    let during: Vec<_> =
        reports.iter().filter(|r| r.1 > stopped_at && r.1 < restarted_at).collect();
    assert!(during.len() as u64 >= expected * 7 / 10, "{} of about {expected}", during.len());
    assert!(during.iter().all(|r| r.2 >= restarted_at), "delivered after the outage");
    // No gap longer than a few intervals anywhere: nothing lost.
    let largest_gap = reports.windows(2).map(|w| w[1].1 - w[0].1).max().unwrap();
    assert!(largest_gap < 5 * interval.as_millis() as i64, "gap of {largest_gap} ms");
    // Logged once, counted once.
    let lines = log_lines(&["controller unavailable", &ctl.url()]);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let back = log_lines(&["controller accepts reports again", &ctl.url()]);
    assert_eq!(back.len(), 1, "{back:#?}");
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_outage_of_3s_loses_nothing_on_sqlite() {
    outage(ControllerFixture::sqlite().await, Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_outage_of_3s_loses_nothing_on_postgres() {
    outage(ControllerFixture::postgres().await, Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_outage_of_30s_under_report_load_loses_nothing() {
    outage(ControllerFixture::sqlite().await, Duration::from_secs(30)).await;
}
