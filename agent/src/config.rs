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
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use k256::ecdsa::SigningKey;
use node::{
    config::NodeConfig,
    options::{NodeContext, NodeOptions},
    tcp_transport::LinkModel,
};
use serde::{Deserialize, Deserializer};

use contract::desired::DesiredConfig;

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
    /// The node, under nwaku's flag names (the keys `wakufleet node --config-file` reads).
    /// `rest` and `metrics-server` here serve the compatibility ports when `[compat]` does not
    /// name them.
    #[serde(default)]
    pub node: NodeOptions,
    /// Delays and failures of the node's links, for an agent embedded in a simulation of many
    /// hosts on one machine (`wakufleet sim`); never read from the file.
    #[serde(skip)]
    pub links: EmbeddedLinks,
}

/// The link model an embedding program gives the agent's node (see
/// [`NodeConfig::link_model`]). Two are equal when they are the same model.
#[derive(Clone, Default)]
pub struct EmbeddedLinks(pub Option<Arc<dyn LinkModel>>);

impl std::fmt::Debug for EmbeddedLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "EmbeddedLinks(modelled)"
        } else {
            "EmbeddedLinks(none)"
        })
    }
}

impl PartialEq for EmbeddedLinks {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b)),
            _ => false,
        }
    }
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
    /// Sent at enrolment, but the controller keeps the token's label: labels and roles are
    /// the operators' (set on the token or through the API), not the agent's.
    #[serde(default)]
    pub label: Option<String>,
    /// Ignored (with a warning): roles are assigned by operators — on the enrolment token or
    /// with `PUT /api/v1/nodes/{id}/membership` — and never by a report.
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
        let text = node::config_env::expand_from_env(&text)
            .map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })?;
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
        if !self.controller.roles.is_empty() {
            tracing::warn!(
                target: "agent",
                roles = ?self.controller.roles,
                "controller.roles is ignored: operators assign roles on the enrolment token or \
                 through the controller's API"
            );
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
        let mut options = self.node.clone();
        if let Some(desired) = desired {
            desired.check().map_err(|e| ConfigError::Invalid(e.to_string()))?;
            if let Some(roles) = &desired.roles {
                let has = |r: &str| Some(roles.iter().any(|x| x == r));
                options.relay = has("relay");
                options.store = has("store");
                options.filter = has("filter");
                options.lightpush = has("lightpush");
                options.peer_exchange = has("peer-exchange");
            }
            if let Some(shards) = &desired.shards {
                options.shard.clone_from(shards);
            }
            if desired.max_connections.is_some() {
                options.max_connections = desired.max_connections;
            }
        }
        let context = NodeContext { key: key.clone(), data_dir: self.data_dir.clone() };
        let config = options.node_config(context).map_err(|e| {
            ConfigError::Invalid(format!("node.{} {:?}: {}", e.key, e.value, e.message))
        })?;
        Ok(NodeConfig {
            agent_version: format!("wakufleet-agent/{}", env!("CARGO_PKG_VERSION")),
            // A desired configuration that changes shards or services restarts the node with a
            // new record: it must carry a higher seq.
            enr_file: Some(self.data_dir.join("node.enr")),
            link_model: self.links.0.clone(),
            ..config
        })
    }

    /// Where nwaku's REST API is served: `[compat] rest-address`, else `[node] rest`.
    pub fn rest_address(&self) -> Option<SocketAddr> {
        self.compat.rest_address.or_else(|| self.node.rest_socket())
    }

    /// Where `/metrics` is served: `[compat] metrics-address`, else `[node] metrics-server`.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.compat.metrics_address.or_else(|| self.node.metrics_socket())
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

    /// The services reported for a node running `config` (which already has the desired
    /// configuration applied). Roles are not reported: they are the operators'.
    pub fn roles(&self, config: &NodeConfig, _desired: Option<&DesiredConfig>) -> Vec<String> {
        let mut roles = Vec::new();
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
    fn the_example_in_deploy_parses_and_shows_every_node_key() {
        let text = include_str!("../../deploy/agent.example.toml");
        let config = AgentConfig::parse(text).unwrap();
        assert_eq!(config.controller.report_interval, Duration::from_secs(30));
        assert_eq!(config.rest_address(), config.compat.rest_address);
        let node = config.node_config(&node::crypto::generate_key(), None).unwrap();
        assert_eq!((node.cluster_id, node.shards.clone()), (1, vec![0, 1]));
        assert!(node.store_url.unwrap().starts_with("postgres://"));
        assert!(node.discv5.is_some() && node.filter && node.lightpush && node.peer_exchange);
        // Every option of the one nwaku options type is in the example.
        let table: toml::Table = toml::from_str(text).unwrap();
        let shown: std::collections::BTreeSet<&String> =
            table["node"].as_table().unwrap().keys().collect();
        let all = serde_json::to_value(NodeOptions::default()).unwrap();
        let all: std::collections::BTreeSet<&String> = all.as_object().unwrap().keys().collect();
        assert_eq!(shown, all, "deploy/agent.example.toml must show every [node] key");
    }

    #[test]
    fn node_rest_and_metrics_serve_the_compat_ports_unless_compat_names_them() {
        let config = AgentConfig::parse(&format!(
            "{MINIMAL}\n[node]\nrest = true\nrest-port = 18645\nmetrics-server = true"
        ))
        .unwrap();
        assert_eq!(config.rest_address(), Some("127.0.0.1:18645".parse().unwrap()));
        assert_eq!(config.metrics_address(), Some("127.0.0.1:8008".parse().unwrap()));
        let config = AgentConfig::parse(&format!(
            "{MINIMAL}\n[compat]\nrest-address = \"127.0.0.1:1\"\n[node]\nrest = true"
        ))
        .unwrap();
        assert_eq!(config.rest_address(), Some("127.0.0.1:1".parse().unwrap()));
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
