//! `wakufleet node`: one embedded Waku node, configured with nwaku's flag names (or a TOML file
//! whose keys are those names, like nwaku's `--config-file`), serving nwaku's REST API and
//! Prometheus metrics. Existing scripts, Ansible roles and Consul checks carry over.
//!
//! One deliberate difference: `--nodekey` takes a keystore file, not a raw hex key, because
//! private keys never go on the command line here. `wakufleet key import` converts a hex key.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use clap::Args;
use libp2p::Multiaddr;
use node::{
    config::NodeConfig,
    rest::{self, DEFAULT_CACHE_CAPACITY},
    service,
};
use serde::Deserialize;

use super::key::unlock;
use crate::{files, password::PasswordArgs};

/// Options shared by the command line and the TOML file (keys are the flag names).
#[derive(Debug, Default, Clone, Args, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub(crate) struct NodeOptions {
    /// Keystore file of the node key (a fresh key when absent).
    #[arg(long, value_name = "KEYSTORE")]
    nodekey: Option<PathBuf>,
    /// Address to listen on (default 0.0.0.0).
    #[arg(long)]
    listen_address: Option<IpAddr>,
    /// Address announced in the ENR (default: the listen address, or 127.0.0.1).
    #[arg(long)]
    ext_ip: Option<IpAddr>,
    /// libp2p TCP port (default 60000).
    #[arg(long)]
    tcp_port: Option<u16>,
    /// Listen for WebSocket connections (js-waku speaks only WebSocket).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    websocket_support: Option<bool>,
    /// WebSocket port (default 8000); with --websocket-secure-support the WSS port.
    #[arg(long)]
    websocket_port: Option<u16>,
    /// Serve secure WebSocket (WSS) instead of plain WebSocket, with the files below.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    websocket_secure_support: Option<bool>,
    /// WSS certificate chain (PEM).
    #[arg(long, value_name = "FILE")]
    websocket_secure_cert_path: Option<PathBuf>,
    /// WSS private key (PEM).
    #[arg(long, value_name = "FILE")]
    websocket_secure_key_path: Option<PathBuf>,
    /// Extra CA or certificate (PEM) to trust when dialing `/wss` peers (repeatable).
    #[arg(long = "tls-trust", value_name = "FILE")]
    #[serde(alias = "tls-trust")]
    tls_trust: Vec<PathBuf>,
    /// Cluster id (default 0).
    #[arg(long)]
    cluster_id: Option<u16>,
    /// Shard to relay (repeatable; default 0).
    #[arg(long = "shard")]
    #[serde(alias = "shard")]
    shards: Vec<u16>,
    /// Shards in the network, for autosharding (default 1).
    #[arg(long)]
    num_shards_in_network: Option<u16>,
    /// Relay messages (default true).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    relay: Option<bool>,
    /// Archive relayed messages and serve store queries.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    store: Option<bool>,
    /// The archive: `sqlite://path` or `postgres://…` (default sqlite://store.sqlite3).
    #[arg(long)]
    store_message_db_url: Option<String>,
    /// Retention: `time:<seconds>` or `size:<n>GB` (also MB, KB).
    #[arg(long)]
    store_message_retention_policy: Option<String>,
    /// Serve filter v2: push matching relayed messages to light clients.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    filter: Option<bool>,
    /// Serve lightpush (v3 and legacy v2): relay what light clients push.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    lightpush: Option<bool>,
    /// Serve peer exchange (offer the peers discv5 and DNS found).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    peer_exchange: Option<bool>,
    /// Peer to keep connected, a multiaddr with /p2p (repeatable).
    #[arg(long = "staticnode")]
    #[serde(alias = "staticnode")]
    staticnodes: Vec<String>,
    /// EIP-1459 tree to bootstrap from (repeatable).
    #[arg(long = "dns-discovery-url")]
    #[serde(alias = "dns-discovery-url")]
    dns_discovery_urls: Vec<String>,
    /// DNS server for the trees: ip (port 53) or ip:port (default: the system resolver).
    #[arg(long = "dns-addrs-name-server")]
    #[serde(alias = "dns-addrs-name-server")]
    dns_addrs_name_servers: Vec<String>,
    /// discv5 peer discovery, with Waku's `d5waku` protocol id.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    discv5_discovery: Option<bool>,
    /// discv5 UDP port (default 9000).
    #[arg(long)]
    discv5_udp_port: Option<u16>,
    /// discv5 bootstrap ENR (repeatable).
    #[arg(long = "discv5-bootstrap-node")]
    #[serde(alias = "discv5-bootstrap-node")]
    discv5_bootstrap_nodes: Vec<String>,
    /// Most connected peers (default 50).
    #[arg(long)]
    max_connections: Option<usize>,
    /// Most peers per IP address, 0 for no limit (default 5).
    #[arg(long)]
    ip_colocation_limit: Option<usize>,
    /// Serve the REST API.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    rest: Option<bool>,
    /// REST address (default 127.0.0.1).
    #[arg(long)]
    rest_address: Option<IpAddr>,
    /// REST port (default 8645).
    #[arg(long)]
    rest_port: Option<u16>,
    /// Messages cached per subscribed topic for REST reads (default 50).
    #[arg(long)]
    rest_relay_cache_capacity: Option<usize>,
    /// Serve Prometheus metrics.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    metrics_server: Option<bool>,
    /// Metrics address (default 127.0.0.1).
    #[arg(long)]
    metrics_server_address: Option<IpAddr>,
    /// Metrics port (default 8008).
    #[arg(long)]
    metrics_server_port: Option<u16>,
    /// Largest message in bytes (default 153600, nwaku's 150 KiB).
    #[arg(long)]
    max_msg_size: Option<usize>,
}

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

