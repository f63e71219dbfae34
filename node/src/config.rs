//! The node's configuration, with nwaku's defaults where both have the option.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use k256::ecdsa::SigningKey;
use libp2p::{Multiaddr, PeerId};

use crate::{
    discovery_v5::Discv5Config, message::DEFAULT_MAX_MESSAGE_SIZE, peers::PeerManagerConfig,
};

/// How a node is set up.
#[derive(Clone)]
pub struct NodeConfig {
    /// The node key (secp256k1): libp2p identity, ENR key. Default: a fresh key.
    pub key: SigningKey,
    /// Address to listen on. Default: 0.0.0.0.
    pub listen_ip: IpAddr,
    /// libp2p TCP port; 0 picks a free one. Default: 60000 (nwaku's).
    pub tcp_port: u16,
    /// WebSocket port (js-waku speaks only WebSocket); `None` disables. Default: none.
    pub websocket_port: Option<u16>,
    /// Secure WebSocket (WSS) listener with a certificate; `None` disables. Default: none.
    pub websocket_secure: Option<WssConfig>,
    /// PEM certificates to trust when dialing `/wss` peers, besides the web PKI roots (a private
    /// fleet's own CA or self-signed certificates).
    pub tls_trust_pem: Vec<Vec<u8>>,
    /// The address announced in the ENR; default: the listen address, or 127.0.0.1 when that is
    /// unspecified.
    pub announce_ip: Option<IpAddr>,
    /// Cluster id. Default: 0 (nwaku's).
    pub cluster_id: u16,
    /// Shards to relay. Default: [0].
    pub shards: Vec<u16>,
    /// Shards in the network for autosharding; 0 means static sharding only. Default: 1.
    pub num_shards_in_network: u16,
    /// Whether to relay. Default: true.
    pub relay: bool,
    /// Largest WakuMessage accepted or published, in bytes. Default: 150 KiB.
    pub max_message_size: usize,
    /// Reject relayed messages whose timestamp is further than this from now (TWN: 20 s).
    /// Default: off.
    pub max_timestamp_drift: Option<Duration>,
    /// Peers to dial at start and keep connected.
    pub static_nodes: Vec<Multiaddr>,
    /// Peer ids of the fleet's own nodes, to measure how much the mesh depends on them.
    /// Nodes from static configuration and DNS trees count as fleet nodes too.
    pub fleet_peers: Vec<PeerId>,
    /// EIP-1459 tree URLs (`enrtree://…`) to bootstrap from.
    pub dns_discovery_urls: Vec<String>,
    /// DNS server (any port) for the trees; default: the system resolver.
    pub dns_name_server: Option<SocketAddr>,
    /// Archive relayed messages and serve store queries from this database (`sqlite://path` or
    /// `postgres://…`); `None` disables store. Default: none.
    pub store_url: Option<String>,
    /// How long or how much to keep in the archive. Default: none (keep everything).
    pub store_retention: Option<Retention>,
    /// Serve filter v2 (push matching relayed messages to subscribers). Default: false.
    pub filter: bool,
    /// Serve lightpush (v3 and legacy v2). Default: false.
    pub lightpush: bool,
    /// Serve peer exchange (offering the records discv5 and DNS found). Default: false.
    pub peer_exchange: bool,
    /// Ask peers for more peers by peer exchange while short of relay peers. Default: true.
    pub peer_exchange_client: bool,
    /// discv5 (with Waku's `d5waku` protocol id); `None` disables. Default: off.
    pub discv5: Option<Discv5Config>,
    /// Peer targets and limits.
    pub peer_manager: PeerManagerConfig,
    /// The identify agent string. Default: `wakufleet/<version>`.
    pub agent_version: String,
    /// Delay and rate of every TCP link, for simulations of many nodes on one host
    /// (`wakufleet sim`). Default: none, the links as they are.
    pub link_model: Option<std::sync::Arc<dyn crate::tcp_transport::LinkModel>>,
    /// Whether valid relay messages are passed on. `false` makes a free rider: it takes what
    /// it receives and forwards nothing (gossipsub's "ignore", which costs it no score), for
    /// simulations of peers that drop what they should relay (`wakufleet sim --scenario
    /// hostile`). Default: true.
    pub forward_messages: bool,
    /// Capacity of the event channel; slow subscribers lose the oldest events. Default: 1024.
    pub event_capacity: usize,
    /// File keeping the newest ENR, so that its `seq` rises when the record changes across
    /// restarts (see [`crate::enr_seq`]). Default: none (`seq` 1 on every start).
    pub enr_file: Option<std::path::PathBuf>,
    /// Store queries answered at once; more are refused with 503 (each runs on its own task
    /// against the database, so without a bound a flood of queries is a flood of tasks).
    pub max_store_queries_in_flight: usize,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            key: crate::crypto::generate_key(),
            listen_ip: IpAddr::from([0, 0, 0, 0]),
            tcp_port: crate::options::DEFAULT_TCP_PORT,
            websocket_port: None,
            websocket_secure: None,
            tls_trust_pem: Vec::new(),
            announce_ip: None,
            cluster_id: 0,
            shards: vec![0],
            num_shards_in_network: 1,
            relay: true,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_timestamp_drift: None,
            static_nodes: Vec::new(),
            fleet_peers: Vec::new(),
            dns_discovery_urls: Vec::new(),
            dns_name_server: None,
            discv5: None,
            store_url: None,
            store_retention: None,
            filter: false,
            lightpush: false,
            peer_exchange: false,
            peer_exchange_client: true,
            peer_manager: PeerManagerConfig::default(),
            agent_version: format!("wakufleet/{}", env!("CARGO_PKG_VERSION")),
            link_model: None,
            forward_messages: true,
            event_capacity: 1024,
            enr_file: None,
            max_store_queries_in_flight: 32,
        }
    }
}

