//! The libp2p swarm: transports (TCP and WebSocket, Noise, Yamux and Mplex), the behaviours
//! Waku mounts, and waiting for the listeners to come up.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use libp2p::{
    Multiaddr, Swarm,
    core::transport::ListenerId,
    gossipsub, identify, ping,
    request_response::{self, ProtocolSupport},
    swarm::{NetworkBehaviour, SwarmEvent},
};

use super::{LISTEN_SETTLE, LISTEN_TIMEOUT, NodeError};
use crate::{
    config::NodeConfig,
    filter, lightpush, metadata, peer_exchange, relay, store,
    tcp_transport::{ByteCounters, SourceBoundTcp, tcp_transport},
};

#[derive(NetworkBehaviour)]
pub(super) struct Behaviour {
    pub(super) identify: identify::Behaviour,
    pub(super) ping: ping::Behaviour,
    pub(super) relay: gossipsub::Behaviour,
    pub(super) metadata: request_response::Behaviour<metadata::Codec>,
    pub(super) peer_exchange: request_response::Behaviour<peer_exchange::Codec>,
    pub(super) lightpush: request_response::Behaviour<lightpush::CodecV3>,
    pub(super) lightpush_legacy: request_response::Behaviour<lightpush::CodecV2>,
    pub(super) filter_subscribe: request_response::Behaviour<filter::SubscribeCodec>,
    pub(super) filter_push: request_response::Behaviour<filter::PushCodec>,
    pub(super) store: request_response::Behaviour<store::Codec>,
}

pub(super) async fn build_swarm(
    keypair: libp2p::identity::Keypair,
    config: &NodeConfig,
    bytes: Arc<ByteCounters>,
) -> Result<Swarm<Behaviour>, NodeError> {
    let relay_config =
        relay::config(config.max_message_size).map_err(NodeError::setup("relay parameters"))?;
    let agent = config.agent_version.clone();
    let colocation_limit = config.peer_manager.max_peers_per_ip;
    // Serve peer exchange only when asked to; always able to ask.
    let px_support =
        if config.peer_exchange { ProtocolSupport::Full } else { ProtocolSupport::Outbound };
    let lightpush_support =
        if config.lightpush { ProtocolSupport::Full } else { ProtocolSupport::Outbound };
    let max_message_size = config.max_message_size;
    let filter_support =
        if config.filter { ProtocolSupport::Full } else { ProtocolSupport::Outbound };
    let store_support =
        if config.store_url.is_some() { ProtocolSupport::Full } else { ProtocolSupport::Outbound };
    let listen_ip = config.listen_ip;
    let links = config.link_model.clone();
    let websocket_tls =
        crate::tls::websocket_tls(config).map_err(NodeError::setup("the WSS certificate"))?;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(|key| {
            tcp_transport(
                key,
                SourceBoundTcp::new(listen_ip, bytes.clone()).with_links(links.clone()),
            )
        })
        .map_err(NodeError::setup("the libp2p transport"))?
        .with_other_transport(|key| {
            crate::tls::websocket_transport(
                key,
                websocket_tls,
                SourceBoundTcp::new(listen_ip, bytes.clone()).with_links(links.clone()),
            )
        })
        .map_err(NodeError::setup("the libp2p transport"))?
        .with_dns()
        .map_err(NodeError::setup("the libp2p transport"))?
        .with_behaviour(|key| {
            let mut gossip =
                gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, relay_config)?;
            gossip.with_peer_score(relay::score_params(colocation_limit), relay::thresholds())?;
            Ok(Behaviour {
                identify: identify::Behaviour::new(
                    identify::Config::new("/ipfs/id/1.0.0".into(), key.public())
                        .with_agent_version(agent),
                ),
                ping: ping::Behaviour::new(ping::Config::new()),
                relay: gossip,
                metadata: protocol(
                    metadata::codec(),
                    metadata::PROTOCOL,
                    ProtocolSupport::Full,
                    10,
                ),
                peer_exchange: protocol(
                    peer_exchange::codec(),
                    peer_exchange::PROTOCOL,
                    px_support,
                    10,
                ),
                lightpush: protocol(
                    lightpush::codec_v3(max_message_size),
                    lightpush::PROTOCOL_V3,
                    lightpush_support.clone(),
                    10,
                ),
                lightpush_legacy: protocol(
                    lightpush::codec_v2(max_message_size),
                    lightpush::PROTOCOL_V2,
                    lightpush_support,
                    10,
                ),
                filter_subscribe: protocol(
                    filter::subscribe_codec(),
                    filter::SUBSCRIBE_PROTOCOL,
                    filter_support,
                    10,
                ),
                store: protocol(store::codec(max_message_size), store::PROTOCOL, store_support, 30),
                // Clients receive pushes and servers send them: both directions always.
                filter_push: protocol(
                    filter::PushCodec::new(max_message_size),
                    filter::PUSH_PROTOCOL,
                    ProtocolSupport::Full,
                    10,
                ),
            })
        })
        .map_err(NodeError::setup("the libp2p transport"))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    Ok(swarm)
}

/// A request-response behaviour for one protocol, with a request timeout in seconds.
pub(super) fn protocol<C>(
    codec: C,
    id: libp2p::StreamProtocol,
    support: ProtocolSupport,
    timeout_secs: u64,
) -> request_response::Behaviour<C>
where
    C: request_response::Codec<Protocol = libp2p::StreamProtocol> + Clone + Send + 'static,
{
    let config =
        request_response::Config::default().with_request_timeout(Duration::from_secs(timeout_secs));
    request_response::Behaviour::with_codec(codec, [(id, support)], config)
}

/// Every address of every listener in `listeners`. A listener on an unspecified address
/// (0.0.0.0) reports one address per interface, so counting addresses is not enough: this waits
/// until each listener has reported one, then takes the rest of the burst (the interfaces are
/// reported together) until [`LISTEN_SETTLE`] passes without a new one.
pub(super) async fn wait_for_listeners(
    swarm: &mut Swarm<Behaviour>,
    listeners: &[ListenerId],
) -> Result<Vec<Multiaddr>, NodeError> {
    let mut addrs: Vec<(ListenerId, Multiaddr)> = Vec::new();
    let deadline = tokio::time::sleep(LISTEN_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        let all_up = listeners.iter().all(|l| addrs.iter().any(|(id, _)| id == l));
        let settle = tokio::time::sleep(if all_up { LISTEN_SETTLE } else { LISTEN_TIMEOUT });
        tokio::select! {
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { listener_id, address } => addrs.push((listener_id, address)),
                SwarmEvent::ListenerError { error, .. } => return Err(NodeError::Transport(error.to_string())),
                SwarmEvent::ListenerClosed { reason: Err(error), .. } => return Err(NodeError::Transport(error.to_string())),
                _ => {}
            },
            () = settle, if all_up => break,
            () = &mut deadline => return Err(NodeError::Transport("listeners did not come up".into())),
        }
    }
    // In the order the listeners were opened (TCP, then WebSocket, then WSS), each listener's
    // loopback address first: the one a caller on this host dials.
    let mut ordered = Vec::with_capacity(addrs.len());
    for listener in listeners {
        let mut own: Vec<Multiaddr> =
            addrs.iter().filter(|(id, _)| id == listener).map(|(_, a)| a.clone()).collect();
        own.sort_by_key(|a| !crate::peers::ip_of(a).is_some_and(|ip| ip.is_loopback()));
        ordered.extend(own);
    }
    Ok(ordered)
}