impl NodeOptions {
    /// Command-line values over file values.
    fn merge(self, file: Self) -> Self {
        fn list<T>(cli: Vec<T>, file: Vec<T>) -> Vec<T> {
            if cli.is_empty() { file } else { cli }
        }
        Self {
            nodekey: self.nodekey.or(file.nodekey),
            listen_address: self.listen_address.or(file.listen_address),
            ext_ip: self.ext_ip.or(file.ext_ip),
            tcp_port: self.tcp_port.or(file.tcp_port),
            websocket_support: self.websocket_support.or(file.websocket_support),
            websocket_port: self.websocket_port.or(file.websocket_port),
            websocket_secure_support: self
                .websocket_secure_support
                .or(file.websocket_secure_support),
            websocket_secure_cert_path: self
                .websocket_secure_cert_path
                .or(file.websocket_secure_cert_path),
            websocket_secure_key_path: self
                .websocket_secure_key_path
                .or(file.websocket_secure_key_path),
            tls_trust: list(self.tls_trust, file.tls_trust),
            cluster_id: self.cluster_id.or(file.cluster_id),
            shards: list(self.shards, file.shards),
            num_shards_in_network: self.num_shards_in_network.or(file.num_shards_in_network),
            relay: self.relay.or(file.relay),
            peer_exchange: self.peer_exchange.or(file.peer_exchange),
            lightpush: self.lightpush.or(file.lightpush),
            filter: self.filter.or(file.filter),
            store: self.store.or(file.store),
            store_message_db_url: self.store_message_db_url.or(file.store_message_db_url),
            store_message_retention_policy: self
                .store_message_retention_policy
                .or(file.store_message_retention_policy),
            staticnodes: list(self.staticnodes, file.staticnodes),
            dns_discovery_urls: list(self.dns_discovery_urls, file.dns_discovery_urls),
            dns_addrs_name_servers: list(self.dns_addrs_name_servers, file.dns_addrs_name_servers),
            discv5_discovery: self.discv5_discovery.or(file.discv5_discovery),
            discv5_udp_port: self.discv5_udp_port.or(file.discv5_udp_port),
            discv5_bootstrap_nodes: list(self.discv5_bootstrap_nodes, file.discv5_bootstrap_nodes),
            max_connections: self.max_connections.or(file.max_connections),
            ip_colocation_limit: self.ip_colocation_limit.or(file.ip_colocation_limit),
            rest: self.rest.or(file.rest),
            rest_address: self.rest_address.or(file.rest_address),
            rest_port: self.rest_port.or(file.rest_port),
            rest_relay_cache_capacity: self
                .rest_relay_cache_capacity
                .or(file.rest_relay_cache_capacity),
            metrics_server: self.metrics_server.or(file.metrics_server),
            metrics_server_address: self.metrics_server_address.or(file.metrics_server_address),
            metrics_server_port: self.metrics_server_port.or(file.metrics_server_port),
            max_msg_size: self.max_msg_size.or(file.max_msg_size),
        }
    }