/// The archive's retention policy (nwaku's `--store-message-retention-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Keep messages younger than this (`time:<seconds>`).
    Time(Duration),
    /// Keep at most this many bytes of messages (`size:<n>GB` / `MB` / `KB`).
    Size(u64),
}

impl std::str::FromStr for Retention {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("invalid retention policy {s:?}: use time:<seconds> or size:<n>GB|MB|KB");
        if let Some(seconds) = s.strip_prefix("time:") {
            return seconds.parse().map(|n| Self::Time(Duration::from_secs(n))).map_err(|_| bad());
        }
        let size = s.strip_prefix("size:").ok_or_else(bad)?;
        let upper = size.to_ascii_uppercase();
        let (number, unit) =
            upper.split_at(upper.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
        let number: u64 = number.parse().map_err(|_| bad())?;
        let factor = match unit {
            "GB" => 1 << 30,
            "MB" => 1 << 20,
            "KB" => 1 << 10,
            _ => return Err(bad()),
        };
        Ok(Self::Size(number.saturating_mul(factor)))
    }
}

/// A WSS listener: port, certificate chain and private key (PEM), as nwaku's
/// `--websocket-secure-*` flags.
#[derive(Clone, PartialEq, Eq)]
pub struct WssConfig {
    /// Port; 0 picks a free one. nwaku's default is 8000 for WSS too.
    pub port: u16,
    /// Certificate chain, PEM.
    pub cert_chain_pem: Vec<u8>,
    /// Private key, PEM (PKCS#8, SEC1 or PKCS#1).
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for WssConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("WssConfig").field("port", &self.port).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is never printed.
        f.debug_struct("NodeConfig")
            .field("listen_ip", &self.listen_ip)
            .field("tcp_port", &self.tcp_port)
            .field("websocket_port", &self.websocket_port)
            .field("cluster_id", &self.cluster_id)
            .field("shards", &self.shards)
            .field("relay", &self.relay)
            .finish_non_exhaustive()
    }
}

impl NodeConfig {
    /// A node on 127.0.0.1 with OS-chosen ports (TCP and WebSocket), for tests and local fleets.
    /// Every peer shares the IP, so the per-IP limit and penalty are off.
    pub fn loopback() -> Self {
        Self {
            listen_ip: IpAddr::from([127, 0, 0, 1]),
            tcp_port: 0,
            websocket_port: Some(0),
            peer_manager: PeerManagerConfig { max_peers_per_ip: 0, ..PeerManagerConfig::default() },
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_policies_parse_like_nwaku() {
        assert_eq!("time:86400".parse(), Ok(Retention::Time(Duration::from_secs(86_400))));
        assert_eq!("size:2GB".parse(), Ok(Retention::Size(2 << 30)));
        assert_eq!("size:500mb".parse(), Ok(Retention::Size(500 << 20)));
        for bad in ["time:", "size:10", "size:GB", "capacity:10", "size:1TB"] {
            assert!(bad.parse::<Retention>().is_err(), "{bad}");
        }
    }
}
