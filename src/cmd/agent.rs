//! `wakufleet agent --config agent.toml`: the embedded node, supervised, reporting to the
//! controller, with nwaku's REST and metrics ports. SIGHUP reloads the file's `[node]`
//! section; SIGTERM or Ctrl-C stop everything cleanly.
//!
//! The node key comes from the keystore and password file `agent.toml` names: never argv.

use std::path::PathBuf;

use agent::{Agent, AgentConfig};
use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct AgentArgs {
    /// The agent's configuration file.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

pub(crate) async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let config = AgentConfig::load(&args.config)?;
    let key = config.node_key()?;
    let agent = Agent::start(config, key).await.context("starting the agent")?;
    if let Some(instance) = agent.supervisor().current() {
        println!("peer id: {}", instance.handle.peer_id());
        println!("enr: {}", instance.handle.enr().to_base64());
    }
    if let Some(addr) = agent.rest_addr() {
        println!("rest: http://{addr}");
    }
    if let Some(addr) = agent.metrics_addr() {
        println!("metrics: http://{addr}/metrics");
    }
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    loop {
        tokio::select! {
            _ = hangup.recv() => match AgentConfig::load(&args.config) {
                Ok(config) => match agent.reload(config).await {
                    Ok(()) => tracing::info!(target: "agent", "configuration reloaded"),
                    Err(error) => tracing::error!(target: "agent", %error, "reload failed; the node runs the previous configuration"),
                },
                Err(error) => tracing::error!(target: "agent", %error, "reload refused: the file is not valid"),
            },
            _ = terminate.recv() => break,
            reason = agent.failed() => {
                agent.shutdown().await;
                anyhow::bail!("the agent stopped: {reason}");
            }
            result = tokio::signal::ctrl_c() => {
                result.context("waiting for Ctrl-C")?;
                break;
            }
        }
    }
    agent.shutdown().await;
    Ok(())
}
