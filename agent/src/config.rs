//! `agent.toml`: where the controller is, how often to report, how to supervise the node, the
//! compatibility ports, and the node itself under nwaku's flag names (the keys `wakufleet node
//! --config-file` takes). Unknown keys are errors, so a typo never silently falls back to a
//! default.
//!
//! ```toml
//! data-dir = "/var/lib/wakufleet-agent"
//!
//! [controller]
//! url = "https://controller.example.org:8443"
//! ca-file = "/etc/wakufleet/fleet-ca.pem"       # trusted besides the web PKI roots
//! token-file = "/etc/wakufleet/enrol-token"   # one-time; only read until enrolled
//! report-interval = "30s"
//!
//! [compat]
//! rest-address = "127.0.0.1:8645"             # nwaku's REST port: Consul checks keep working
//! metrics-address = "127.0.0.1:8008"          # nwaku's metrics port
//!
//! [node]
//! nodekey = "/etc/wakufleet/node-key.json"    # a Web3 keystore, never a raw key
//! password-file = "/etc/wakufleet/node-key.password"
//! tcp-port = 60000
//! cluster-id = 1
//! shard = [0, 1]
//! store = true
//! ```

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use k256::ecdsa::SigningKey;
use libp2p::{Multiaddr, PeerId};
use node::config::NodeConfig;
use serde::{Deserialize, Deserializer};

use controller::report::DesiredConfig;

use crate::error::ConfigError;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AgentConfig {
    /// Enrolment, the report counter and the report queue live here.
    pub data_dir: PathBuf,
    /// The controller.
    pub controller: ControllerSection,
    /// Restart policy.
    #[serde(default)]
    pub supervisor: SupervisorSection,
    /// nwaku-compatible ports.
    #[serde(default)]
    pub compat: CompatSection,
    /// The store probe (store nodes only).
    #[serde(default)]
    pub probe: ProbeSection,
    /// The node.
    #[serde(default)]
    pub node: NodeSection,
}

/// `[controller]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ControllerSection {
    /// Base URL, e.g. `http://controller:8080`.
    pub url: String,
    /// File holding the one-time enrolment token (first line). Only read until enrolled.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// With an `https://` URL: PEM certificates trusted besides the web PKI roots (the
    /// fleet's private CA, or the controller's own certificate).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Operator's label for this node (defaults to the token's).
    #[serde(default)]
    pub label: Option<String>,
    /// Roles besides the services the node runs (e.g. `boot`), reported to the controller,
    /// whose tree policies select on them.
    #[serde(default)]
    pub roles: Vec<String>,
    /// How often figures are measured and reported. Default: 30 s.
    #[serde(default = "defaults::report_interval", deserialize_with = "duration")]
    pub report_interval: Duration,
    /// Limit on each request to the controller. Default: 10 s.
    #[serde(default = "defaults::request_timeout", deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// Reports kept on disk while the controller is away; beyond, the oldest are merged.
    /// Default: 2880 (a day at 30 s).
    #[serde(default = "defaults::queue_limit")]
    pub queue_limit: usize,
}

/// `[supervisor]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct SupervisorSection {
    /// How long a start may take until the node answers. Default: 15 s.
    #[serde(deserialize_with = "duration")]
    pub start_timeout: Duration,
    /// Delay before restarting a node that was healthy. Default: 200 ms.
    #[serde(deserialize_with = "duration")]
    pub backoff_min: Duration,
    /// Longest delay between failed starts (doubling from `backoff-min`). Default: 30 s.
    #[serde(deserialize_with = "duration")]
    pub backoff_max: Duration,
    /// How long a stopping node may take before its task is aborted. Default: 5 s.
    #[serde(deserialize_with = "duration")]
    pub stop_timeout: Duration,
}

impl Default for SupervisorSection {
    fn default() -> Self {
        Self {
            start_timeout: Duration::from_secs(15),
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(5),
        }
    }
}

/// `[compat]`: the ports existing Consul checks, Ansible roles and Prometheus scrape.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CompatSection {
    /// nwaku's REST API (`/health`, `/debug/v1/info`, `/admin/v1/peers`…); off when absent.
    #[serde(default)]
    pub rest_address: Option<SocketAddr>,
    /// Prometheus `/metrics` with nwaku's names and the agent's own; off when absent.
    #[serde(default)]
    pub metrics_address: Option<SocketAddr>,
}

/// `[probe]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ProbeSection {
    /// Probe the store on store nodes. Default: true.
    pub enabled: bool,
    /// How long to wait for the probe message in the store. Default: 5 s.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// The probe's content topic.
    pub content_topic: String,
}

