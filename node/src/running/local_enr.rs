//! The node's own ENR: what it announces (address, ports, WebSocket multiaddrs, shards), with
//! its `seq` kept across restarts.

use std::net::IpAddr;

use libp2p::{Multiaddr, multiaddr::Protocol};

use super::NodeError;
use crate::{
    config::NodeConfig,
    waku_enr::{self, Capabilities, RelayShards, WakuEnrConfig},
};

/// The ENR this node announces, with the seq kept in `config.enr_file` when there is one.
pub(super) fn build_local_enr(
    config: &NodeConfig,
    listen_addrs: &[Multiaddr],
    udp_port: Option<u16>,
) -> Result<discv5::Enr, NodeError> {
    let announce = config.announce_ip.unwrap_or(if config.listen_ip.is_unspecified() {
        let loopback = IpAddr::from([127, 0, 0, 1]);
        tracing::warn!(
            target: "node",
            listen = %config.listen_ip,
            announce = %loopback,
            "listening on every interface without --ext-ip: the ENR announces {loopback}, which \
             only this host can reach; set --ext-ip to the address peers should dial"
        );
        loopback
    } else {
        config.listen_ip
    });
    let tcp_port =
        listen_addrs.iter().find(|a| !is_plain_ws(a) && !is_secure_ws(a)).and_then(port_of);
    let ws_port = listen_addrs.iter().find(|a| is_plain_ws(a)).and_then(port_of);
    let wss_port = listen_addrs.iter().find(|a| is_secure_ws(a)).and_then(port_of);
    let ip = match announce {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(_) => {
            return Err(NodeError::Config("an IPv6 announce address is not supported yet".into()));
        }
    };
    let mut capabilities = Capabilities::default();
    if config.relay {
        capabilities = capabilities | Capabilities::RELAY;
    }
    let ws = ws_port.map(|p| {
        Multiaddr::empty()
            .with(Protocol::Ip4(ip))
            .with(Protocol::Tcp(p))
            .with(Protocol::Ws("/".into()))
    });
    let wss = wss_port.map(|p| {
        Multiaddr::empty()
            .with(Protocol::Ip4(ip))
            .with(Protocol::Tcp(p))
            .with(Protocol::Wss("/".into()))
    });
    let multiaddrs = ws.into_iter().chain(wss).collect();
    let enr_config = WakuEnrConfig {
        seq: 1,
        ip: Some(ip),
        tcp: tcp_port,
        udp: udp_port,
        capabilities,
        multiaddrs,
        shards: Some(RelayShards::new(config.cluster_id, config.shards.clone())),
    };
    let key = enr::CombinedKey::from(config.key.clone());
    let build = |enr_config: &WakuEnrConfig| {
        waku_enr::build_enr(&key, enr_config).map_err(NodeError::setup("the local ENR"))
    };
    let fresh = build(&enr_config)?;
    let Some(path) = &config.enr_file else { return Ok(fresh) };
    let kept = crate::enr_seq::read_kept(path);
    let seq = crate::enr_seq::next_seq(kept.as_ref(), &fresh);
    let enr = if seq == fresh.seq() { fresh } else { build(&WakuEnrConfig { seq, ..enr_config })? };
    if kept.as_ref() != Some(&enr) {
        if let Err(error) = crate::enr_seq::keep(path, &enr) {
            // The node runs anyway; a later restart may reuse this seq for another record.
            tracing::warn!(target: "node::enr", path = %path.display(), %error, "cannot keep the ENR");
        } else if kept.is_some() {
            tracing::info!(target: "node::enr", seq, "the record changed: new ENR seq");
        }
    }
    Ok(enr)
}

/// Whether `addr` is secure WebSocket (`/wss`, or `/tls/ws`).
pub(super) fn is_secure_ws(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::Wss(_)))
        || (addr.iter().any(|p| matches!(p, Protocol::Tls))
            && addr.iter().any(|p| matches!(p, Protocol::Ws(_))))
}

/// Whether `addr` is plain WebSocket.
pub(super) fn is_plain_ws(addr: &Multiaddr) -> bool {
    !is_secure_ws(addr) && addr.iter().any(|p| matches!(p, Protocol::Ws(_)))
}

/// The TCP port of `addr`.
pub(super) fn port_of(addr: &Multiaddr) -> Option<u16> {
    addr.iter().find_map(|p| if let Protocol::Tcp(port) = p { Some(port) } else { None })
}
