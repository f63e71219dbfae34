//! The wakufleet agent: runs the embedded node in-process, keeps it up, measures its health and
//! reports it, signed, to the controller; serves nwaku's REST and metrics ports so existing
//! checks keep working.
//!
//! # Layout
//!
//! - [`Agent`] (this file) — starts the parts below together and stops them together.
//! - [`config`] — `agent.toml`: controller, supervisor, compatibility ports, probe, and the
//!   node as `node::options::NodeOptions` (nwaku's flag names, the same type `wakufleet node`
//!   reads); the node key from a keystore.
//! - [`supervisor`] — starts the node health-checked, restarts it with backoff, applies
//!   desired configurations (rolling back on failure), stops it cleanly.
//! - [`figures`] — report schema v1 figures from node stats and the agent's own counters.
//! - [`probe`] — the store probe: publish, then find the message in the store.
//! - [`queue`] — reports waiting on disk, in order, bounded by merging the oldest.
//! - [`state`] — the enrolment and the report counter, persisted.
//! - [`client`] — the controller's signed agent API and what its answers mean; the schema and
//!   signatures are the `contract` crate's, shared with the controller.
//! - [`reporter`] — measure, enrol once, deliver in order; outages logged once.
//! - [`compat`] — nwaku's REST API and `/metrics` on stable local ports.
//! - [`metrics`] — the agent's own Prometheus metrics.
//! - [`error`] — [`ConfigError`], [`AgentError`].

pub mod client;
pub mod compat;
pub mod config;
pub mod error;
pub mod figures;
pub mod metrics;
pub mod probe;
pub mod queue;
pub mod reporter;
pub mod state;
pub mod supervisor;

use std::{net::SocketAddr, sync::Arc};

use contract::desired::DesiredConfig;
use k256::ecdsa::SigningKey;
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    client::ControllerClient, figures::ErrorLog, metrics::AgentMetrics, reporter::Reporter,
    supervisor::SupervisorHandle,
};
pub use crate::{
    config::AgentConfig,
    error::{AgentError, ConfigError},
};

/// A running agent.
pub struct Agent {
    supervisor: SupervisorHandle,
    metrics: Arc<AgentMetrics>,
    rest_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    failed: watch::Receiver<Option<String>>,
    /// Stops the reporter first, so its last report goes out while the node still runs.
    reporter_stop: watch::Sender<bool>,
    reporter: Option<JoinHandle<()>>,
}

impl Agent {
    /// Starts the node with `key` (health-checked: an error when it does not come up), the
    /// reporter and the compatibility ports.
    pub async fn start(config: AgentConfig, key: SigningKey) -> Result<Self, AgentError> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir).map_err(AgentError::disk(&config.data_dir))?;
        // Before the node starts: an agent that can never enrol fails with that reason alone.
        reporter::check_can_enrol(&config)?;
        let (stop, stopped) = watch::channel(false);
        let errors = ErrorLog::default();
        let metrics = Arc::new(AgentMetrics::default());
        let trust = match &config.controller.ca_file {
            Some(path) => std::fs::read(path).map_err(AgentError::disk(path))?,
            None => Vec::new(),
        };
        let client = ControllerClient::new(
            &config.controller.url,
            key.clone(),
            config.controller.request_timeout,
            &trust,
        )
        .map_err(|e| AgentError::Config(ConfigError::Invalid(e.to_string())))?;
        let (supervisor, supervisor_task) =
            supervisor::start(config.clone(), key, errors.clone(), stopped.clone()).await?;
        let mut tasks = vec![supervisor_task];
        let node_id = supervisor
            .current()
            .map(|i| data_encoding::HEXLOWER.encode(&i.handle.enr().node_id().raw()))
            .ok_or(AgentError::Stopped)?;
        let (desired_tx, desired_rx) = watch::channel(None);
        let (failed_tx, failed) = watch::channel(None);
        let (reporter_stop, reporter_stopped) = watch::channel(false);
        let reporter = Reporter::new(
            config.clone(),
            client,
            supervisor.clone(),
            errors,
            metrics.clone(),
            node_id,
            reporter::ReporterOutputs { desired: desired_tx, failed: failed_tx },
        )?;
        let mut agent = Self {
            supervisor: supervisor.clone(),
            metrics: metrics.clone(),
            rest_addr: None,
            metrics_addr: None,
            stop,
            tasks: Vec::new(),
            failed,
            reporter_stop,
            reporter: None,
        };
        // Bind the ports before anything else runs, so a taken port fails the start.
        if let Some(addr) = config.rest_address() {
            // The node's own REST rules (token, Host names) on the port that serves it.
            let access = config.node.rest_access(addr).map_err(|e| {
                AgentError::Config(crate::error::ConfigError::Invalid(format!(
                    "[compat] REST: {e}"
                )))
            })?;
            let router = access.guard(compat::rest_router(supervisor.clone(), metrics.clone()));
            let (bound, task) = compat::serve(addr, router, stopped.clone()).await?;
            agent.rest_addr = Some(bound);
            tasks.push(task);
        }
        if let Some(addr) = config.metrics_address() {
            let router = compat::metrics_router(supervisor.clone(), metrics);
            let (bound, task) = compat::serve(addr, router, stopped.clone()).await?;
            agent.metrics_addr = Some(bound);
            tasks.push(task);
        }
        agent.reporter = Some(tokio::spawn(reporter.run(reporter_stopped)));
        tasks.push(tokio::spawn(apply_desired(supervisor, desired_rx, stopped)));
        agent.tasks = tasks;
        tracing::info!(target: "agent", rest = ?agent.rest_addr, metrics = ?agent.metrics_addr, "agent started");
        Ok(agent)
    }

    /// Resolves when the agent cannot go on without an operator (a refused enrolment token),
    /// with the reason; the caller should shut it down and exit non-zero.
    pub async fn failed(&self) -> String {
        let mut failed = self.failed.clone();
        match failed.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            // The reporter is gone without a reason: the agent is stopping.
            Err(_) => std::future::pending().await,
        }
    }

    /// The supervisor: the running node, restarts, configuration changes.
    pub fn supervisor(&self) -> &SupervisorHandle {
        &self.supervisor
    }

    /// The agent's counters.
    pub fn metrics(&self) -> &Arc<AgentMetrics> {
        &self.metrics
    }

    /// The nwaku REST port, when enabled.
    pub fn rest_addr(&self) -> Option<SocketAddr> {
        self.rest_addr
    }

    /// The metrics port, when enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Runs the node with a reloaded configuration (SIGHUP). Controller, reporting and port
    /// settings take effect at the next start of the agent.
    pub async fn reload(&self, config: AgentConfig) -> Result<(), AgentError> {
        config.validate()?;
        self.supervisor.reload(config).await
    }

    /// Stops reporting (after a last report saying the node is stopping), then the ports and
    /// the node (cleanly, then by force after the supervisor's `stop-timeout`).
    pub async fn shutdown(mut self) {
        let _ = self.reporter_stop.send(true);
        if let Some(reporter) = self.reporter.take() {
            let _ = reporter.await;
        }
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Hands each new desired configuration from the controller to the supervisor.
async fn apply_desired(
    supervisor: SupervisorHandle,
    mut desired: watch::Receiver<Option<DesiredConfig>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            changed = desired.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
        let Some(next) = desired.borrow_and_update().clone() else { continue };
        match supervisor.apply(next).await {
            Ok(status) => {
                tracing::debug!(target: "agent", ?status, "desired configuration handled")
            }
            Err(_) => return,
        }
    }
}
