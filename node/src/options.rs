//! nwaku's options: one type for `wakufleet node`'s flags, its `--config-file` and the agent's
//! `[node]` section, with one conversion into a [`NodeConfig`] — so the three cannot drift, and
//! an operator's nwaku flags and TOML keys carry over unchanged.
//!
//! Keys are nwaku's flag names (`tcp-port`, `shard`, `staticnode`, `dns-discovery-url`…). Lists
//! are written as nwaku repeats its flags, one name each (`shard = [0, 1]`); the plural spellings
//! earlier wakufleet files used (`shards`, `staticnodes`, …) are read too. Absent values take
//! the defaults below, defined here and nowhere else.
//!
//! With the `cli` feature the type is also a set of clap flags.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
};

use k256::ecdsa::SigningKey;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Deserializer, Serialize};

use crate::{
    config::{NodeConfig, Retention, WssConfig},
    discovery_v5::Discv5Config,
    enrtree::LinkEntry,
    preset::Preset,
};

/// libp2p TCP port (nwaku's default).
pub const DEFAULT_TCP_PORT: u16 = 60_000;
/// WebSocket (or WSS) port (nwaku's default).
pub const DEFAULT_WEBSOCKET_PORT: u16 = 8000;
/// discv5 UDP port (nwaku's default).
pub const DEFAULT_DISCV5_UDP_PORT: u16 = 9000;
/// REST port (nwaku's default).
pub const DEFAULT_REST_PORT: u16 = 8645;
/// Prometheus metrics port (nwaku's default).
pub const DEFAULT_METRICS_PORT: u16 = 8008;
/// REST and metrics listen here unless told otherwise: never open to the network by default.
pub const DEFAULT_LOCAL_ADDRESS: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
/// Most connected peers (nwaku v0.38's `--max-connections`; 50 before).
pub const DEFAULT_MAX_CONNECTIONS: usize = 150;
/// Relay to service peers (nwaku v0.38's `--relay-service-ratio`).
pub const DEFAULT_RELAY_SERVICE_RATIO: &str = "50:50";
/// Fewest relay slots a node may have: gossipsub's D_high, as nwaku checks.
pub const MIN_RELAY_SLOTS: usize = crate::relay::MESH_N_HIGH;

/// A value that maps to no node setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} {value:?}: {message}")]
pub struct OptionsError {
    /// The option's name, as nwaku spells the flag.
    pub key: &'static str,
    /// The value given.
    pub value: String,
    /// What is wrong with it.
    pub message: String,
}

impl OptionsError {
    fn new(key: &'static str, value: impl std::fmt::Display, message: impl ToString) -> Self {
        Self { key, value: value.to_string(), message: message.to_string() }
    }
}

