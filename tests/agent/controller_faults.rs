//! The real controller refusing: an expired or used enrolment token (the agent stops with the
//! reason: only an operator can fix it), no token at all (the start fails), a clock it finds
//! skewed (clear errors, the node keeps running, reports follow once fixed).

use std::{sync::atomic::Ordering, time::Duration};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_stops_the_agent_and_a_new_token_recovers_its_queue() {
    capture_logs();
    let ctl = ControllerFixture::sqlite().await;
    let expired = "wft_expired-agent-test-token";
    let state = ctl.controller.as_ref().unwrap().state();
    let past = node::clock::now_ms() - 60_000;
    state
        .db
        .create_token(expired, "old", &["boot".into()], &Default::default(), "test", past)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = agent_config(dir.path(), &ctl.url(), "");
    let (agent, key) = start_agent(config.clone(), expired).await;
    let id = node_id(&agent);

    // Waiting cannot fix an expired token: the agent says why once and stops (systemd then
    // shows it failed) instead of running for ever as if healthy.
    let reason = tokio::time::timeout(Duration::from_secs(10), agent.failed()).await.unwrap();
    assert!(reason.contains("enrolment token expired"), "{reason}");
    assert!(ctl.node(&id).await.is_none(), "not enrolled");
    let lines = log_lines(&["enrolment token expired", &ctl.url()]);
    assert_eq!(lines.len(), 1, "said once, clearly: {lines:#?}");
    assert!(agent.metrics().reports_queued.load(Ordering::Relaxed) >= 1, "measured first");
    agent.shutdown().await;

    // The operator hands out a new token and starts it again: enrolled, and what was measured
    // before arrives.
    let token_at = node::clock::now_ms();
    std::fs::write(dir.path().join("token"), ctl.token().await).unwrap();
    let agent = agent::Agent::start(config, key).await.unwrap();
    let node =
        ctl.wait_node(&id, Duration::from_secs(10), |n| n["lastCounter"].as_u64() > Some(3)).await;
    assert_eq!(node["label"], "agent-test");
    let reports = ctl.reports(&id).await;
    let (first_measured, first_sent) = (reports[0].1, reports[0].2);
    assert!(
        first_measured < token_at && first_sent >= token_at,
        "queued before enrolment, sent after: measured {first_measured}, sent {first_sent}, token at {token_at}"
    );

    // A token used already (this one, now redeemed) stops a second agent the same way.
    let other_dir = tempfile::tempdir().unwrap();
    let used = std::fs::read_to_string(dir.path().join("token")).unwrap();
    let (other, _) = start_agent(agent_config(other_dir.path(), &ctl.url(), ""), &used).await;
    let reason = tokio::time::timeout(Duration::from_secs(10), other.failed()).await.unwrap();
    assert!(reason.contains("already used"), "{reason}");
    other.shutdown().await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_to_read_fails_the_start_with_one_line() {
    let ctl = ControllerFixture::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let config = agent_config(dir.path(), &ctl.url(), "");
    // The token file the configuration names does not exist.
    let Err(error) = agent::Agent::start(config, node::crypto::generate_key()).await else {
        panic!("started without a token to enrol with");
    };
    let text = error.to_string();
    assert!(text.starts_with("cannot enrol: enrolment token file"), "{text}");
    assert!(text.contains(&dir.path().join("token").display().to_string()), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_is_a_clear_error_the_node_runs_and_reports_follow_once_fixed() {
    capture_logs();
    let mut ctl = ControllerFixture::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let config = agent_config(dir.path(), &ctl.url(), "");
    let (agent, _key) = start_agent(config, &ctl.token().await).await;
    let id = node_id(&agent);
    ctl.wait_node(&id, Duration::from_secs(10), |n| n["lastCounter"].as_u64() >= Some(2)).await;

    // The controller now finds every sentAt too far off (as with a skewed clock).
    let stopped_at = node::clock::now_ms();
    ctl.stop().await;
    ctl.start(-1).await;
    poll_until("the skew logged and 8 reports queued", Duration::from_secs(10), async || {
        !log_lines(&["check this host's clock", &ctl.url()]).is_empty()
            && agent.metrics().reports_queued.load(Ordering::Relaxed) >= 8
    })
    .await;
    let lines = log_lines(&["check this host's clock", &ctl.url()]);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(agent.supervisor().current().is_some(), "the node keeps running");
    let queued = agent.metrics().reports_queued.load(Ordering::Relaxed);
    assert!(queued >= 8, "kept, not dropped: {queued}");
    let before = ctl.node(&id).await.unwrap()["lastCounter"].as_u64().unwrap();

    // Clock fixed: the backlog is delivered in order.
    let fixed_at = node::clock::now_ms();
    ctl.stop().await;
    ctl.start(300).await;
    ctl.wait_node(&id, Duration::from_secs(10), |n| n["lastCounter"].as_u64() > Some(before + 8))
        .await;
    poll_until("the backlog drained", Duration::from_secs(10), async || {
        agent.metrics().reports_queued.load(Ordering::Relaxed) == 0
    })
    .await;
    let reports = ctl.reports(&id).await;
    assert!(reports.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1), "{reports:?}");
    let during = reports.iter().filter(|r| r.1 > stopped_at && r.1 < fixed_at).count();
    assert!(during as u64 >= queued, "the refused period arrives: {during} of {queued}");
    assert_eq!(agent.metrics().reports_refused.load(Ordering::Relaxed), 0);
    agent.shutdown().await;
}
