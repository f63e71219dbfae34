//! Keeps the embedded node running: starts it (health-checked: it must answer within
//! `start-timeout`), restarts it when its task ends or panics, applies configuration changes
//! (the controller's desired configuration, or a reloaded `agent.toml`) by restarting it with
//! the new settings and rolling back when they fail, and stops it cleanly.
//!
//! Restart policy: a node that was healthy and then died is restarted after `backoff-min`;
//! failed starts back off, doubling up to `backoff-max`. Every restart is counted and its
//! reason goes into the next report's errors.
//!
//! The [`SupervisorHandle`] shows the running node (or none, while it restarts) through a watch
//! channel, so the reporter and the compatibility ports always talk to the current one.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use contract::desired::{ConfigStatus, DesiredConfig};
use k256::ecdsa::SigningKey;
use node::{
    config::NodeConfig,
    running::{self, NodeHandle},
};
use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
};

use crate::{config::AgentConfig, error::AgentError, figures::ErrorLog};

/// Commands queued for the supervisor.
const COMMAND_CAPACITY: usize = 16;

/// A running node and what it runs.
#[derive(Debug)]
pub struct NodeInstance {
    /// The node.
    pub handle: NodeHandle,
    /// nwaku's REST API for this node ([`node::rest::router`]).
    pub rest: axum::Router,
    /// Roles it serves (configured labels and services).
    pub roles: Vec<String>,
    /// Relay shards.
    pub shards: Vec<u16>,
    /// Cluster.
    pub cluster_id: u16,
    /// Whether it archives messages (the store probe runs only then).
    pub store: bool,
    /// Its first relay topic, for the store probe.
    pub probe_topic: Option<String>,
    /// When it became healthy.
    pub started: Instant,
}

enum Command {
    Apply { desired: DesiredConfig, reply: oneshot::Sender<ConfigStatus> },
    Reload { config: Box<AgentConfig>, reply: oneshot::Sender<Result<(), String>> },
    Kill,
}

/// Counters and outcomes the reporter and the metrics read.
#[derive(Debug, Default)]
pub struct SupervisorStats {
    restarts: AtomicU64,
    failed_starts: AtomicU64,
    config: Mutex<Option<ConfigStatus>>,
}

impl SupervisorStats {
    /// Node restarts after its task ended (exit, panic, kill).
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Starts that failed.
    pub fn failed_starts(&self) -> u64 {
        self.failed_starts.load(Ordering::Relaxed)
    }

    /// The outcome of the newest desired configuration.
    pub fn config_status(&self) -> Option<ConfigStatus> {
        self.config.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_config_status(&self, status: ConfigStatus) {
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
    }
}

/// The supervisor's front-end. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SupervisorHandle {
    current: watch::Receiver<Option<Arc<NodeInstance>>>,
    commands: mpsc::Sender<Command>,
    stats: Arc<SupervisorStats>,
}

impl SupervisorHandle {
    /// The running node, if it is up.
    pub fn current(&self) -> Option<Arc<NodeInstance>> {
        self.current.borrow().clone()
    }

    /// Changes of the running node.
    pub fn watch(&self) -> watch::Receiver<Option<Arc<NodeInstance>>> {
        self.current.clone()
    }

    /// Counters.
    pub fn stats(&self) -> &Arc<SupervisorStats> {
        &self.stats
    }

    /// Waits until a node is up, for at most `limit`.
    pub async fn wait_up(&self, limit: Duration) -> Option<Arc<NodeInstance>> {
        let mut watch = self.current.clone();
        let up = tokio::time::timeout(limit, watch.wait_for(Option::is_some)).await;
        up.ok()?.ok()?.clone()
    }