impl Default for ProbeSection {
    fn default() -> Self {
        Self {
            enabled: true,
            timeout: Duration::from_secs(5),
            content_topic: "/wakufleet/1/store-probe/proto".into(),
        }
    }
}

/// `[node]`: nwaku's flag names, as `wakufleet node --config-file` reads them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct NodeSection {
    /// Keystore of the node key. Required: the node's identity must survive restarts.
    pub nodekey: Option<PathBuf>,
    /// File whose first line is the keystore's password.
    pub password_file: Option<PathBuf>,
    /// Listen address. Default: 0.0.0.0.
    pub listen_address: Option<IpAddr>,
    /// Address announced in the ENR.
    pub ext_ip: Option<IpAddr>,
    /// libp2p TCP port. Default: 60000.
    pub tcp_port: Option<u16>,
    /// WebSocket listener.
    pub websocket_support: Option<bool>,
    /// WebSocket port. Default: 8000.
    pub websocket_port: Option<u16>,
    /// Cluster id. Default: 0.
    pub cluster_id: Option<u16>,
    /// Shards to relay. Default: [0].
    #[serde(alias = "shards")]
    pub shard: Vec<u16>,
    /// Shards in the network for autosharding.
    pub num_shards_in_network: Option<u16>,
    /// Relay. Default: true.
    pub relay: Option<bool>,
    /// Archive and serve store queries.
    pub store: Option<bool>,
    /// The archive database. Default: `sqlite://<data-dir>/store.sqlite3`.
    pub store_message_db_url: Option<String>,
    /// `time:<seconds>` or `size:<n>GB|MB|KB`.
    pub store_message_retention_policy: Option<String>,
    /// Serve filter.
    pub filter: Option<bool>,
    /// Serve lightpush.
    pub lightpush: Option<bool>,
    /// Serve peer exchange.
    pub peer_exchange: Option<bool>,
    /// Peers to keep connected (multiaddrs with `/p2p/`).
    pub staticnode: Vec<String>,
    /// EIP-1459 trees to bootstrap from.
    pub dns_discovery_url: Vec<String>,
    /// DNS server for the trees (`ip` or `ip:port`).
    pub dns_addrs_name_server: Option<String>,
    /// discv5.
    pub discv5_discovery: Option<bool>,
    /// discv5 UDP port. Default: 9000.
    pub discv5_udp_port: Option<u16>,
    /// discv5 bootstrap ENRs.
    pub discv5_bootstrap_node: Vec<String>,
    /// Most connections. Default: 50.
    pub max_connections: Option<usize>,
    /// Most peers per IP (0: no limit). Default: 5.
    pub ip_colocation_limit: Option<usize>,
    /// Peer ids of the fleet's own nodes, for the fleet-dependence figure (static nodes and
    /// tree entries count as fleet nodes too).
    pub fleet_peer: Vec<String>,
    /// Largest message. Default: 150 KiB.
    pub max_msg_size: Option<usize>,
}

/// Roles that switch node services on; other roles are labels for the controller.
pub const SERVICE_ROLES: [&str; 5] = ["relay", "store", "filter", "lightpush", "peer-exchange"];

mod defaults {
    use std::time::Duration;

    pub(super) fn report_interval() -> Duration {
        Duration::from_secs(30)
    }
    pub(super) fn request_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub(super) fn queue_limit() -> usize {
        2880
    }
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("{text:?} is not a duration ({e})")))
}

