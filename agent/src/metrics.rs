//! The agent's own Prometheus metrics, served after the node's (nwaku's names) on the
//! compatibility metrics port: restarts, reports queued, sent and failed, outages.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use prometheus::{Encoder, IntCounter, IntGauge, Registry, TextEncoder};

use crate::supervisor::SupervisorStats;

/// Counters the reporter keeps.
#[derive(Debug, Default)]
pub struct AgentMetrics {
    /// Reports the controller accepted.
    pub reports_sent: AtomicU64,
    /// Delivery attempts that failed (transient or not).
    pub reports_failed: AtomicU64,
    /// Reports refused for good (4xx other than the recoverable ones) and dropped.
    pub reports_refused: AtomicU64,
    /// Reports waiting on disk.
    pub reports_queued: AtomicU64,
    /// Queue entries merged because the queue was full.
    pub reports_merged: AtomicU64,
    /// Times the controller became unreachable.
    pub outages: AtomicU64,
    /// Whether the node is enrolled.
    pub enrolled: AtomicBool,
}

impl AgentMetrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The Prometheus text of these and the supervisor's counters; `node_up` says whether a
    /// node runs now.
    pub fn render(
        &self,
        supervisor: &SupervisorStats,
        node_up: bool,
    ) -> Result<String, prometheus::Error> {
        let registry = Registry::new();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let counter = |name: &str, help: &str, value: u64| -> Result<(), prometheus::Error> {
            let metric = IntCounter::new(name, help)?;
            metric.inc_by(value);
            registry.register(Box::new(metric))
        };
        let gauge = |name: &str, help: &str, value: u64| -> Result<(), prometheus::Error> {
            let metric = IntGauge::new(name, help)?;
            metric.set(i64::try_from(value).unwrap_or(i64::MAX));
            registry.register(Box::new(metric))
        };
        counter(
            "wakufleet_agent_node_restarts_total",
            "Node restarts by the agent",
            supervisor.restarts(),
        )?;
        counter(
            "wakufleet_agent_node_failed_starts_total",
            "Node starts that failed",
            supervisor.failed_starts(),
        )?;
        gauge("wakufleet_agent_node_up", "Whether the node runs", u64::from(node_up))?;
        counter(
            "wakufleet_agent_reports_sent_total",
            "Reports the controller accepted",
            load(&self.reports_sent),
        )?;
        counter(
            "wakufleet_agent_reports_failed_total",
            "Report deliveries that failed",
            load(&self.reports_failed),
        )?;
        counter(
            "wakufleet_agent_reports_refused_total",
            "Reports refused for good and dropped",
            load(&self.reports_refused),
        )?;
        gauge(
            "wakufleet_agent_reports_queued",
            "Reports waiting on disk",
            load(&self.reports_queued),
        )?;
        counter(
            "wakufleet_agent_reports_merged_total",
            "Queued reports merged because the queue was full",
            load(&self.reports_merged),
        )?;
        counter(
            "wakufleet_agent_controller_outages_total",
            "Times the controller became unreachable",
            load(&self.outages),
        )?;
        gauge(
            "wakufleet_agent_enrolled",
            "Whether the node is enrolled",
            u64::from(self.enrolled.load(Ordering::Relaxed)),
        )?;
        let mut out = Vec::new();
        TextEncoder::new().encode(&registry.gather(), &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}