    /// Applies the controller's desired configuration (once per version); returns the outcome.
    pub async fn apply(&self, desired: DesiredConfig) -> Result<ConfigStatus, AgentError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Apply { desired, reply })
            .await
            .map_err(|_| AgentError::Stopped)?;
        answer.await.map_err(|_| AgentError::Stopped)
    }

    /// Runs the node with `config` from now on (a reloaded `agent.toml`); restarts it only when
    /// its `[node]` section changed. The node key stays the one the agent started with.
    pub async fn reload(&self, config: AgentConfig) -> Result<(), AgentError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Reload { config: Box::new(config), reply };
        self.commands.send(command).await.map_err(|_| AgentError::Stopped)?;
        answer.await.map_err(|_| AgentError::Stopped)?.map_err(AgentError::NodeStart)
    }

    /// Aborts the node's task, as a crash would: the fault drill the supervisor must survive.
    pub async fn kill_node(&self) -> Result<(), AgentError> {
        self.commands.send(Command::Kill).await.map_err(|_| AgentError::Stopped)
    }
}

/// The supervisor task's state.
struct Supervisor {
    config: AgentConfig,
    key: SigningKey,
    desired: Option<DesiredConfig>,
    /// Highest desired version seen (applied or not): each is tried once.
    desired_seen: u64,
    current: watch::Sender<Option<Arc<NodeInstance>>>,
    commands: mpsc::Receiver<Command>,
    stop: watch::Receiver<bool>,
    stats: Arc<SupervisorStats>,
    errors: ErrorLog,
}

type Running = (Arc<NodeInstance>, JoinHandle<()>);

enum Event {
    Ended(Result<(), tokio::task::JoinError>),
    Command(Option<Command>),
}

/// Starts the node (returning its first start's error) and the task that supervises it.
pub async fn start(
    config: AgentConfig,
    key: SigningKey,
    errors: ErrorLog,
    stop: watch::Receiver<bool>,
) -> Result<(SupervisorHandle, JoinHandle<()>), AgentError> {
    let node_config = config.node_config(&key, None)?;
    let first = start_node(&config, node_config, None).await.map_err(AgentError::NodeStart)?;
    let (current_tx, current) = watch::channel(Some(first.0.clone()));
    let (commands_tx, commands) = mpsc::channel(COMMAND_CAPACITY);
    let stats = Arc::new(SupervisorStats::default());
    let supervisor = Supervisor {
        config,
        key,
        desired: None,
        desired_seen: 0,
        current: current_tx,
        commands,
        stop,
        stats: stats.clone(),
        errors,
    };
    let task = tokio::spawn(supervisor.run(first));
    Ok((SupervisorHandle { current, commands: commands_tx, stats }, task))
}

/// Starts a node and checks that it answers.
async fn start_node(
    config: &AgentConfig,
    node_config: NodeConfig,
    desired: Option<&DesiredConfig>,
) -> Result<Running, String> {
    let limit = config.supervisor.start_timeout;
    let max_message_size = node_config.max_message_size;
    let roles = config.roles(&node_config, desired);
    let shards = node_config.shards.clone();
    let cluster_id = node_config.cluster_id;
    let store = node_config.store_url.is_some();
    let probe_topic = (node_config.relay && store)
        .then(|| shards.first().map(|&s| node::topics::ShardTopic::new(cluster_id, s).to_string()))
        .flatten();
    let (handle, task) = match tokio::time::timeout(limit, running::start(node_config)).await {
        Ok(Ok(started)) => started,
        Ok(Err(error)) => return Err(error.to_string()),
        Err(_) => return Err(format!("no answer within {limit:?}")),
    };
    // The health check: the node's own loop answers.
    if !matches!(tokio::time::timeout(limit, handle.stats()).await, Ok(Ok(_))) {
        task.abort();
        return Err(format!("started but did not answer its health check within {limit:?}"));
    }
    let rest = node::rest::router(handle.clone(), config.node.rest_settings(max_message_size));
    let instance = NodeInstance {
        handle,
        rest,
        roles,
        shards,
        cluster_id,
        store,
        probe_topic,
        started: Instant::now(),
    };
    Ok((Arc::new(instance), task))
}

