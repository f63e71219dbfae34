//! Measuring and reporting: every `report-interval` the figures go into the on-disk queue,
//! then the queue is delivered to the controller oldest first, each report signed with a
//! fresh counter and `sentAt` (its `measuredAt` stays when it was measured).
//!
//! Enrolment comes first, once: the one-time token is redeemed and the enrolment kept in the
//! state file. A token the controller refuses, or none to read, stops the agent with one error
//! (an operator must act; a controller that is merely away is waited for). Measuring never waits for the controller: while it is away (or refusing),
//! reports queue on disk, bounded, and trouble is logged once when it starts and once when it
//! ends — not per attempt.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use contract::{
    desired::DesiredConfig,
    enrolment::Enrolment,
    report::{FleetHint, REPORT_VERSION, Report},
};
use libp2p::PeerId;
use node::enrtree::NodeRecord;
use tokio::sync::watch;

use crate::{
    client::{ClientError, ControllerClient},
    config::AgentConfig,
    error::AgentError,
    figures::{AgentFigures, ErrorLog, Sampler},
    metrics::AgentMetrics,
    probe::probe_store,
    queue::{Measurement, ReportQueue},
    state::StateFile,
    supervisor::SupervisorHandle,
};

/// How long a clean stop waits for its last report to be taken.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Replayed counters skipped in a row before a delivery round gives up.
const MAX_REPLAYS: u32 = 3;

/// Unix time in ms.
pub use node::clock::now_ms;

/// What keeps reports from the controller, for logging each episode once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trouble {
    Unavailable,
    Stale,
    UnknownNode,
    Refused,
}

impl Trouble {
    fn of(error: &ClientError) -> Self {
        match error {
            ClientError::Unreachable(_) | ClientError::Server { .. } => Self::Unavailable,
            ClientError::Stale(_) => Self::Stale,
            ClientError::UnknownNode(_) => Self::UnknownNode,
            // A refused enrolment stops the agent instead (AgentError::CannotEnrol).
            ClientError::Replay { .. }
            | ClientError::Refused { .. }
            | ClientError::Enrolment { .. } => Self::Refused,
        }
    }
}

/// The reporter task's state.
pub struct Reporter {
    config: AgentConfig,
    client: ControllerClient,
    supervisor: SupervisorHandle,
    state: StateFile,
    queue: ReportQueue,
    sampler: Sampler,
    errors: ErrorLog,
    metrics: Arc<AgentMetrics>,
    node_id: String,
    last: Option<Measurement>,
    trouble: Option<(Trouble, Instant)>,
    outputs: ReporterOutputs,
    /// The fleet hint the running node has, and when that node started.
    fleet_applied: Option<(Instant, FleetHint)>,
}

/// What the reporter tells the rest of the agent.
#[derive(Debug)]
pub struct ReporterOutputs {
    /// Each new desired configuration the controller answers with.
    pub desired: watch::Sender<Option<DesiredConfig>>,
    /// Set once when the agent cannot go on (see [`AgentError::CannotEnrol`]).
    pub failed: watch::Sender<Option<String>>,
}

impl Reporter {
    /// A reporter for the node `supervisor` runs, with its state and queue in the data dir.
    pub fn new(
        config: AgentConfig,
        client: ControllerClient,
        supervisor: SupervisorHandle,
        errors: ErrorLog,
        metrics: Arc<AgentMetrics>,
        node_id: String,
        outputs: ReporterOutputs,
    ) -> Result<Self, AgentError> {
        let state = StateFile::open(&config.data_dir)?;
        let queue =
            ReportQueue::open(&config.data_dir.join("queue"), config.controller.queue_limit)?;
        metrics.enrolled.store(state.state().enrolled_node_id.is_some(), Ordering::Relaxed);
        metrics.reports_queued.store(queue.len() as u64, Ordering::Relaxed);
        Ok(Self {
            config,
            client,
            supervisor,
            state,
            queue,
            sampler: Sampler::default(),
            errors,
            metrics,
            node_id,
            last: None,
            trouble: None,
            outputs,
            fleet_applied: None,
        })
    }

