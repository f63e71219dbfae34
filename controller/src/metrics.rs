//! The controller's Prometheus metrics (`GET /metrics`). Counters of what this instance did
//! live in [`ControllerMetrics`]; the fleet's state (node health, shard coverage, trees) is a
//! snapshot taken at the end of every reconcile pass from what the pass read, so a scrape costs
//! no database query (`/metrics` may be open to anyone, and SQLite has one writer). Every
//! controller runs the passes, so each behind a load balancer reports the same fleet, at most
//! one pass old (`wakufleet_fleet_state_age_seconds`).
//!
//! Labels are bounded: node labels by the fleet's size, trees by the operators' definitions,
//! routes by the router (unmatched paths share one label).

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use prometheus::{
    Encoder, Gauge, GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::{
    app::AppState,
    db::{DbError, trees::VersionState},
    health::Health,
};

/// Versions read per tree for a scrape.
const RECENT_VERSIONS: i64 = 20;

/// What this controller instance counts.
pub struct ControllerMetrics {
    registry: Registry,
    api_requests: IntCounterVec,
    publications: IntCounterVec,
    reconcile_passes: IntCounterVec,
    reconcile_seconds: Gauge,
    lease_held: IntGauge,
    report_batches: prometheus::Histogram,
    /// The fleet's gauges as of the last pass, and when they were taken.
    fleet: std::sync::Mutex<Option<(Instant, Vec<prometheus::proto::MetricFamily>)>>,
}

impl std::fmt::Debug for ControllerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerMetrics").finish_non_exhaustive()
    }
}

impl ControllerMetrics {
    /// Registers the counters.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let api_requests = IntCounterVec::new(
            Opts::new("wakufleet_api_requests_total", "HTTP API requests by route and status"),
            &["route", "status"],
        )?;
        let publications = IntCounterVec::new(
            Opts::new(
                "wakufleet_publications_total",
                "Change sets applied to external publishers, by publisher and result",
            ),
            &["publisher", "result"],
        )?;
        let reconcile_passes = IntCounterVec::new(
            Opts::new("wakufleet_reconcile_passes_total", "Reconcile passes by result"),
            &["result"],
        )?;
        let reconcile_seconds = Gauge::new(
            "wakufleet_reconcile_last_duration_seconds",
            "Duration of the last reconcile pass",
        )?;
        let lease_held = IntGauge::new(
            "wakufleet_publisher_lease_held",
            "1 while this controller holds the publisher lease",
        )?;
        registry.register(Box::new(api_requests.clone()))?;
        registry.register(Box::new(publications.clone()))?;
        registry.register(Box::new(reconcile_passes.clone()))?;
        registry.register(Box::new(reconcile_seconds.clone()))?;
        let report_batches = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new(
                "wakufleet_report_batch_size",
                "Reports checked and written per group commit",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        )?;
        registry.register(Box::new(lease_held.clone()))?;
        registry.register(Box::new(report_batches.clone()))?;
        for result in ["ok", "error"] {
            reconcile_passes.with_label_values(&[result]);
        }
        Ok(Self {
            registry,
            api_requests,
            publications,
            reconcile_passes,
            reconcile_seconds,
            lease_held,
            report_batches,
            fleet: std::sync::Mutex::new(None),
        })
    }

    /// Notes one group commit of `reports` reports.
    pub fn observe_report_batch(&self, reports: usize) {
        if reports > 0 {
            self.report_batches.observe(reports as f64);
        }
    }

    /// Starts `publisher`'s counters at zero, so `rate()` and alerts see it before its first
    /// change set.
    pub fn register_publisher(&self, publisher: &str) {
        for result in ["ok", "error"] {
            self.publications.with_label_values(&[publisher, result]);
        }
    }

    /// Counts one application of a change set.
    pub fn publication(&self, publisher: &str, ok: bool) {
        self.publications.with_label_values(&[publisher, if ok { "ok" } else { "error" }]).inc();
    }

    /// Records a reconcile pass.
    pub fn reconcile_pass(&self, took: Duration, ok: bool) {
        self.reconcile_passes.with_label_values(&[if ok { "ok" } else { "error" }]).inc();
        self.reconcile_seconds.set(took.as_secs_f64());
    }

    /// Replaces the fleet snapshot with the nodes and trees a reconcile pass just read.
    pub async fn refresh_fleet(
        &self,
        state: &AppState,
        nodes: &[crate::db::nodes::NodeRow],
        trees: &[crate::db::trees::TreeRow],
    ) -> Result<(), MetricsError> {
        let families = fleet_registry(state, nodes, trees).await?.gather();
        *self.fleet.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), families));
        Ok(())
    }

    /// Whether this instance holds the publisher lease.
    pub fn set_lease_held(&self, held: bool) {
        self.lease_held.set(i64::from(held));
    }
}

