//! `wakufleet controller`: the central service — HTTP API, reconcile loop, built-in DNS server
//! and external publishers — from a TOML file (`deploy/controller.example.toml`). Secrets
//! (admin token, keystore passwords, TSIG keys) come only from files or the environment.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use clap::Args;
use controller::{
    app::Controller,
    config::{ControllerConfig, PublisherConfig},
    keyring::Keyring,
};

#[derive(Debug, Args)]
pub(crate) struct ControllerArgs {
    /// The configuration file (TOML). Without one, the defaults: an SQLite file in the
    /// working directory, the API on 127.0.0.1:8080, no DNS server.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Overrides `listen`.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Overrides `database_url` (`sqlite://FILE` or `postgres://…`). Put a password in
    /// `$WAKUFLEET_DATABASE_URL` instead: argv is visible to every user of the host.
    #[arg(long, env = "WAKUFLEET_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Check the configuration, unlock the keys and build the publishers, then exit.
    #[arg(long)]
    check: bool,
    /// With `--check`: a controller is running with an earlier version of this configuration
    /// (a change checked before the restart), so its listen and DNS ports are not checked.
    #[arg(long, requires = "check")]
    while_running: bool,
}

impl ControllerArgs {
    /// Whether this run only checks (and so should print its verdict, not a service's log).
    pub(crate) fn check_only(&self) -> bool {
        self.check
    }
}

pub(crate) async fn run(args: ControllerArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => ControllerConfig::from_file(path)?,
        None => ControllerConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(url) = args.database_url {
        config.database_url = url;
    }
    let keyring = Keyring::unlock(&config.keys).context("signing keys")?;
    let publishers = config
        .publishers
        .iter()
        .map(PublisherConfig::build)
        .collect::<Result<Vec<_>, _>>()
        .context("publishers")?;
    if args.check {
        let ports = if args.while_running {
            controller::preflight::Ports::HeldByRunningController
        } else {
            controller::preflight::Ports::MustBeFree
        };
        let checked = controller::preflight::check(&config, &keyring, &publishers, ports).await?;
        println!(
            "configuration ok: {} key(s) unlocked, {} tree(s), {} publisher(s), {} database \
             reachable and migrated, {}",
            checked.keys,
            checked.trees,
            checked.publishers,
            checked.database,
            if args.while_running { "ports not checked (in use)" } else { "ports free" }
        );
        return Ok(());
    }
    let names: Vec<String> = publishers.iter().map(|p| p.name()).collect();
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    let dashboard = config.dashboard.enabled;
    let controller = Controller::start(config, keyring, publishers).await?;
    let base = format!("{scheme}://{}", controller.http_addr());
    println!("wakufleet controller");
    println!("  API:        {base}/api/v1 (OpenAPI at /openapi.json)");
    println!("  metrics:    {base}/metrics");
    if dashboard {
        println!("  dashboard:  {base}/dashboard");
    }
    match controller.dns_addr() {
        Some(dns) => println!("  DNS server: {dns} (UDP and TCP)"),
        None => println!("  DNS server: off"),
    }
    println!("  publishers: {}", if names.is_empty() { "none".into() } else { names.join(", ") });
    wait_for_stop().await?;
    tracing::info!(target: "ctl", "stopping");
    controller.shutdown().await;
    Ok(())
}

/// Ctrl-C or, under systemd and other supervisors, SIGTERM.
pub(crate) async fn wait_for_stop() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}