/// nwaku's options, each absent unless given. Serialised, every key appears (absent ones as
/// null): what documentation and tests list.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct NodeOptions {
    /// Keystore file of the node key (a Web3 keystore, never a raw key).
    #[cfg_attr(feature = "cli", arg(long, value_name = "KEYSTORE"))]
    pub nodekey: Option<PathBuf>,
    /// File whose first line is the keystore's password (in files; on the command line
    /// `--password-file`).
    #[cfg_attr(feature = "cli", arg(skip))]
    pub password_file: Option<PathBuf>,
    /// Address to listen on (default 0.0.0.0).
    #[cfg_attr(feature = "cli", arg(long))]
    pub listen_address: Option<IpAddr>,
    /// Address announced in the ENR (default: the listen address, or 127.0.0.1).
    #[cfg_attr(feature = "cli", arg(long))]
    pub ext_ip: Option<IpAddr>,
    /// nwaku's NAT setting: `extip:<IP>` announces that address (as `--ext-ip`); `any` and
    /// `none` announce the listen address. UPnP and NAT-PMP are not supported.
    #[cfg_attr(feature = "cli", arg(long))]
    pub nat: Option<String>,
    /// libp2p TCP port (default 60000).
    #[cfg_attr(feature = "cli", arg(long))]
    pub tcp_port: Option<u16>,
    /// Listen for WebSocket connections (js-waku speaks only WebSocket).
    #[cfg_attr(feature = "cli", arg(long, num_args = 0..=1, default_missing_value = "true"))]
    pub websocket_support: Option<bool>,
    /// WebSocket port (default 8000); with --websocket-secure-support the WSS port.
    #[cfg_attr(feature = "cli", arg(long))]
    pub websocket_port: Option<u16>,
    /// Serve secure WebSocket (WSS) instead of plain WebSocket, with the files below.
    #[cfg_attr(feature = "cli", arg(long, num_args = 0..=1, default_missing_value = "true"))]
    pub websocket_secure_support: Option<bool>,
    /// WSS certificate chain (PEM).
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub websocket_secure_cert_path: Option<PathBuf>,
    /// WSS private key (PEM).
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub websocket_secure_key_path: Option<PathBuf>,
    /// Extra CA or certificate (PEM) to trust when dialing `/wss` peers (repeatable).
    #[cfg_attr(feature = "cli", arg(long = "tls-trust", value_name = "FILE"))]
    #[serde(deserialize_with = "one_or_many")]
    pub tls_trust: Vec<PathBuf>,
    /// A named network (twn, logos.dev, logos.test, status.prod): sets cluster id, shard count
    /// and message size as nwaku does; values given explicitly win, with a warning.
    #[cfg_attr(feature = "cli", arg(long))]
    pub preset: Option<String>,
    /// Cluster id (default 0).
    #[cfg_attr(feature = "cli", arg(long))]
    pub cluster_id: Option<u16>,
    /// Shard to relay (repeatable; default 0).
    #[cfg_attr(feature = "cli", arg(long = "shard"))]
    #[serde(alias = "shards", deserialize_with = "one_or_many")]
    pub shard: Vec<u16>,
    /// Shards in the network, for autosharding (default 1).
    #[cfg_attr(feature = "cli", arg(long))]
    pub num_shards_in_network: Option<u16>,
    /// Relay messages (default true).
    #[cfg_attr(feature = "cli", arg(long, num_args = 0..=1, default_missing_value = "true"))]
    pub relay: Option<bool>,
    /// Archive relayed messages and serve store queries.
    #[cfg_attr(feature = "cli", arg(long, num_args = 0..=1, default_missing_value = "true"))]
    pub store: Option<bool>,
    /// The archive: `sqlite://path` or `postgres://…` (default: `store.sqlite3` in the data
    /// directory, or the working directory).
    #[cfg_attr(feature = "cli", arg(long))]
    pub store_message_db_url: Option<String>,
    /// Retention: `time:<seconds>` or `size:<n>GB` (also MB, KB).
    #[cfg_attr(feature = "cli", arg(long))]
    pub store_message_retention_policy: Option<String>,
    /// Serve filter v2: push matching relayed messages to light clients.
    #[cfg_attr(feature = "cli", arg(long, num_args = 0..=1, default_missing_value = "true"))]
    pub filter: Option<bool>,
    /// Serve lightpush (v3 and legacy v2): relay what light clients push.
    #[cfg_attr(feature = "cli", arg(long, num_args = 0..=1, default_missing_value = "true"))]
    pub lightpush: Option<bool>,
    /// Serve peer exchange (offer the peers discv5 and DNS found).
    #[cfg_attr(feature = "cli", arg(long, num_args = 0..=1, default_missing_value = "true"))]
    pub peer_exchange: Option<bool>,
    /// Peer to keep connected, a multiaddr with /p2p (repeatable).
    #[cfg_attr(feature = "cli", arg(long = "staticnode"))]
    #[serde(alias = "staticnodes", deserialize_with = "one_or_many")]
    pub staticnode: Vec<String>,
    /// EIP-1459 tree to bootstrap from (repeatable).
    #[cfg_attr(feature = "cli", arg(long = "dns-discovery-url"))]
    #[serde(alias = "dns-discovery-urls", deserialize_with = "one_or_many")]
    pub dns_discovery_url: Vec<String>,
    /// DNS server for the trees: ip (port 53) or ip:port (default: the system resolver); the
    /// first one given is used.
    #[cfg_attr(feature = "cli", arg(long = "dns-addrs-name-server"))]
    #[serde(alias = "dns-addrs-name-servers", deserialize_with = "one_or_many")]
    pub dns_addrs_name_server: Vec<String>,
    /// discv5 peer discovery, with Waku's `d5waku` protocol id.
    #[cfg_attr(feature = "cli", arg(long, num_args = 0..=1, default_missing_value = "true"))]
    pub discv5_discovery: Option<bool>,
    /// discv5 UDP port (default 9000).
    #[cfg_attr(feature = "cli", arg(long))]
    pub discv5_udp_port: Option<u16>,
    /// discv5 bootstrap ENR (repeatable).
    #[cfg_attr(feature = "cli", arg(long = "discv5-bootstrap-node"))]
    #[serde(alias = "discv5-bootstrap-nodes", deserialize_with = "one_or_many")]
    pub discv5_bootstrap_node: Vec<String>,
    /// Most connected peers (default 150, as nwaku v0.38).
    #[cfg_attr(feature = "cli", arg(long))]
    pub max_connections: Option<usize>,
    /// How max-connections is split between relay and service peers, `R:S` summing to 100
    /// (default 50:50, as nwaku v0.38).
    #[cfg_attr(feature = "cli", arg(long))]
    pub relay_service_ratio: Option<String>,
    /// Most peers per IP address, 0 for no limit (default 5).
    #[cfg_attr(feature = "cli", arg(long))]
    pub ip_colocation_limit: Option<usize>,
    /// Most relay peers that dialled this node, 0 for no cap (default 12, twice the relay
    /// target; the fleet's own nodes are never capped). Past it the newest is disconnected.
    #[cfg_attr(feature = "cli", arg(long))]
    pub max_inbound_relay_peers: Option<usize>,
    /// Peer id of one of the fleet's own nodes, for the fleet-dependence figure (repeatable;
    /// static nodes and tree entries count as fleet nodes too).
    #[cfg_attr(feature = "cli", arg(long = "fleet-peer"))]
    #[serde(alias = "fleet-peers", deserialize_with = "one_or_many")]
    pub fleet_peer: Vec<String>,
    /// Serve the REST API.
    #[cfg_attr(feature = "cli", arg(long, num_args = 0..=1, default_missing_value = "true"))]
    pub rest: Option<bool>,
    /// REST address (default 127.0.0.1).
    #[cfg_attr(feature = "cli", arg(long))]
    pub rest_address: Option<IpAddr>,
    /// REST port (default 8645).
    #[cfg_attr(feature = "cli", arg(long))]
    pub rest_port: Option<u16>,
    /// Serve the admin routes (`/admin/v1/…`) and let `/store/v3/messages?peerAddr=` make the
    /// node dial (default false, as nwaku).
    #[cfg_attr(feature = "cli", arg(long, num_args = 0..=1, default_missing_value = "true"))]
    pub rest_admin: Option<bool>,
    /// File whose first line is a bearer token every REST request must carry; required
    /// before REST listens on a non-loopback address.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub rest_token_file: Option<PathBuf>,
    /// Host header REST accepts besides localhost, loopback addresses and its own address
    /// (repeatable; `*` accepts any): requests naming another host are refused, so a web
    /// page cannot reach the API through DNS rebinding.
    #[cfg_attr(feature = "cli", arg(long = "rest-allowed-host"))]
    #[serde(deserialize_with = "one_or_many")]
    pub rest_allowed_host: Vec<String>,
    /// Messages cached per subscribed topic for REST reads (default 50).
    #[cfg_attr(feature = "cli", arg(long))]
    pub rest_relay_cache_capacity: Option<usize>,
    /// Serve Prometheus metrics.
    #[cfg_attr(feature = "cli", arg(long, num_args = 0..=1, default_missing_value = "true"))]
    pub metrics_server: Option<bool>,
    /// Metrics address (default 127.0.0.1).
    #[cfg_attr(feature = "cli", arg(long))]
    pub metrics_server_address: Option<IpAddr>,
    /// Metrics port (default 8008).
    #[cfg_attr(feature = "cli", arg(long))]
    pub metrics_server_port: Option<u16>,
    /// Largest message in bytes (default 153600, nwaku's 150 KiB).
    #[cfg_attr(feature = "cli", arg(long))]
    pub max_msg_size: Option<usize>,
}