fn describe_end(result: Result<(), tokio::task::JoinError>) -> String {
    match result {
        Ok(()) => "the node stopped".into(),
        Err(error) if error.is_panic() => {
            let panic = error.into_panic();
            let text = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown payload".into());
            format!("the node panicked: {text}")
        }
        Err(_) => "the node's task was killed".into(),
    }
}

impl Supervisor {
    async fn run(mut self, first: Running) {
        let mut running = Some(first);
        let mut failures: u32 = 0;
        loop {
            let (instance, mut task) = match running.take() {
                Some(running) => running,
                None => match self.start_with(self.desired.clone()).await {
                    Ok(started) => {
                        failures = 0;
                        started
                    }
                    Err(error) => {
                        failures = failures.saturating_add(1);
                        self.stats.failed_starts.fetch_add(1, Ordering::Relaxed);
                        let delay = self.backoff(failures);
                        tracing::error!(target: "agent::supervisor", %error, retry_in = ?delay, "node start failed");
                        self.errors.push(format!("node start failed: {error}"));
                        if self.pause(delay).await {
                            return;
                        }
                        continue;
                    }
                },
            };
            self.current.send_replace(Some(instance.clone()));
            let event = tokio::select! {
                result = &mut task => Event::Ended(result),
                command = self.commands.recv() => Event::Command(command),
                _ = self.stop.wait_for(|s| *s) => Event::Command(None),
            };
            match event {
                Event::Ended(result) => {
                    self.current.send_replace(None);
                    let reason = describe_end(result);
                    let restarts = self.stats.restarts.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::warn!(target: "agent::supervisor", %reason, restarts, "restarting the node");
                    self.errors.push(format!("{reason}; restarted"));
                    if self.pause(self.config.supervisor.backoff_min).await {
                        return;
                    }
                }
                Event::Command(Some(Command::Kill)) => {
                    task.abort();
                    running = Some((instance, task));
                }
                Event::Command(Some(Command::Apply { desired, reply })) => {
                    let (status, now) = self.apply(desired, (instance, task)).await;
                    running = now;
                    let _ = reply.send(status);
                }
                Event::Command(Some(Command::Reload { config, reply })) => {
                    let (result, now) = self.reload(*config, (instance, task)).await;
                    running = now;
                    let _ = reply.send(result);
                }
                // Stopping, or every handle is gone.
                Event::Command(None) => {
                    self.stop_node(instance, task).await;
                    return;
                }
            }
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let min = self.config.supervisor.backoff_min;
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        min.saturating_mul(factor).min(self.config.supervisor.backoff_max)
    }

    /// Sleeps `delay`; true when the agent is stopping.
    async fn pause(&mut self, delay: Duration) -> bool {
        let stopped = tokio::select! {
            () = tokio::time::sleep(delay) => false,
            _ = self.stop.wait_for(|s| *s) => true,
        };
        stopped || *self.stop.borrow()
    }

    async fn start_with(&self, desired: Option<DesiredConfig>) -> Result<Running, String> {
        let node_config =
            self.config.node_config(&self.key, desired.as_ref()).map_err(|e| e.to_string())?;
        start_node(&self.config, node_config, desired.as_ref()).await
    }

    /// Stops the node: asks it to, then aborts it after `stop-timeout`.
    async fn stop_node(&self, instance: Arc<NodeInstance>, mut task: JoinHandle<()>) {
        self.current.send_replace(None);
        instance.handle.shutdown().await;
        if tokio::time::timeout(self.config.supervisor.stop_timeout, &mut task).await.is_err() {
            tracing::warn!(target: "agent::supervisor", "the node did not stop in time; aborted");
            task.abort();
            let _ = task.await;
        }
    }

    /// Restarts the node with `next` desired configuration; on failure, with the previous one.
    async fn restart_with(
        &mut self,
        next: Option<DesiredConfig>,
        previous: Option<DesiredConfig>,
        (instance, task): Running,
    ) -> (Result<(), String>, Option<Running>) {
        // Checked before the node goes down: a configuration that cannot map changes nothing.
        if let Err(error) = self.config.node_config(&self.key, next.as_ref()) {
            return (Err(error.to_string()), Some((instance, task)));
        }
        self.stop_node(instance, task).await;
        match self.start_with(next).await {
            Ok(started) => (Ok(()), Some(started)),
            Err(error) => {
                tracing::error!(target: "agent::supervisor", %error, "new configuration failed; rolling back");
                match self.start_with(previous).await {
                    Ok(started) => (Err(error), Some(started)),
                    // The loop retries with backoff.
                    Err(again) => {
                        (Err(format!("{error}; the previous one failed too: {again}")), None)
                    }
                }
            }
        }
    }

    async fn apply(
        &mut self,
        desired: DesiredConfig,
        running: Running,
    ) -> (ConfigStatus, Option<Running>) {
        if desired.version <= self.desired_seen {
            let status = self.stats.config_status().unwrap_or_default();
            return (status, Some(running));
        }
        self.desired_seen = desired.version;
        let previous = self.desired.clone();
        let version = desired.version;
        let (result, running) = self.restart_with(Some(desired.clone()), previous, running).await;
        let status = match result {
            Ok(()) => {
                tracing::info!(target: "agent::supervisor", version, "desired configuration applied");
                self.desired = Some(desired);
                ConfigStatus { version, applied: true, error: None }
            }
            Err(error) => {
                tracing::error!(target: "agent::supervisor", version, %error, "desired configuration failed");
                self.errors.push(format!("desired configuration {version} failed: {error}"));
                let error = contract::report::clamp_text(error, contract::report::MAX_TEXT);
                ConfigStatus { version, applied: false, error: Some(error) }
            }
        };
        self.stats.set_config_status(status.clone());
        (status, running)
    }

    async fn reload(
        &mut self,
        config: AgentConfig,
        (instance, task): Running,
    ) -> (Result<(), String>, Option<Running>) {
        if config.node == self.config.node {
            self.config = config;
            return (Ok(()), Some((instance, task)));
        }
        let desired = self.desired.clone();
        if let Err(error) = config.node_config(&self.key, desired.as_ref()) {
            return (Err(error.to_string()), Some((instance, task)));
        }
        let old = std::mem::replace(&mut self.config, config);
        self.stop_node(instance, task).await;
        match self.start_with(desired.clone()).await {
            Ok(started) => {
                tracing::info!(target: "agent::supervisor", "reloaded configuration applied");
                (Ok(()), Some(started))
            }
            Err(error) => {
                tracing::error!(target: "agent::supervisor", %error, "reloaded configuration failed; back to the previous one");
                self.config = old;
                // On failure the loop retries with backoff.
                (Err(error), self.start_with(desired).await.ok())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::describe_end;

    #[tokio::test]
    async fn a_panicking_node_task_is_told_apart_from_a_killed_one() {
        // The supervisor restarts on any end of the node's task (the kill path is exercised 20
        // times in tests/agent/supervise.rs); here: a panic is recognised and its message kept.
        let panicked = tokio::spawn(async { panic!("swarm poisoned") });
        assert_eq!(describe_end(panicked.await), "the node panicked: swarm poisoned");
        let formatted = tokio::spawn(async { panic!("peer {} misbehaved", 7) });
        assert_eq!(describe_end(formatted.await), "the node panicked: peer 7 misbehaved");
        let killed = tokio::spawn(std::future::pending::<()>());
        killed.abort();
        assert_eq!(describe_end(killed.await), "the node's task was killed");
        assert_eq!(describe_end(tokio::spawn(async {}).await), "the node stopped");
    }
}