/// Axum middleware counting requests by matched route and status.
pub async fn count_requests(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    state
        .metrics
        .api_requests
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    response
}

/// `GET /metrics`; with `[metrics] require_token`, only for a token whose role may read (give
/// Prometheus a viewer's token in its `authorization` section).
pub async fn scrape(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> Response {
    if state.config.metrics.require_token {
        match crate::api::authenticate(&state, &headers).await {
            Ok(caller) if caller.role.may(crate::access::Permission::Read) => {}
            Ok(_) => return StatusCode::FORBIDDEN.into_response(),
            Err(error) => return error.into_response(),
        }
    }
    match render(&state) {
        Ok(text) => {
            ([(header::CONTENT_TYPE, TextEncoder::new().format_type())], text).into_response()
        }
        Err(error) => {
            tracing::warn!(target: "ctl::metrics", %error, "cannot render metrics");
            (StatusCode::SERVICE_UNAVAILABLE, format!("metrics unavailable: {error}\n"))
                .into_response()
        }
    }
}

/// Why metrics could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The database could not be read.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Encoding failed (a programming error: duplicate or invalid names).
    #[error(transparent)]
    Prometheus(#[from] prometheus::Error),
}

/// The text exposition: this instance's counters and the fleet's state as of the last pass
/// (none before the first).
pub fn render(state: &AppState) -> Result<String, MetricsError> {
    let mut families = state.metrics.registry.gather();
    let fleet = state.metrics.fleet.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some((taken, fleet)) = fleet {
        families.extend(fleet);
        let age = Gauge::new(
            "wakufleet_fleet_state_age_seconds",
            "Seconds since the reconcile pass whose fleet state this scrape shows",
        )?;
        age.set(taken.elapsed().as_secs_f64());
        let extra = Registry::new();
        extra.register(Box::new(age))?;
        families.extend(extra.gather());
    }
    if let Some(dns) = &state.dns {
        let limited = IntCounterVec::new(
            Opts::new(
                "wakufleet_dns_responses_limited_total",
                "UDP answers the DNS server's response-rate limit slipped (TC=1) or dropped",
            ),
            &["action"],
        )?;
        let counts = dns.limited();
        limited.with_label_values(&["slip"]).inc_by(counts.slipped);
        limited.with_label_values(&["drop"]).inc_by(counts.dropped);
        let extra = Registry::new();
        extra.register(Box::new(limited))?;
        families.extend(extra.gather());
    }
    let mut out = Vec::new();
    TextEncoder::new().encode(&families, &mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn health_value(health: Health) -> i64 {
    match health {
        Health::Passing => 0,
        Health::Warning => 1,
        Health::Critical => 2,
    }
}

async fn fleet_registry(
    state: &AppState,
    nodes: &[crate::db::nodes::NodeRow],
    trees: &[crate::db::trees::TreeRow],
) -> Result<Registry, MetricsError> {
    let registry = Registry::new();
    let now = state.db.now_ms();

    let by_health = IntGaugeVec::new(
        Opts::new("wakufleet_nodes", "Enrolled nodes by health state"),
        &["health"],
    )?;
    for health in [Health::Passing, Health::Warning, Health::Critical] {
        let count = nodes.iter().filter(|n| n.health == health).count();
        by_health.with_label_values(&[health.as_str()]).set(count as i64);
    }
    registry.register(Box::new(by_health))?;

    let node_health = IntGaugeVec::new(
        Opts::new(
            "wakufleet_node_health",
            "Health state per node: 0 passing, 1 warning, 2 critical",
        ),
        &["node_id", "label"],
    )?;
    let report_age = GaugeVec::new(
        Opts::new(
            "wakufleet_node_last_report_age_seconds",
            "Seconds since the newest report's measurement",
        ),
        &["node_id", "label"],
    )?;
    let reachable = IntGaugeVec::new(
        Opts::new(
            "wakufleet_node_reachable",
            "1 if the node's advertised address answered the controller's dial, 0 if not",
        ),
        &["node_id", "label"],
    )?;
    let maintenance = IntGaugeVec::new(
        Opts::new(
            "wakufleet_node_maintenance",
            "1 while an operator has the node in maintenance (out of trees, no alerts), else 0",
        ),
        &["node_id", "label"],
    )?;
    let drift = IntGaugeVec::new(
        Opts::new(
            "wakufleet_node_config_drift",
            "1 while the node's reported cluster or shards differ from what its trees or its \
             desired configuration say, else 0",
        ),
        &["node_id", "label"],
    )?;
    // (cluster, shard) → passing nodes; every shard any node serves appears, even at 0.
    let mut coverage: BTreeMap<(String, u16), i64> = BTreeMap::new();
    for node in nodes {
        let labels = [node.node_id.as_str(), node.label.as_str()];
        node_health.with_label_values(&labels).set(health_value(node.health));
        if let Some(measured) = node.last_measured_at {
            report_age.with_label_values(&labels).set((now - measured).max(0) as f64 / 1000.0);
        }
        maintenance.with_label_values(&labels).set(i64::from(node.maintenance.is_some()));
        drift
            .with_label_values(&labels)
            .set(i64::from(node.health_reason.starts_with(crate::drift::DRIFT)));
        if let Some(ok) = node.reachable {
            reachable.with_label_values(&labels).set(i64::from(ok));
        }
        let cluster = node.cluster_id.map_or_else(String::new, |c| c.to_string());
        for shard in &node.shards {
            *coverage.entry((cluster.clone(), *shard)).or_default() +=
                i64::from(node.health == Health::Passing);
        }
    }
    registry.register(Box::new(node_health))?;
    registry.register(Box::new(report_age))?;
    registry.register(Box::new(reachable))?;
    registry.register(Box::new(maintenance))?;
    registry.register(Box::new(drift))?;

    let shard_nodes = IntGaugeVec::new(
        Opts::new("wakufleet_shard_passing_nodes", "Passing nodes serving each relay shard"),
        &["cluster", "shard"],
    )?;
    for ((cluster, shard), count) in &coverage {
        shard_nodes.with_label_values(&[cluster.as_str(), &shard.to_string()]).set(*count);
    }
    registry.register(Box::new(shard_nodes))?;

    let tree_seq = IntGaugeVec::new(
        Opts::new("wakufleet_tree_published_seq", "Sequence number of the published version"),
        &["tree"],
    )?;
    let tree_records = IntGaugeVec::new(
        Opts::new("wakufleet_tree_published_records", "Node records in the published version"),
        &["tree"],
    )?;
    let tree_published_at = GaugeVec::new(
        Opts::new(
            "wakufleet_tree_published_timestamp_seconds",
            "When the published version was published, Unix seconds",
        ),
        &["tree"],
    )?;
    let tree_pending = IntGaugeVec::new(
        Opts::new(
            "wakufleet_tree_awaiting_signature",
            "Versions built and waiting for a key holder's offline signature",
        ),
        &["tree"],
    )?;
    let tree_unpublished = IntGaugeVec::new(
        Opts::new("wakufleet_tree_signed_unpublished", "Signed versions not yet published"),
        &["tree"],
    )?;
    let tree_error = IntGaugeVec::new(
        Opts::new("wakufleet_tree_build_error", "1 while the last build of the tree failed"),
        &["tree"],
    )?;
    for tree in trees {
        let name = [tree.name.as_str()];
        // One read per tree: building a version abandons older pending ones and publishing
        // supersedes older signed ones, so the newest versions hold every one counted here.
        let versions = state.db.versions(&tree.name, RECENT_VERSIONS).await?;
        let in_state = |wanted| versions.iter().filter(move |v| v.state == wanted);
        if let Some(published) = in_state(VersionState::Published).next() {
            tree_seq.with_label_values(&name).set(i64::try_from(published.seq).unwrap_or(i64::MAX));
            tree_records.with_label_values(&name).set(published.enrs.len() as i64);
            if let Some(at) = published.published_at {
                tree_published_at.with_label_values(&name).set(at as f64 / 1000.0);
            }
        }
        tree_pending.with_label_values(&name).set(in_state(VersionState::Pending).count() as i64);
        let signed = in_state(VersionState::Signed).count();
        tree_unpublished.with_label_values(&name).set(signed as i64);
        tree_error.with_label_values(&name).set(i64::from(tree.last_error.is_some()));
    }
    registry.register(Box::new(tree_seq))?;
    registry.register(Box::new(tree_records))?;
    registry.register(Box::new(tree_published_at))?;
    registry.register(Box::new(tree_pending))?;
    registry.register(Box::new(tree_unpublished))?;
    registry.register(Box::new(tree_error))?;
    Ok(registry)
}