/// A list written as nwaku repeats a flag (`[a, b]`), or one value (`a`). A wrong value gets
/// the element type's own error ("invalid type: string \"x\", expected u16"), not a generic one.
fn one_or_many<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    use serde::de::{self, IntoDeserializer, SeqAccess, Visitor};

    struct OneOrMany<T>(std::marker::PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrMany<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a value or a list of values")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut values = Vec::new();
            while let Some(value) = seq.next_element()? {
                values.push(value);
            }
            Ok(values)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<T>, E> {
            T::deserialize(v.into_deserializer()).map(|one| vec![one])
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Vec<T>, E> {
            T::deserialize(v.into_deserializer()).map(|one| vec![one])
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Vec<T>, E> {
            T::deserialize(v.into_deserializer()).map(|one| vec![one])
        }

        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Vec<T>, E> {
            T::deserialize(v.into_deserializer()).map(|one| vec![one])
        }
    }

    deserializer.deserialize_any(OneOrMany(std::marker::PhantomData))
}

/// What a node needs besides its options: its key, and where its files go by default.
#[derive(Clone)]
pub struct NodeContext {
    /// The node's key (unlocked from `nodekey` by the caller, who knows how to ask for the
    /// password).
    pub key: SigningKey,
    /// Where `store.sqlite3` goes when `store-message-db-url` is absent.
    pub data_dir: PathBuf,
}

impl NodeOptions {
    /// `self`'s values over `under`'s: command-line flags over a `--config-file`.
    pub fn over(self, under: Self) -> Self {
        fn list<T>(top: Vec<T>, under: Vec<T>) -> Vec<T> {
            if top.is_empty() { under } else { top }
        }
        Self {
            nodekey: self.nodekey.or(under.nodekey),
            password_file: self.password_file.or(under.password_file),
            listen_address: self.listen_address.or(under.listen_address),
            ext_ip: self.ext_ip.or(under.ext_ip),
            nat: self.nat.or(under.nat),
            tcp_port: self.tcp_port.or(under.tcp_port),
            websocket_support: self.websocket_support.or(under.websocket_support),
            websocket_port: self.websocket_port.or(under.websocket_port),
            websocket_secure_support: self
                .websocket_secure_support
                .or(under.websocket_secure_support),
            websocket_secure_cert_path: self
                .websocket_secure_cert_path
                .or(under.websocket_secure_cert_path),
            websocket_secure_key_path: self
                .websocket_secure_key_path
                .or(under.websocket_secure_key_path),
            tls_trust: list(self.tls_trust, under.tls_trust),
            preset: self.preset.or(under.preset),
            cluster_id: self.cluster_id.or(under.cluster_id),
            shard: list(self.shard, under.shard),
            num_shards_in_network: self.num_shards_in_network.or(under.num_shards_in_network),
            relay: self.relay.or(under.relay),
            store: self.store.or(under.store),
            store_message_db_url: self.store_message_db_url.or(under.store_message_db_url),
            store_message_retention_policy: self
                .store_message_retention_policy
                .or(under.store_message_retention_policy),
            filter: self.filter.or(under.filter),
            lightpush: self.lightpush.or(under.lightpush),
            peer_exchange: self.peer_exchange.or(under.peer_exchange),
            staticnode: list(self.staticnode, under.staticnode),
            dns_discovery_url: list(self.dns_discovery_url, under.dns_discovery_url),
            dns_addrs_name_server: list(self.dns_addrs_name_server, under.dns_addrs_name_server),
            discv5_discovery: self.discv5_discovery.or(under.discv5_discovery),
            discv5_udp_port: self.discv5_udp_port.or(under.discv5_udp_port),
            discv5_bootstrap_node: list(self.discv5_bootstrap_node, under.discv5_bootstrap_node),
            max_connections: self.max_connections.or(under.max_connections),
            relay_service_ratio: self.relay_service_ratio.or(under.relay_service_ratio),
            ip_colocation_limit: self.ip_colocation_limit.or(under.ip_colocation_limit),
            max_inbound_relay_peers: self.max_inbound_relay_peers.or(under.max_inbound_relay_peers),
            fleet_peer: list(self.fleet_peer, under.fleet_peer),
            rest: self.rest.or(under.rest),
            rest_address: self.rest_address.or(under.rest_address),
            rest_port: self.rest_port.or(under.rest_port),
            rest_admin: self.rest_admin.or(under.rest_admin),
            rest_token_file: self.rest_token_file.or(under.rest_token_file),
            rest_allowed_host: list(self.rest_allowed_host, under.rest_allowed_host),
            rest_relay_cache_capacity: self
                .rest_relay_cache_capacity
                .or(under.rest_relay_cache_capacity),
            metrics_server: self.metrics_server.or(under.metrics_server),
            metrics_server_address: self.metrics_server_address.or(under.metrics_server_address),
            metrics_server_port: self.metrics_server_port.or(under.metrics_server_port),
            max_msg_size: self.max_msg_size.or(under.max_msg_size),
        }
    }

    /// The REST API's address, when `rest` is on.
    pub fn rest_socket(&self) -> Option<SocketAddr> {
        self.rest.unwrap_or(false).then(|| {
            SocketAddr::new(
                self.rest_address.unwrap_or(DEFAULT_LOCAL_ADDRESS),
                self.rest_port.unwrap_or(DEFAULT_REST_PORT),
            )
        })
    }

    /// How the REST router serves: cache capacity, admin routes.
    pub fn rest_settings(&self, max_message_size: usize) -> crate::rest::RestSettings {
        crate::rest::RestSettings {
            cache_capacity: self
                .rest_relay_cache_capacity
                .unwrap_or(crate::rest::DEFAULT_CACHE_CAPACITY),
            admin: self.rest_admin.unwrap_or(false),
            ..crate::rest::RestSettings::new(max_message_size)
        }
    }

    /// Who may use a REST port bound to `bind`: the token file and Host names given here.
    pub fn rest_access(
        &self,
        bind: SocketAddr,
    ) -> Result<crate::rest::access::RestAccess, crate::rest::access::RestAccessError> {
        crate::rest::access::RestAccess::from_file(
            bind,
            self.rest_token_file.as_deref(),
            &self.rest_allowed_host,
        )
    }

    /// The metrics server's address, when `metrics-server` is on.
    pub fn metrics_socket(&self) -> Option<SocketAddr> {
        self.metrics_server.unwrap_or(false).then(|| {
            SocketAddr::new(
                self.metrics_server_address.unwrap_or(DEFAULT_LOCAL_ADDRESS),
                self.metrics_server_port.unwrap_or(DEFAULT_METRICS_PORT),
            )
        })
    }

    /// The node's configuration. Reads the WSS and `tls-trust` files; every other value is
    /// checked here, so a bad multiaddr, URL or peer id fails before the node starts.
    pub fn node_config(&self, context: NodeContext) -> Result<NodeConfig, OptionsError> {
        let defaults = NodeConfig::default();
        let static_nodes = self
            .staticnode
            .iter()
            .map(|s| s.parse::<Multiaddr>().map_err(|e| OptionsError::new("staticnode", s, e)))
            .collect::<Result<Vec<_>, _>>()?;
        for url in &self.dns_discovery_url {
            url.parse::<LinkEntry>().map_err(|e| OptionsError::new("dns-discovery-url", url, e))?;
        }
        let fleet_peers = self
            .fleet_peer
            .iter()
            .map(|s| s.parse::<PeerId>().map_err(|e| OptionsError::new("fleet-peer", s, e)))
            .collect::<Result<Vec<_>, _>>()?;
        let dns_name_server =
            self.dns_addrs_name_server.first().map(|s| parse_name_server(s)).transpose()?;
        let store_retention = self
            .store_message_retention_policy
            .as_deref()
            .map(|s| {
                s.parse::<Retention>()
                    .map_err(|e| OptionsError::new("store-message-retention-policy", s, e))
            })
            .transpose()?;
        let preset = self.preset()?;
        let from_preset = preset.map(Preset::values);
        if let Some(preset) = preset {
            let values = preset.values();
            for (key, given, wanted) in [
                ("cluster-id", self.cluster_id.map(usize::from), usize::from(values.cluster_id)),
                (
                    "num-shards-in-network",
                    self.num_shards_in_network.map(usize::from),
                    usize::from(values.num_shards_in_network),
                ),
                ("max-msg-size", self.max_msg_size, values.max_msg_size),
            ] {
                if let Some(given) = given.filter(|&g| g != wanted) {
                    tracing::warn!(
                        target: "node",
                        %preset,
                        "{key} {given} overrides preset {preset}'s {wanted}: peers of the \
                         preset's network will not match this node"
                    );
                }
            }
        }
        let num_shards_in_network = self
            .num_shards_in_network
            .or(from_preset.map(|v| v.num_shards_in_network))
            .unwrap_or(defaults.num_shards_in_network);
        let shards = match (&self.shard[..], from_preset) {
            // As nwaku: a preset without --shard relays every shard of its network.
            ([], Some(_)) => (0..num_shards_in_network).collect(),
            ([], None) => defaults.shards.clone(),
            (given, _) => given.to_vec(),
        };
        if let Some(&shard) = shards.iter().find(|&&s| s > crate::topics::MAX_SHARD) {
            return Err(OptionsError::new(
                "shard",
                shard,
                format!("at most {}", crate::topics::MAX_SHARD),
            ));
        }
        let mut peer_manager = defaults.peer_manager.clone();
        peer_manager.max_connections = self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        let ratio = self.relay_service_ratio.as_deref().unwrap_or(DEFAULT_RELAY_SERVICE_RATIO);
        peer_manager.relay_share = parse_ratio(ratio)?;
        let relay_slots = crate::peers::PeerManager::new(peer_manager.clone(), []).slots().0;
        if relay_slots < MIN_RELAY_SLOTS {
            return Err(OptionsError::new(
                "max-connections",
                peer_manager.max_connections,
                format!(
                    "with relay-service-ratio {ratio} leaves {relay_slots} relay slots; gossipsub \
                     needs at least {MIN_RELAY_SLOTS} (D_high)"
                ),
            ));
        }
        if let Some(limit) = self.ip_colocation_limit {
            peer_manager.max_peers_per_ip = limit;
        }
        if let Some(cap) = self.max_inbound_relay_peers {
            peer_manager.max_inbound_relay_peers = cap;
        }
        let announce_ip = match (self.ext_ip, self.nat.as_deref()) {
            (Some(ip), _) => Some(ip),
            (None, None | Some("any" | "none")) => None,
            (None, Some(nat)) => match nat.strip_prefix("extip:") {
                Some(ip) => {
                    Some(ip.parse::<IpAddr>().map_err(|e| OptionsError::new("nat", nat, e))?)
                }
                None => {
                    return Err(OptionsError::new(
                        "nat",
                        nat,
                        "use extip:<IP> (or any, none); UPnP and NAT-PMP are not supported",
                    ));
                }
            },
        };
        let websocket_port = self.websocket_port.unwrap_or(DEFAULT_WEBSOCKET_PORT);
        let secure = self.websocket_secure_support.unwrap_or(false);
        let websocket_secure = if secure {
            let (Some(cert), Some(key)) =
                (&self.websocket_secure_cert_path, &self.websocket_secure_key_path)
            else {
                return Err(OptionsError::new(
                    "websocket-secure-support",
                    true,
                    "needs websocket-secure-cert-path and websocket-secure-key-path",
                ));
            };
            Some(WssConfig {
                port: websocket_port,
                cert_chain_pem: read_file("websocket-secure-cert-path", cert)?,
                key_pem: read_file("websocket-secure-key-path", key)?,
            })
        } else {
            None
        };
        let tls_trust_pem = self
            .tls_trust
            .iter()
            .map(|p| read_file("tls-trust", p))
            .collect::<Result<Vec<_>, _>>()?;
        let store_url = self.store.unwrap_or(false).then(|| {
            self.store_message_db_url.clone().unwrap_or_else(|| {
                format!("sqlite://{}", context.data_dir.join("store.sqlite3").display())
            })
        });
        Ok(NodeConfig {
            key: context.key,
            listen_ip: self.listen_address.unwrap_or(defaults.listen_ip),
            tcp_port: self.tcp_port.unwrap_or(DEFAULT_TCP_PORT),
            // nwaku serves either plain or secure WebSocket on --websocket-port.
            websocket_port: (self.websocket_support.unwrap_or(false) && !secure)
                .then_some(websocket_port),
            websocket_secure,
            tls_trust_pem,
            announce_ip,
            cluster_id: self
                .cluster_id
                .or(from_preset.map(|v| v.cluster_id))
                .unwrap_or(defaults.cluster_id),
            shards,
            num_shards_in_network,
            relay: self.relay.unwrap_or(true),
            max_message_size: self
                .max_msg_size
                .or(from_preset.map(|v| v.max_msg_size))
                .unwrap_or(defaults.max_message_size),
            static_nodes,
            fleet_peers,
            dns_discovery_urls: self.dns_discovery_url.clone(),
            dns_name_server,
            store_url,
            store_retention,
            filter: self.filter.unwrap_or(false),
            lightpush: self.lightpush.unwrap_or(false),
            // On by default since nwaku v0.37.
            peer_exchange: self.peer_exchange.unwrap_or(true),
            discv5: self.discv5_discovery.unwrap_or(false).then(|| Discv5Config {
                udp_port: self.discv5_udp_port.unwrap_or(DEFAULT_DISCV5_UDP_PORT),
                bootstrap: self.discv5_bootstrap_node.clone(),
            }),
            peer_manager,
            ..defaults
        })
    }
}

impl NodeOptions {
    /// The `preset`, checked: a preset needing what wakufleet lacks (RLN) is refused.
    pub fn preset(&self) -> Result<Option<Preset>, OptionsError> {
        // nwaku's default is the empty string: no preset.
        let Some(name) = self.preset.as_deref().filter(|n| !n.is_empty()) else { return Ok(None) };
        let preset = name.parse::<Preset>().map_err(|e| OptionsError::new("preset", name, e))?;
        if preset.values().rln {
            return Err(OptionsError::new(
                "preset",
                name,
                format!(
                    "the network requires RLN relay (a rate-limit proof on every message, with an \
                     RLN membership and its keystore), which wakufleet does not implement yet; its \
                     peers would reject every message this node relays. Without the preset, \
                     --cluster-id {} --num-shards-in-network {} runs the same topics off that \
                     network",
                    preset.values().cluster_id,
                    preset.values().num_shards_in_network
                ),
            ));
        }
        Ok(Some(preset))
    }
}

/// nwaku's `R:S` relay-to-service ratio: the relay share.
fn parse_ratio(s: &str) -> Result<f64, OptionsError> {
    let bad = |m: &str| OptionsError::new("relay-service-ratio", s, m);
    let (relay, service) = s.split_once(':').ok_or_else(|| bad("write it R:S, e.g. 50:50"))?;
    let parse = |v: &str| v.trim().parse::<f64>().ok().filter(|v| (0.0..=100.0).contains(v));
    let (Some(relay), Some(service)) = (parse(relay), parse(service)) else {
        return Err(bad("both parts must be numbers from 0 to 100"));
    };
    if (relay + service - 100.0).abs() > 1e-9 {
        return Err(bad("the parts must sum to 100"));
    }
    Ok(relay / 100.0)
}

fn read_file(key: &'static str, path: &Path) -> Result<Vec<u8>, OptionsError> {
    std::fs::read(path).map_err(|e| OptionsError::new(key, path.display(), e))
}

/// `ip` (port 53) or `ip:port`.
fn parse_name_server(s: &str) -> Result<SocketAddr, OptionsError> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| OptionsError::new("dns-addrs-name-server", s, "not an ip or ip:port"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn context() -> NodeContext {
        NodeContext { key: crate::crypto::generate_key(), data_dir: PathBuf::from("/var/lib/x") }
    }

    fn parse(text: &str) -> Result<NodeOptions, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn absent_values_take_nwakus_defaults() {
        let options = parse("").unwrap();
        let config = options.node_config(context()).unwrap();
        assert_eq!(config.tcp_port, DEFAULT_TCP_PORT);
        assert_eq!(config.listen_ip, IpAddr::from([0, 0, 0, 0]));
        assert_eq!(config.shards, [0]);
        assert!(config.relay && !config.filter && !config.lightpush && config.store_url.is_none());
        assert_eq!(config.websocket_port, None);
        assert!(config.discv5.is_none());
        // nwaku v0.38's defaults where they differ from earlier ones.
        assert_eq!(config.peer_manager.max_connections, 150);
        assert!((config.peer_manager.relay_share - 0.5).abs() < 1e-9);
        assert_eq!(config.peer_manager.max_inbound_relay_peers, 12);
        let uncapped =
            parse("max-inbound-relay-peers = 0").unwrap().node_config(context()).unwrap();
        assert_eq!(uncapped.peer_manager.max_inbound_relay_peers, 0);
        assert!(config.peer_exchange, "peer exchange is on by default since v0.37");
        assert_eq!(options.rest_socket(), None);
        let on = parse("rest = true\nmetrics-server = true\nmetrics-server-port = 9100").unwrap();
        assert_eq!(
            on.rest_socket(),
            Some(SocketAddr::new(DEFAULT_LOCAL_ADDRESS, DEFAULT_REST_PORT))
        );
        assert_eq!(on.metrics_socket(), Some(SocketAddr::new(DEFAULT_LOCAL_ADDRESS, 9100)));
    }

    #[test]
    fn nwaku_names_old_plurals_and_single_values_all_read() {
        let nwaku = parse(
            "shard = [1, 2]\nstaticnode = \"/ip4/127.0.0.1/tcp/1\"\ndns-addrs-name-server = [\"127.0.0.1:5353\"]",
        )
        .unwrap();
        let old = parse(
            "shards = [1, 2]\nstaticnodes = [\"/ip4/127.0.0.1/tcp/1\"]\ndns-addrs-name-server = \"127.0.0.1:5353\"",
        )
        .unwrap();
        assert_eq!(nwaku, old);
        assert_eq!(nwaku.shard, [1, 2]);
        let config = nwaku.node_config(context()).unwrap();
        assert_eq!(config.dns_name_server, Some("127.0.0.1:5353".parse().unwrap()));
        assert!(parse("tcp-prot = 1").unwrap_err().contains("unknown field `tcp-prot`"));
        // A wrong value says what was expected, single or in a list.
        for bad in ["shard = \"x\"", "shard = [\"x\"]"] {
            let error = parse(bad).unwrap_err();
            assert!(error.contains("expected u16"), "{bad}: {error}");
        }
        assert_eq!(parse("shard = 3").unwrap().shard, [3]);
    }

    #[test]
    fn store_goes_to_the_data_dir_unless_told() {
        let config = parse("store = true").unwrap().node_config(context()).unwrap();
        assert_eq!(config.store_url.as_deref(), Some("sqlite:///var/lib/x/store.sqlite3"));
        let config = parse("store = true\nstore-message-db-url = \"postgres://db/x\"")
            .unwrap()
            .node_config(context())
            .unwrap();
        assert_eq!(config.store_url.as_deref(), Some("postgres://db/x"));
    }

    #[test]
    fn websocket_plain_or_secure_on_one_port() {
        let config = parse("websocket-support = true").unwrap().node_config(context()).unwrap();
        assert_eq!(config.websocket_port, Some(DEFAULT_WEBSOCKET_PORT));
        let error = parse("websocket-support = true\nwebsocket-secure-support = true")
            .unwrap()
            .node_config(context())
            .unwrap_err();
        assert_eq!(error.key, "websocket-secure-support");
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, b"cert").unwrap();
        std::fs::write(&key, b"key").unwrap();
        let text = format!(
            "websocket-support = true\nwebsocket-secure-support = true\nwebsocket-port = 443\nwebsocket-secure-cert-path = {:?}\nwebsocket-secure-key-path = {:?}\ntls-trust = [{:?}]",
            cert, key, cert
        );
        let config = parse(&text).unwrap().node_config(context()).unwrap();
        assert_eq!(config.websocket_port, None, "plain WebSocket gives way to WSS");
        assert_eq!(config.websocket_secure.as_ref().map(|w| w.port), Some(443));
        assert_eq!(config.tls_trust_pem, [b"cert".to_vec()]);
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("staticnode = [\"nope\"]", "staticnode"),
            ("dns-discovery-url = [\"enrtree://nope\"]", "dns-discovery-url"),
            ("fleet-peer = [\"nope\"]", "fleet-peer"),
            ("dns-addrs-name-server = \"localhost\"", "dns-addrs-name-server"),
            ("store-message-retention-policy = \"forever\"", "store-message-retention-policy"),
            ("shard = [2000]", "shard"),
            ("tls-trust = \"/no/such/file.pem\"", "tls-trust"),
        ];
        for (text, key) in cases {
            let error = parse(text).unwrap().node_config(context()).unwrap_err();
            assert_eq!(error.key, key, "{text}: {error}");
        }
    }

    #[test]
    fn nat_extip_announces_like_ext_ip_and_ext_ip_wins() {
        let config = parse("nat = \"extip:203.0.113.7\"").unwrap().node_config(context()).unwrap();
        assert_eq!(config.announce_ip, Some(IpAddr::from([203, 0, 113, 7])));
        let both = parse("nat = \"extip:203.0.113.7\"\next-ip = \"198.51.100.1\"").unwrap();
        assert_eq!(
            both.node_config(context()).unwrap().announce_ip,
            Some(IpAddr::from([198, 51, 100, 1]))
        );
        for plain in ["any", "none"] {
            let options = parse(&format!("nat = {plain:?}")).unwrap();
            assert_eq!(options.node_config(context()).unwrap().announce_ip, None);
        }
        for bad in ["upnp", "extip:nope"] {
            let error =
                parse(&format!("nat = {bad:?}")).unwrap().node_config(context()).unwrap_err();
            assert_eq!(error.key, "nat", "{bad}: {error}");
        }
    }

    #[test]
    fn presets_set_cluster_shards_and_message_size_and_twn_is_refused_without_rln() {
        let config = parse("preset = \"logos.dev\"").unwrap().node_config(context()).unwrap();
        assert_eq!(config.cluster_id, 3);
        assert_eq!(config.num_shards_in_network, 8);
        assert_eq!(config.shards, (0..8).collect::<Vec<u16>>(), "every shard of the network");
        let config = parse("preset = \"status.prod\"").unwrap().node_config(context()).unwrap();
        assert_eq!((config.cluster_id, config.shards.clone()), (16, vec![0]));
        assert_eq!(config.max_message_size, 1 << 20);
        // Explicit values win (with a warning).
        let config = parse("preset = \"logos.test\"\ncluster-id = 3\nshard = [1]")
            .unwrap()
            .node_config(context())
            .unwrap();
        assert_eq!((config.cluster_id, config.shards.clone()), (3, vec![1]));
        let error = parse("preset = \"twn\"").unwrap().node_config(context()).unwrap_err();
        assert_eq!(error.key, "preset");
        assert!(error.message.contains("requires RLN relay"), "{error}");
        assert!(error.message.contains("--cluster-id 1"), "{error}");
        let error = parse("preset = \"mainnet\"").unwrap().node_config(context()).unwrap_err();
        assert!(error.to_string().contains("known: twn, logos.dev"), "{error}");
    }

    #[test]
    fn relay_service_ratio_splits_connections_and_keeps_room_for_a_mesh() {
        let config = parse("relay-service-ratio = \"60:40\"\nmax-connections = 50")
            .unwrap()
            .node_config(context())
            .unwrap();
        let slots = crate::peers::PeerManager::new(config.peer_manager, []).slots();
        assert_eq!(slots, (30, 20), "nwaku's ceil(50 × 0.6) relay, the rest service");
        for bad in ["60", "60:50", "x:y", "120:-20"] {
            let text = format!("relay-service-ratio = {bad:?}");
            let error = parse(&text).unwrap().node_config(context()).unwrap_err();
            assert_eq!(error.key, "relay-service-ratio", "{bad}: {error}");
        }
        let error = parse("max-connections = 10").unwrap().node_config(context()).unwrap_err();
        assert_eq!(error.key, "max-connections");
        assert!(error.message.contains("5 relay slots"), "{error}");
    }

    #[test]
    fn command_line_values_win_over_the_file() {
        let cli = NodeOptions { tcp_port: Some(1), shard: vec![3], ..NodeOptions::default() };
        let file = parse("tcp-port = 2\nshard = [4]\ncluster-id = 5").unwrap();
        let merged = cli.over(file);
        assert_eq!((merged.tcp_port, merged.shard, merged.cluster_id), (Some(1), vec![3], Some(5)));
    }
}