impl AgentConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(&text).map_err(|error| match error {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.into(), message },
            other => other,
        })
    }

    /// Parses and checks TOML text (errors name the file as `agent.toml`).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "agent.toml".into(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: URL, intervals, bounds, and that the node settings map.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let url = &self.controller.url;
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return invalid(format!("controller.url {url:?}: must be http:// or https://"));
        }
        if url.starts_with("http://") && self.controller.ca_file.is_some() {
            return invalid("controller.ca-file is for an https:// controller.url".into());
        }
        if self.controller.report_interval < Duration::from_millis(50) {
            return invalid("controller.report-interval must be at least 50ms".into());
        }
        if self.controller.queue_limit < 2 || self.controller.queue_limit > 100_000 {
            return invalid("controller.queue-limit must be in 2..=100000".into());
        }
        if self.supervisor.backoff_max < self.supervisor.backoff_min {
            return invalid("supervisor.backoff-max is below backoff-min".into());
        }
        for role in &self.controller.roles {
            if role.is_empty() || role.len() > 32 {
                return invalid(format!("controller.roles: {role:?} must be 1..32 characters"));
            }
        }
        // Map once with a throwaway key so bad multiaddrs, URLs and ids fail at load time.
        self.node_config(&node::crypto::generate_key(), None).map(drop)
    }

    /// The node's configuration: the file's `[node]` section with the controller's desired
    /// configuration over it.
    pub fn node_config(
        &self,
        key: &SigningKey,
        desired: Option<&DesiredConfig>,
    ) -> Result<NodeConfig, ConfigError> {
        let n = &self.node;
        let invalid = |m: String| ConfigError::Invalid(format!("node.{m}"));
        let defaults = NodeConfig::default();
        let static_nodes = n
            .staticnode
            .iter()
            .map(|s| s.parse::<Multiaddr>().map_err(|e| invalid(format!("staticnode {s:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        for url in &n.dns_discovery_url {
            url.parse::<node::enrtree::LinkEntry>()
                .map_err(|e| invalid(format!("dns-discovery-url {url:?}: {e}")))?;
        }
        let fleet_peers = n
            .fleet_peer
            .iter()
            .map(|s| s.parse::<PeerId>().map_err(|e| invalid(format!("fleet-peer {s:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let dns_name_server = n
            .dns_addrs_name_server
            .as_deref()
            .map(|s| {
                s.parse::<SocketAddr>()
                    .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                    .map_err(|_| invalid(format!("dns-addrs-name-server {s:?}: not ip or ip:port")))
            })
            .transpose()?;
        let store_retention = n
            .store_message_retention_policy
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e: String| invalid(format!("store-message-retention-policy: {e}")))?;
        let mut peer_manager = defaults.peer_manager.clone();
        if let Some(max) = n.max_connections {
            peer_manager.max_connections = max;
        }
        if let Some(limit) = n.ip_colocation_limit {
            peer_manager.max_peers_per_ip = limit;
        }
        let mut relay = n.relay.unwrap_or(true);
        let mut store = n.store.unwrap_or(false);
        let mut filter = n.filter.unwrap_or(false);
        let mut lightpush = n.lightpush.unwrap_or(false);
        let mut peer_exchange = n.peer_exchange.unwrap_or(false);
        let mut shards = if n.shard.is_empty() { defaults.shards.clone() } else { n.shard.clone() };
        if let Some(desired) = desired {
            desired.check().map_err(ConfigError::Invalid)?;
            if let Some(roles) = &desired.roles {
                let has = |r: &str| roles.iter().any(|x| x == r);
                (relay, store, filter, lightpush, peer_exchange) = (
                    has("relay"),
                    has("store"),
                    has("filter"),
                    has("lightpush"),
                    has("peer-exchange"),
                );
            }
            if let Some(desired_shards) = &desired.shards {
                shards.clone_from(desired_shards);
            }
            if let Some(max) = desired.max_connections {
                peer_manager.max_connections = max;
            }
        }
        if shards.iter().any(|&s| s > node::topics::MAX_SHARD) {
            return Err(invalid(format!("shard: at most {}", node::topics::MAX_SHARD)));
        }
        let store_url = store.then(|| {
            n.store_message_db_url.clone().unwrap_or_else(|| {
                format!("sqlite://{}", self.data_dir.join("store.sqlite3").display())
            })
        });
        Ok(NodeConfig {
            key: key.clone(),
            listen_ip: n.listen_address.unwrap_or(defaults.listen_ip),
            tcp_port: n.tcp_port.unwrap_or(defaults.tcp_port),
            websocket_port: n
                .websocket_support
                .unwrap_or(false)
                .then(|| n.websocket_port.unwrap_or(8000)),
            announce_ip: n.ext_ip,
            cluster_id: n.cluster_id.unwrap_or(defaults.cluster_id),
            shards,
            num_shards_in_network: n
                .num_shards_in_network
                .unwrap_or(defaults.num_shards_in_network),
            relay,
            max_message_size: n.max_msg_size.unwrap_or(defaults.max_message_size),
            static_nodes,
            fleet_peers,
            dns_discovery_urls: n.dns_discovery_url.clone(),
            dns_name_server,
            store_url,
            store_retention,
            filter,
            lightpush,
            peer_exchange,
            discv5: n.discv5_discovery.unwrap_or(false).then(|| node::discovery_v5::Discv5Config {
                udp_port: n.discv5_udp_port.unwrap_or(9000),
                bootstrap: n.discv5_bootstrap_node.clone(),
            }),
            peer_manager,
            agent_version: format!("wakufleet-agent/{}", env!("CARGO_PKG_VERSION")),
            // A desired configuration that changes shards or services restarts the node with a
            // new record: it must carry a higher seq.
            enr_file: Some(self.data_dir.join("node.enr")),
            ..defaults
        })
    }

    /// Unlocks the node key from `[node] nodekey` with `password-file`. Neither the key nor the
    /// password appears in any error.
    pub fn node_key(&self) -> Result<SigningKey, ConfigError> {
        let (Some(path), Some(password_file)) = (&self.node.nodekey, &self.node.password_file)
        else {
            return Err(ConfigError::Invalid(
                "node.nodekey and node.password-file are required: the node's identity (its enrolled key) must survive restarts; create one with `wakufleet key new`".into(),
            ));
        };
        let key_error = |message: String| ConfigError::Key { path: path.clone(), message };
        let text = std::fs::read_to_string(path).map_err(|e| key_error(e.to_string()))?;
        let keystore: node::keystore::Keystore =
            text.parse().map_err(|_| key_error("not a Web3 keystore".into()))?;
        let password = node::keystore::read_password_file(password_file)
            .map_err(|e| key_error(format!("password file {}: {e}", password_file.display())))?;
        keystore.decrypt(password.as_bytes()).map_err(|e| key_error(e.to_string()))
    }

    /// The roles reported for a node running `config`: the desired roles when the controller
    /// set them, else the configured labels and the services.
    pub fn roles(&self, config: &NodeConfig, desired: Option<&DesiredConfig>) -> Vec<String> {
        if let Some(roles) = desired.and_then(|d| d.roles.clone()) {
            return roles;
        }
        let mut roles = self.controller.roles.clone();
        let services = [
            ("relay", config.relay),
            ("store", config.store_url.is_some()),
            ("filter", config.filter),
            ("lightpush", config.lightpush),
            ("peer-exchange", config.peer_exchange),
        ];
        for (role, on) in services {
            if on && !roles.iter().any(|r| r == role) {
                roles.push(role.into());
            }
        }
        roles.truncate(16);
        roles
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        data-dir = "/tmp/agent"
        [controller]
        url = "http://127.0.0.1:8080"
    "#;

    #[test]
    fn minimal_file_gets_the_documented_defaults() {
        let config = AgentConfig::parse(MINIMAL).unwrap();
        assert_eq!(config.controller.report_interval, Duration::from_secs(30));
        assert_eq!(config.controller.queue_limit, 2880);
        assert_eq!(config.supervisor.backoff_min, Duration::from_millis(200));
        assert_eq!(config.compat.rest_address, None);
        let node = config.node_config(&node::crypto::generate_key(), None).unwrap();
        assert_eq!(node.tcp_port, 60_000);
        assert!(node.relay && node.store_url.is_none());
    }

    #[test]
    fn malformed_files_name_the_problem() {
        let cases = [
            ("data-dir = ", "agent.toml"),
            (
                "data-dir = \"/x\"\n[controller]\nurl = \"http://a\"\nreport-intervall = \"1s\"",
                "unknown field `report-intervall`",
            ),
            (
                "data-dir = \"/x\"\n[controller]\nurl = \"http://a\"\nreport-interval = \"soon\"",
                "\"soon\" is not a duration",
            ),
            ("data-dir = \"/x\"\n[controller]\nurl = \"ftp://a\"", "must be http:// or https://"),
            (
                "data-dir = \"/x\"\n[controller]\nurl = \"http://a\"\nca-file = \"/ca.pem\"",
                "ca-file is for an https://",
            ),
            (
                "data-dir = \"/x\"\n[controller]\nurl = \"http://a\"\n[node]\nstaticnode = [\"nope\"]",
                "node.staticnode \"nope\"",
            ),
            (
                "data-dir = \"/x\"\n[controller]\nurl = \"http://a\"\n[node]\ntcp-port = 70000",
                "tcp-port",
            ),
            ("[controller]\nurl = \"http://a\"", "missing field `data-dir`"),
        ];
        for (text, needle) in cases {
            let error = AgentConfig::parse(text).unwrap_err().to_string();
            assert!(error.contains(needle), "{text:?}: {error:?} lacks {needle:?}");
        }
    }

    #[test]
    fn desired_roles_and_shards_override_the_file() {
        let config =
            AgentConfig::parse(&format!("{MINIMAL}\n[node]\nshard = [0]\nfilter = true")).unwrap();
        let desired = DesiredConfig {
            version: 2,
            roles: Some(vec!["store".into(), "relay".into()]),
            shards: Some(vec![1, 2]),
            max_connections: Some(80),
        };
        let node = config.node_config(&node::crypto::generate_key(), Some(&desired)).unwrap();
        assert_eq!(node.shards, [1, 2]);
        assert!(node.relay && !node.filter);
        assert!(node.store_url.unwrap().ends_with("/tmp/agent/store.sqlite3"));
        assert_eq!(node.peer_manager.max_connections, 80);
    }
}
