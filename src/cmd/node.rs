//! `wakufleet node`: one embedded Waku node, configured with nwaku's flag names (or a TOML file
//! whose keys are those names, like nwaku's `--config-file`), serving nwaku's REST API and
//! Prometheus metrics. Existing scripts, Ansible roles and Consul checks carry over.
//!
//! One deliberate difference: `--nodekey` takes a keystore file, not a raw hex key, because
//! private keys never go on the command line here. `wakufleet key import` converts a hex key.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use node::{
    config::NodeConfig,
    options::{NodeContext, NodeOptions},
    rest, running,
};

use super::key::unlock;
use crate::{files, password::PasswordArgs};

#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// TOML file whose keys are the flag names; flags given on the command line win.
    #[arg(long, value_name = "FILE")]
    config_file: Option<PathBuf>,
    #[command(flatten)]
    options: NodeOptions,
    #[command(flatten)]
    password: PasswordArgs,
}

/// The node's configuration from the merged options: the key unlocked from `nodekey` (with
/// `--password-file`, or the file's `password-file`), a fresh one when absent.
fn node_config(options: &NodeOptions, password: &PasswordArgs) -> anyhow::Result<NodeConfig> {
    let key = match &options.nodekey {
        Some(path) => {
            let password = password.clone().or_file(options.password_file.clone());
            load_node_key(path, &password)?
        }
        None => node::crypto::generate_key(),
    };
    let data_dir = PathBuf::from(".");
    options
        .node_config(NodeContext { key, data_dir })
        .map_err(|e| anyhow::anyhow!("--{} {}: {}", e.key, e.value, e.message))
}

fn load_node_key(path: &Path, password: &PasswordArgs) -> anyhow::Result<k256::ecdsa::SigningKey> {
    if !path.exists() {
        let text = path.to_string_lossy();
        let hex = text.trim_start_matches("0x");
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!(
                "--nodekey takes a keystore file, not a raw key: private keys never go on the command line. Put the hex in a file and run `wakufleet key import <file> node-key.json`"
            );
        }
    }
    unlock(path, password)
}

pub(crate) async fn run(args: NodeArgs) -> anyhow::Result<()> {
    let file = match &args.config_file {
        Some(path) => {
            let text = node::config_env::expand_from_env(&files::read(path)?)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            toml::from_str::<NodeOptions>(&text)
                .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))?
        }
        None => NodeOptions::default(),
    };
    let options = args.options.over(file);
    let config = node_config(&options, &args.password)?;
    let max_message_size = config.max_message_size;
    // Checked before anything starts: an open port without a token never listens, not even
    // briefly, and a refusal is the only line printed.
    let rest_access = options.rest_socket().map(|addr| options.rest_access(addr)).transpose()?;
    let (node, task) = running::start(config).await.context("starting the node")?;
    println!("peer id: {}", node.peer_id());
    for addr in node.listen_addrs() {
        println!("listening: {addr}");
    }
    println!("enr: {}", node.enr().to_base64());

    let mut servers = Vec::new();
    if let (Some(addr), Some(access)) = (options.rest_socket(), rest_access) {
        let listener =
            tokio::net::TcpListener::bind(addr).await.with_context(|| format!("REST on {addr}"))?;
        println!("rest: http://{}", listener.local_addr()?);
        let router =
            access.guard(rest::router(node.clone(), options.rest_settings(max_message_size)));
        servers.push(tokio::spawn(async move { axum::serve(listener, router).await }));
    }
    if let Some(addr) = options.metrics_socket() {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("metrics on {addr}"))?;
        println!("metrics: http://{}/metrics", listener.local_addr()?);
        let router = rest::metrics_router(node.clone());
        servers.push(tokio::spawn(async move { axum::serve(listener, router).await }));
    }
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    node.shutdown().await;
    let _ = task.await;
    for server in servers {
        server.abort();
    }
    Ok(())
}
