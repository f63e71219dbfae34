//! Confirms that nodes are where their records say: every interval the publishing controller
//! completes a libp2p handshake ([`node::probe::handshake`]) with each node at **every**
//! address its newest ENR advertises — `ip`/`tcp`, `ip6`/`tcp6` and each `multiaddrs` entry,
//! `/ws` and `/wss` included — checking the peer id. A record is only as good as its worst
//! address: clients dial whichever they speak (js-waku only WebSocket), so one address that
//! fails, or that cannot be probed, fails the node.
//!
//! A node is unreachable after `failures_before_unreachable` failed rounds in a row (one lost
//! SYN does not drop it from a tree) and reachable again after one success. Unreachable nodes
//! are critical and never listed; while reachability is on, neither is a node whose current
//! record has not passed a probe yet (a new node, or a new ENR seq). Those are probed within a
//! reconcile interval rather than waiting for the next full round.

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
    /// PEM certificates trusted for `/wss` besides the web PKI roots (a fleet's private CA).
    pub tls_trust_file: Option<std::path::PathBuf>,
}

impl Default for ReachabilityConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 60_000,
            timeout_ms: 5_000,
            failures_before_unreachable: 2,
            concurrency: 16,
            tls_trust_file: None,
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

/// Probes one node at every address of its record.
async fn probe(node: NodeRow, timeout: Duration, trust: Arc<Vec<Vec<u8>>>) -> Outcome {
    let result = async {
        let record: NodeRecord = node.enr.parse().map_err(|e| format!("stored ENR: {e}"))?;
        let waku = WakuEnr::decode(record.enr()).map_err(|e| format!("stored ENR: {e}"))?;
        let addresses = waku.dial_addresses();
        if addresses.is_empty() {
            return Err("the record advertises no address".to_owned());
        }
        for address in &addresses {
            node::probe::handshake(address, waku.peer_id, timeout, &trust)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
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
    let trust = Arc::new(match &config.tls_trust_file {
        Some(path) => match std::fs::read(path) {
            Ok(pem) => vec![pem],
            Err(error) => {
                // `controller --check` and start-up read it first; this is a file gone since.
                tracing::error!(target: "ctl::reachability", path = %path.display(), %error, "cannot read reachability.tls-trust-file: /wss probes trust the web PKI only");
                Vec::new()
            }
        },
        None => Vec::new(),
    });
    let mut failures: HashMap<String, u32> = HashMap::new();
    // Between full rounds, nodes whose current record is unproven are probed every reconcile
    // interval, so a new node or record is listed within seconds, not an interval later. A
    // controller that just took the lease (or just started) begins with a full round.
    let tick = Duration::from_millis(state.config.reconcile_interval_ms.max(100)).min(interval);
    let mut last_full: Option<std::time::Instant> = None;
    loop {
        if state.is_publisher() {
            let full = last_full.is_none_or(|at| at.elapsed() >= interval);
            if full {
                last_full = Some(std::time::Instant::now());
            }
            let probes = Probes { full, timeout, trust: trust.clone() };
            if let Err(error) = round(&state, &config, &probes, &mut failures).await {
                tracing::warn!(target: "ctl::reachability", %error, "reachability round failed");
            }
        } else {
            last_full = None;
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
    }
}

/// What one round probes, and how.
struct Probes {
    /// Every node; otherwise only those whose reachability is unknown.
    full: bool,
    timeout: Duration,
    trust: Arc<Vec<Vec<u8>>>,
}

async fn round(
    state: &AppState,
    config: &ReachabilityConfig,
    probes: &Probes,
    failures: &mut HashMap<String, u32>,
) -> Result<(), crate::db::DbError> {
    let nodes = state.db.nodes().await?;
    let due: Vec<NodeRow> =
        nodes.iter().filter(|n| probes.full || n.reachable.is_none()).cloned().collect();
    if due.is_empty() {
        return Ok(());
    }
    // Owned futures: a stream of futures borrowing `nodes` trips the spawn's lifetime checks.
    let (timeout, trust) = (probes.timeout, probes.trust.clone());
    let probes = due.into_iter().map(move |n| probe(n, timeout, trust.clone()));
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
        state.db.set_reachable(&outcome.node_id, node.enr_seq, reachable).await?;
    }
    if changed {
        state.wake.notify_one();
    }
    Ok(())
}
