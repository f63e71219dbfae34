//! Confirms that nodes are where their records say: every interval the publishing controller
//! completes a libp2p handshake ([`node::probe::handshake`]) with each node at the TCP address
//! of its newest ENR, checking the peer id. A node is unreachable after
//! `failures_before_unreachable` failures in a row (one lost SYN does not drop it from a tree)
//! and reachable again after one success. Unreachable nodes are critical and never listed.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::StreamExt;
use node::{enrtree::NodeRecord, waku_enr::WakuEnr};
use serde::Deserialize;
use tokio::sync::watch;

use crate::{app::AppState, db::nodes::NodeRow};

/// How reachability is checked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReachabilityConfig {
    /// Off: nodes are never dialled (their `reachable` stays unknown, which never excludes).
    pub enabled: bool,
    /// Time between rounds.
    pub interval_ms: u64,
    /// Time one handshake may take.
    pub timeout_ms: u64,
    /// Failed rounds in a row before a node counts as unreachable.
    pub failures_before_unreachable: u32,
    /// Handshakes at once.
    pub concurrency: usize,
}

impl Default for ReachabilityConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 60_000,
            timeout_ms: 5_000,
            failures_before_unreachable: 2,
            concurrency: 16,
        }
    }
}

/// The outcome of probing one node.
#[derive(Debug)]
struct Outcome {
    node_id: String,
    label: String,
    result: Result<(), String>,
}

/// Probes one node at the first TCP address of its record.
async fn probe(node: NodeRow, timeout: Duration) -> Outcome {
    let result = async {
        let record: NodeRecord = node.enr.parse().map_err(|e| format!("stored ENR: {e}"))?;
        let waku = WakuEnr::decode(record.enr()).map_err(|e| format!("stored ENR: {e}"))?;
        let address = waku
            .dial_addresses()
            .into_iter()
            .find(|a| a.iter().any(|p| matches!(p, libp2p::multiaddr::Protocol::Tcp(_))))
            .ok_or_else(|| "the record advertises no TCP address".to_owned())?;
        node::probe::handshake(&address, waku.peer_id, timeout).await.map_err(|e| e.to_string())
    }
    .await;
    Outcome { node_id: node.node_id, label: node.label, result }
}

/// Runs rounds until `stopped`; only the holder of the publisher lease probes, so a fleet of
/// controllers dials each node once per interval.
pub async fn run(state: Arc<AppState>, mut stopped: watch::Receiver<bool>) {
    let config = state.config.reachability.clone();
    if !config.enabled {
        return;
    }
    let interval = Duration::from_millis(config.interval_ms.max(100));
    let timeout = Duration::from_millis(config.timeout_ms.max(100));
    let mut failures: HashMap<String, u32> = HashMap::new();
    // Not (yet) the publisher: look again after a reconcile pass, so a controller that just
    // took the lease (or just started) probes at once rather than an interval later.
    let standby = Duration::from_millis(state.config.reconcile_interval_ms.max(100)).min(interval);
    loop {
        let pause = if state.is_publisher() {
            if let Err(error) = round(&state, &config, timeout, &mut failures).await {
                tracing::warn!(target: "ctl::reachability", %error, "reachability round failed");
            }
            interval
        } else {
            standby
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
    }
}

async fn round(
    state: &AppState,
    config: &ReachabilityConfig,
    timeout: Duration,
    failures: &mut HashMap<String, u32>,
) -> Result<(), crate::db::DbError> {
    let nodes = state.db.nodes().await?;
    // Owned futures: a stream of futures borrowing `nodes` trips the spawn's lifetime checks.
    let probes = nodes.clone().into_iter().map(move |n| probe(n, timeout));
    let outcomes: Vec<Outcome> =
        futures::stream::iter(probes).buffer_unordered(config.concurrency.max(1)).collect().await;
    failures.retain(|id, _| nodes.iter().any(|n| &n.node_id == id));
    let mut changed = false;
    for outcome in outcomes {
        let Some(node) = nodes.iter().find(|n| n.node_id == outcome.node_id) else { continue };
        let verdict = match &outcome.result {
            Ok(()) => {
                failures.remove(&outcome.node_id);
                Some(true)
            }
            Err(error) => {
                let count = failures.entry(outcome.node_id.clone()).or_default();
                *count += 1;
                tracing::debug!(target: "ctl::reachability", node = %outcome.node_id, %error, failures = *count, "probe failed");
                (*count >= config.failures_before_unreachable.max(1)).then_some(false)
            }
        };
        let Some(reachable) = verdict else { continue };
        if node.reachable != Some(reachable) {
            match &outcome.result {
                Ok(()) => {
                    tracing::info!(target: "ctl::reachability", node = %outcome.node_id, label = %outcome.label, "reachable")
                }
                Err(error) => {
                    tracing::warn!(target: "ctl::reachability", node = %outcome.node_id, label = %outcome.label, %error, "unreachable")
                }
            }
            changed = true;
        }
        state.db.set_reachable(&outcome.node_id, reachable).await?;
    }
    if changed {
        state.wake.notify_one();
    }
    Ok(())
}
