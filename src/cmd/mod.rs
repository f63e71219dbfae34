//! Subcommands. Each file holds one family: `up`, `node`, `controller`, `agent`, `token`,
//! `access`, `key`, `tree`, `bench`, `health`.

mod access;
mod agent;
mod api;
mod bench;
mod bench_dns;
mod bench_ingest;
mod bench_node;
mod bench_store;
mod controller;
mod health;
mod key;
mod node;
mod sim;
mod sim_churn;
mod sim_cpu;
mod sim_files;
mod sim_fleet;
mod sim_hostile;
mod sim_hosts;
mod sim_links;
mod sim_plot;
mod sim_traffic;
mod token;
mod tree;
mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// wakufleet: the control plane for Waku v2 fleets.
#[derive(Debug, Parser)]
#[command(name = "wakufleet", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text (coloured only on a terminal) or as JSON objects for log shippers.
    /// The level comes from `$WAKUFLEET_LOG` (e.g. `info`, `warn,ctl::dns=debug`).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub(crate) log_format: LogFormat,
}

/// How log lines are written (to standard error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line: timestamp, level, target, fields.
    Json,
}

impl Cli {
    /// The log level without `$WAKUFLEET_LOG`: services say what they do (enrolments, health
    /// changes, builds, signatures, publications at `info`); one-shot commands and the local
    /// demo only warn, so their own output stays readable.
    pub(crate) fn default_log_level(&self) -> &'static str {
        match &self.command {
            Command::Controller(args) if args.check_only() => "warn",
            Command::Controller(_) | Command::Agent(_) | Command::Node(_) => "info",
            _ => "warn",
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a local fleet: controller, DNS server, agents and nodes, a signed tree, one node
    /// joining from it.
    Up(up::UpArgs),
    /// Run one embedded Waku node (nwaku's flags, REST API and metrics).
    Node(Box<node::NodeArgs>),
    /// Run the controller: fleet registry, tree building and signing, publication.
    Controller(controller::ControllerArgs),
    /// Run a node supervised, reporting its health to the controller.
    Agent(agent::AgentArgs),
    /// Enrolment tokens for agents, from the controller's API.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// People's named access tokens and their roles, from the controller's API (admins).
    #[command(subcommand)]
    Access(access::AccessCommand),
    /// Signing keys, kept only as encrypted Web3 keystores.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// EIP-1459 trees in go-ethereum's directory format: build, sign, verify, export, resolve.
    #[command(subcommand)]
    Tree(tree::TreeCommand),
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Many embedded nodes on this machine bootstrapping from a fleet's signed tree, measured
    /// into results.json.
    Sim(sim::SimArgs),
    /// One of `sim --workers`'s processes: runs the clients it is asked for (stdin/stdout).
    #[command(hide = true)]
    SimWorker,
    /// Ask a `/health` URL once (container health checks): exit 0 when it answers 2xx.
    Health(health::HealthArgs),
}

impl Cli {
    /// Whether the command runs on one thread: a sim worker is one of several processes
    /// sharing the machine's cores, and one thread per process spares the wake-ups between
    /// threads that a thousand busy nodes otherwise pay on every message.
    pub(crate) fn single_threaded(&self) -> bool {
        matches!(self.command, Command::SimWorker)
    }
}

/// Runs the parsed command. `Ok` carries the exit code for commands that report partial
/// results (e.g. `tree resolve` finding bad entries).
pub(crate) async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Up(args) => up::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Node(args) => node::run(*args).await.map(|()| ExitCode::SUCCESS),
        Command::Controller(args) => controller::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Agent(args) => agent::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Token(command) => token::run(command).await.map(|()| ExitCode::SUCCESS),
        Command::Access(command) => access::run(command).await.map(|()| ExitCode::SUCCESS),
        Command::Key(command) => key::run(command).map(|()| ExitCode::SUCCESS),
        Command::Tree(command) => tree::run(command).await,
        Command::Bench(command) => bench::run(command).await.map(|()| ExitCode::SUCCESS),
        Command::Sim(args) => sim::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::SimWorker => sim_hosts::worker_main().await.map(|()| ExitCode::SUCCESS),
        Command::Health(args) => health::run(args).await.map(|()| ExitCode::SUCCESS),
    }
}