    /// Measures and reports every interval until `stop`.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.config.controller.report_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopping = tokio::select! {
                _ = tick.tick() => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            if stopping {
                self.leave().await;
                return;
            }
            match self.round().await {
                Ok(()) => {}
                Err(error @ AgentError::CannotEnrol(_)) => {
                    tracing::error!(target: "agent::report", controller = %self.client.base(), %error, "giving up: an operator must act");
                    let _ = self.outputs.failed.send(Some(error.to_string()));
                    return;
                }
                Err(error) => {
                    // The disk: nothing else to do than say so and try again next time.
                    tracing::error!(target: "agent::report", %error, "report round failed");
                    self.errors.push(error.to_string());
                }
            }
        }
    }

    /// One round: measure, enrol if needed, deliver what is queued.
    pub async fn round(&mut self) -> Result<(), AgentError> {
        self.measure(false).await?;
        if self.state.state().enrolled_node_id.is_none() && !self.enrol().await? {
            return Ok(());
        }
        self.deliver().await
    }

    async fn measure(&mut self, stopping: bool) -> Result<(), AgentError> {
        let instance = self.supervisor.current();
        let mut store_probe = None;
        let mut stats = None;
        if let Some(instance) = &instance {
            // A leaving node's last report goes out at once: no store probe round trip.
            if instance.store && self.config.probe.enabled && !stopping {
                let probe = &self.config.probe;
                store_probe = probe_store(instance, &probe.content_topic, probe.timeout).await;
            }
            stats = instance.handle.stats().await.ok();
        }
        let supervisor = self.supervisor.stats();
        let agent = AgentFigures {
            restarts: supervisor.restarts(),
            errors: self.errors.drain(),
            store_probe,
            config: supervisor.config_status(),
            node_uptime: instance.as_ref().map(|i| i.started.elapsed()),
        };
        let mut figures = self.sampler.sample(stats.as_ref(), agent, Instant::now());
        figures.stopping = stopping.then_some(true);
        let measurement = match (&instance, &self.last) {
            (Some(i), _) => Measurement {
                measured_at: now_ms(),
                enr: i.handle.enr().to_base64(),
                roles: i.roles.clone(),
                shards: i.shards.clone(),
                cluster_id: Some(i.cluster_id),
                figures,
            },
            // Down: the last known identity, with the figures of a node that is down.
            (None, Some(last)) => Measurement { measured_at: now_ms(), figures, ..last.clone() },
            (None, None) => return Ok(()),
        };
        let merges = self.queue.merges();
        self.queue.push(&measurement)?;
        AgentMetrics::add(&self.metrics.reports_merged, self.queue.merges() - merges);
        self.metrics.reports_queued.store(self.queue.len() as u64, Ordering::Relaxed);
        self.last = Some(measurement);
        Ok(())
    }

    /// The version of the fleet hint the running node was given (none after a restart of the
    /// node, so the next answer carries the hint again).
    fn fleet_version(&self) -> Option<String> {
        let instance = self.supervisor.current()?;
        let (started, hint) = self.fleet_applied.as_ref()?;
        (*started == instance.started && !hint.version.is_empty()).then(|| hint.version.clone())
    }

    /// Hands the controller's fleet hint to the running node, once per node instance and
    /// change: its records become bootstrap and dial candidates, its peer ids fleet peers.
    async fn apply_fleet(&mut self, fleet: FleetHint) {
        let Some(instance) = self.supervisor.current() else { return };
        let key = (instance.started, fleet.clone());
        if self.fleet_applied.as_ref() == Some(&key) {
            return;
        }
        let records: Vec<NodeRecord> = fleet
            .records
            .iter()
            .take(contract::report::MAX_FLEET_RECORDS)
            .filter_map(|r| r.parse().ok())
            .collect();
        let peer_ids: Vec<PeerId> = fleet
            .peer_ids
            .iter()
            .take(contract::report::MAX_FLEET_PEER_IDS)
            .filter_map(|p| p.parse().ok())
            .collect();
        let (known, ids) = (records.len(), peer_ids.len());
        if instance.handle.add_fleet(records, peer_ids).await.is_ok() {
            tracing::debug!(target: "agent::report", records = known, peer_ids = ids, "fleet hint given to the node");
            self.fleet_applied = Some(key);
        }
    }

    /// A clean stop: one last report saying the node is going, so the controller takes it out
    /// of its trees at once instead of when its reports grow stale. Best effort, bounded: a
    /// controller that is away gets it later from the queue (as an older report).
    async fn leave(&mut self) {
        if self.state.state().enrolled_node_id.is_none() {
            return;
        }
        let last = async {
            self.measure(true).await?;
            self.deliver().await
        };
        match tokio::time::timeout(LEAVE_TIMEOUT, last).await {
            Ok(Ok(())) => {
                tracing::info!(target: "agent::report", "told the controller the node is stopping")
            }
            Ok(Err(error)) => {
                tracing::warn!(target: "agent::report", %error, "could not tell the controller the node is stopping")
            }
            Err(_) => {
                tracing::warn!(target: "agent::report", "the controller did not take the stopping report in time")
            }
        }
    }

    /// Enrols with the token; `Ok(false)` while that is not possible yet (the controller is
    /// away), [`AgentError::CannotEnrol`] when it never will be.
    async fn enrol(&mut self) -> Result<bool, AgentError> {
        let Some(enr) = self.last.as_ref().map(|m| m.enr.clone()) else { return Ok(false) };
        let token = read_token(self.config.controller.token_file.as_deref())?;
        let enrolment = Enrolment {
            token,
            enr,
            label: self.config.controller.label.clone(),
            sent_at: now_ms(),
        };
        match self.client.enrol(&enrolment).await {
            Ok(node_id) => {
                if node_id != self.node_id {
                    tracing::warn!(target: "agent::report", %node_id, expected = %self.node_id, "controller enrolled another node id");
                }
                self.state.set_enrolled(&node_id, self.client.base(), now_ms())?;
                self.metrics.enrolled.store(true, Ordering::Relaxed);
                tracing::info!(target: "agent::report", %node_id, controller = %self.client.base(), "enrolled");
                self.trouble_ended();
                Ok(true)
            }
            // The token is unknown, used, expired or revoked: only an operator can fix that.
            Err(ClientError::Enrolment { status, message }) => Err(AgentError::CannotEnrol(
                format!("the controller refused the enrolment token ({status}): {message}"),
            )),
            Err(error) => {
                self.trouble_started(&error);
                Ok(false)
            }
        }
    }

    /// Delivers queued reports, oldest first, for at most one report interval: a long backlog
    /// goes out over several rounds, and measuring keeps its pace meanwhile.
    async fn deliver(&mut self) -> Result<(), AgentError> {
        let mut replays = 0;
        let deadline = Instant::now() + self.config.controller.report_interval;
        while Instant::now() < deadline
            && let Some((seq, measurement)) = self.queue.front()?
        {
            let counter = self.state.next_counter()?;
            let report = Report {
                version: REPORT_VERSION,
                node_id: self.node_id.clone(),
                counter,
                sent_at: now_ms().max(measurement.measured_at),
                measured_at: measurement.measured_at,
                enr: measurement.enr,
                services: measurement.roles,
                shards: measurement.shards,
                cluster_id: measurement.cluster_id,
                figures: measurement.figures,
                fleet_version: self.fleet_version(),
            };
            match self.client.report(&report).await {
                Ok(answer) => {
                    self.queue.remove(seq)?;
                    AgentMetrics::add(&self.metrics.reports_sent, 1);
                    self.trouble_ended();
                    if let Some(fleet) = answer.fleet {
                        self.apply_fleet(fleet).await;
                    }
                    if let Some(desired) = answer.desired {
                        self.outputs.desired.send_if_modified(|d| {
                            let newer = d.as_ref().is_none_or(|d| d.version < desired.version);
                            if newer {
                                *d = Some(desired);
                            }
                            newer
                        });
                    }
                }
                Err(ClientError::Replay { last, message }) if replays < MAX_REPLAYS => {
                    // Counters went backwards (state restored from a backup?): move past.
                    replays += 1;
                    tracing::warn!(target: "agent::report", counter, %message, "counter already used; moving on");
                    if let Some(last) = last {
                        self.state.raise_counter(last)?;
                    }
                }
                Err(error @ (ClientError::Refused { .. } | ClientError::Replay { .. })) => {
                    // This report will never be accepted; keeping it would block the rest.
                    tracing::error!(target: "agent::report", counter, %error, "report refused; dropped");
                    self.errors.push(format!("report {counter} refused: {error}"));
                    self.queue.remove(seq)?;
                    AgentMetrics::add(&self.metrics.reports_failed, 1);
                    AgentMetrics::add(&self.metrics.reports_refused, 1);
                }
                Err(error) => {
                    AgentMetrics::add(&self.metrics.reports_failed, 1);
                    if matches!(error, ClientError::UnknownNode(_)) {
                        self.state.clear_enrolment()?;
                        self.metrics.enrolled.store(false, Ordering::Relaxed);
                    }
                    self.trouble_started(&error);
                    break;
                }
            }
            self.metrics.reports_queued.store(self.queue.len() as u64, Ordering::Relaxed);
        }
        self.metrics.reports_queued.store(self.queue.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Logs the start of a kind of trouble, once.
    fn trouble_started(&mut self, error: &ClientError) {
        let kind = Trouble::of(error);
        if self.trouble.is_some_and(|(k, _)| k == kind) {
            return;
        }
        self.trouble = Some((kind, Instant::now()));
        let controller = self.client.base();
        let queued = self.queue.len();
        match kind {
            Trouble::Unavailable => {
                AgentMetrics::add(&self.metrics.outages, 1);
                tracing::warn!(target: "agent::report", %controller, %error, queued, "controller unavailable; reports queue on disk until it is back");
            }
            _ => {
                tracing::error!(target: "agent::report", %controller, %error, queued, "controller refuses reports; they queue on disk");
            }
        }
        self.errors.push(error.to_string());
    }

    fn trouble_ended(&mut self) {
        if let Some((kind, since)) = self.trouble.take() {
            let after = Duration::from_millis(since.elapsed().as_millis() as u64);
            tracing::info!(target: "agent::report", controller = %self.client.base(), ?kind, after = %humantime::format_duration(after), queued = self.queue.len(), "controller accepts reports again");
        }
    }
}

/// Fails when the agent is not enrolled and has no token to enrol with: nothing would ever be
/// reported, so it should not start.
pub fn check_can_enrol(config: &AgentConfig) -> Result<(), AgentError> {
    let state = StateFile::open(&config.data_dir)?;
    if state.state().enrolled_node_id.is_none() {
        read_token(config.controller.token_file.as_deref())?;
    }
    Ok(())
}

/// The enrolment token from `path` (first line).
fn read_token(path: Option<&std::path::Path>) -> Result<String, AgentError> {
    let path = path.ok_or_else(|| {
        AgentError::CannotEnrol("not enrolled, and no controller.token-file is configured".into())
    })?;
    let token = node::keystore::read_password_file(path).map_err(|error| {
        AgentError::CannotEnrol(format!("enrolment token file {}: {error}", path.display()))
    })?;
    if token.trim().is_empty() {
        return Err(AgentError::CannotEnrol(format!(
            "enrolment token file {} is empty",
            path.display()
        )));
    }
    Ok(token.trim().to_owned())
}