    fn node_config(&self, password: &PasswordArgs) -> anyhow::Result<NodeConfig> {
        let defaults = NodeConfig::default();
        let key = match &self.nodekey {
            Some(path) => load_node_key(path, password)?,
            None => defaults.key.clone(),
        };
        let static_nodes = self
            .staticnodes
            .iter()
            .map(|s| s.parse::<Multiaddr>().with_context(|| format!("--staticnode {s}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let dns_name_server =
            self.dns_addrs_name_servers.first().map(|s| parse_name_server(s)).transpose()?;
        for url in &self.dns_discovery_urls {
            url.parse::<node::enrtree::LinkEntry>()
                .with_context(|| format!("--dns-discovery-url {url}"))?;
        }
        let mut peer_manager = defaults.peer_manager.clone();
        if let Some(max) = self.max_connections {
            peer_manager.max_connections = max;
        }
        if let Some(limit) = self.ip_colocation_limit {
            peer_manager.max_peers_per_ip = limit;
        }
        let secure = self.websocket_secure_support.unwrap_or(false);
        let websocket_secure = if secure {
            let (Some(cert), Some(key)) =
                (&self.websocket_secure_cert_path, &self.websocket_secure_key_path)
            else {
                bail!(
                    "--websocket-secure-support needs --websocket-secure-cert-path and --websocket-secure-key-path"
                );
            };
            Some(node::config::WssConfig {
                port: self.websocket_port.unwrap_or(8000),
                cert_chain_pem: std::fs::read(cert)
                    .with_context(|| format!("{}", cert.display()))?,
                key_pem: std::fs::read(key).with_context(|| format!("{}", key.display()))?,
            })
        } else {
            None
        };
        let tls_trust_pem = self
            .tls_trust
            .iter()
            .map(|p| std::fs::read(p).with_context(|| format!("{}", p.display())))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let discv5 =
            self.discv5_discovery.unwrap_or(false).then(|| node::discovery_v5::Discv5Config {
                udp_port: self.discv5_udp_port.unwrap_or(9000),
                bootstrap: self.discv5_bootstrap_nodes.clone(),
            });
        Ok(NodeConfig {
            key,
            discv5,
            peer_exchange: self.peer_exchange.unwrap_or(false),
            lightpush: self.lightpush.unwrap_or(false),
            filter: self.filter.unwrap_or(false),
            store_url: self.store.unwrap_or(false).then(|| {
                self.store_message_db_url.clone().unwrap_or_else(|| "sqlite://store.sqlite3".into())
            }),
            store_retention: self
                .store_message_retention_policy
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e: String| anyhow::anyhow!("--store-message-retention-policy: {e}"))?,
            listen_ip: self.listen_address.unwrap_or(defaults.listen_ip),
            tcp_port: self.tcp_port.unwrap_or(defaults.tcp_port),
            // nwaku serves either plain or secure WebSocket on --websocket-port.
            websocket_port: (self.websocket_support.unwrap_or(false) && !secure)
                .then(|| self.websocket_port.unwrap_or(8000)),
            websocket_secure,
            tls_trust_pem,
            announce_ip: self.ext_ip,
            cluster_id: self.cluster_id.unwrap_or(defaults.cluster_id),
            shards: if self.shards.is_empty() {
                defaults.shards.clone()
            } else {
                self.shards.clone()
            },
            num_shards_in_network: self
                .num_shards_in_network
                .unwrap_or(defaults.num_shards_in_network),
            relay: self.relay.unwrap_or(true),
            max_message_size: self.max_msg_size.unwrap_or(defaults.max_message_size),
            static_nodes,
            dns_discovery_urls: self.dns_discovery_urls.clone(),
            dns_name_server,
            peer_manager,
            ..defaults
        })
    }
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

fn parse_name_server(s: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let ip: IpAddr =
        s.parse().with_context(|| format!("--dns-addrs-name-server {s}: not an ip or ip:port"))?;
    Ok(SocketAddr::new(ip, 53))
}

pub(crate) async fn run(args: NodeArgs) -> anyhow::Result<()> {
    let file = match &args.config_file {
        Some(path) => toml::from_str::<NodeOptions>(&files::read(path)?)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))?,
        None => NodeOptions::default(),
    };
    let options = args.options.merge(file);
    if options.peer_exchange == Some(true) || options.discv5_discovery == Some(true) {
        tracing::warn!(
            "peer exchange and discv5 are not served yet; the flags are accepted and ignored"
        );
    }
    let config = options.node_config(&args.password)?;
    let max_message_size = config.max_message_size;
    let (node, task) = service::start(config).await.context("starting the node")?;
    println!("peer id: {}", node.peer_id());
    for addr in node.listen_addrs() {
        println!("listening: {addr}");
    }
    println!("enr: {}", node.enr().to_base64());

    let mut servers = Vec::new();
    if options.rest.unwrap_or(false) {
        let addr = SocketAddr::new(
            options.rest_address.unwrap_or(IpAddr::from([127, 0, 0, 1])),
            options.rest_port.unwrap_or(8645),
        );
        let listener =
            tokio::net::TcpListener::bind(addr).await.with_context(|| format!("REST on {addr}"))?;
        println!("rest: http://{}", listener.local_addr()?);
        let capacity = options.rest_relay_cache_capacity.unwrap_or(DEFAULT_CACHE_CAPACITY);
        let router = rest::router(node.clone(), capacity, max_message_size);
        servers.push(tokio::spawn(async move { axum::serve(listener, router).await }));
    }
    if options.metrics_server.unwrap_or(false) {
        let addr = SocketAddr::new(
            options.metrics_server_address.unwrap_or(IpAddr::from([127, 0, 0, 1])),
            options.metrics_server_port.unwrap_or(8008),
        );
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
