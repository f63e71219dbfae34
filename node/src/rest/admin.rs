//! nwaku's admin REST routes, served only with `--rest-admin`: every peer the node knows
//! (`/admin/v1/peers`, one by id, connected, relay and mesh peers per shard, service peers,
//! counts) and the filter subscriptions it serves, in nwaku's JSON shapes (`WakuPeer`,
//! `PeersOfShard`, `FilterSubscription`, the nested counters of `/peers/stats`).

use std::collections::BTreeMap;

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::get,
};
use libp2p::PeerId;
use serde::Serialize;
use serde_json::Value;

use super::{RestError, RestState};
use crate::{
    peers::Origin,
    running::{AdminView, KnownPeer, PeerInfo},
    topics::ShardTopic,
};

/// Legacy store v2, which nwaku still lists (we neither serve nor use it).
const LEGACY_STORE: &str = "/vac/waku/store/2.0.0-beta4";

/// The protocols `/admin/v1/peers/service` lists peers by (nwaku's list, relay included).
const SERVICE_CODECS: [&str; 7] = [
    crate::relay::PROTOCOL,
    "/vac/waku/filter-subscribe/2.0.0-beta1",
    "/vac/waku/store-query/3.0.0",
    LEGACY_STORE,
    "/vac/waku/lightpush/2.0.0-beta1",
    "/vac/waku/lightpush/3.0.0",
    "/vac/waku/peer-exchange/2.0.0-alpha1",
];

/// The protocols `/admin/v1/peers/stats` counts peers by.
const COUNTED_CODECS: [&str; 8] = [
    crate::relay::PROTOCOL,
    "/vac/waku/filter-subscribe/2.0.0-beta1",
    "/vac/waku/filter-push/2.0.0-beta1",
    "/vac/waku/store-query/3.0.0",
    LEGACY_STORE,
    "/vac/waku/lightpush/3.0.0",
    "/vac/waku/lightpush/2.0.0-beta1",
    "/vac/waku/peer-exchange/2.0.0-alpha1",
];

/// The admin routes, to merge into the REST router.
pub(super) fn routes() -> Router<RestState> {
    Router::new()
        .route("/admin/v1/peers", get(all_peers))
        .route("/admin/v1/peer/{peer_id}", get(one_peer))
        .route("/admin/v1/peers/connected", get(connected))
        .route("/admin/v1/peers/connected/on/{shard}", get(connected_on))
        .route("/admin/v1/peers/relay", get(relay))
        .route("/admin/v1/peers/relay/on/{shard}", get(relay_on))
        .route("/admin/v1/peers/mesh", get(mesh))
        .route("/admin/v1/peers/mesh/on/{shard}", get(mesh_on))
        .route("/admin/v1/peers/service", get(service))
        .route("/admin/v1/peers/stats", get(stats))
        .route("/admin/v1/filter/subscriptions", get(filter_subscriptions))
}

/// nwaku's `WakuPeer`.
#[derive(Debug, Clone, Serialize)]
struct WakuPeer {
    multiaddr: String,
    protocols: Vec<String>,
    shards: Vec<u16>,
    /// nwaku's `Connectedness`: Connected, NotConnected, CannotConnect.
    connected: &'static str,
    agent: String,
    origin: &'static str,
    score: Option<f64>,
}

impl WakuPeer {
    fn connected(peer: &PeerInfo) -> Self {
        let address = peer.address.clone().with_p2p(peer.peer_id).unwrap_or_else(|a| a);
        Self {
            multiaddr: address.to_string(),
            protocols: peer.protocols.clone(),
            shards: peer.shards.iter().filter_map(|s| u16::try_from(*s).ok()).collect(),
            connected: "Connected",
            agent: peer.agent.clone().unwrap_or_default(),
            origin: peer.origin.map_or(Origin::Inbound.as_str(), Origin::as_str),
            score: peer.score,
        }
    }

    fn known(peer: &KnownPeer) -> Self {
        let multiaddr = match &peer.address {
            Some(a) => a.clone().with_p2p(peer.peer_id).unwrap_or_else(|a| a).to_string(),
            None => format!("/p2p/{}", peer.peer_id),
        };
        Self {
            multiaddr,
            protocols: Vec::new(),
            shards: Vec::new(),
            connected: if peer.failures > 0 { "CannotConnect" } else { "NotConnected" },
            agent: String::new(),
            origin: peer.origin.as_str(),
            score: None,
        }
    }
}

/// nwaku's `PeersOfShard`.
#[derive(Debug, Serialize)]
struct PeersOfShard {
    shard: u16,
    peers: Vec<WakuPeer>,
}

type Answer<T> = Result<Json<T>, RestError>;

async fn view(state: &RestState) -> Result<AdminView, RestError> {
    Ok(state.node.admin_view().await?)
}

fn everyone(view: &AdminView) -> Vec<WakuPeer> {
    view.connected
        .iter()
        .map(WakuPeer::connected)
        .chain(view.known.iter().map(WakuPeer::known))
        .collect()
}

fn parse_shard(text: &str) -> Result<u16, RestError> {
    text.parse::<u16>().map_err(|e| RestError::bad(format!("Invalid shardId: {e}")))
}

fn relay_mounted(view: &AdminView) -> Result<(), RestError> {
    if view.relay {
        Ok(())
    } else {
        Err(RestError(
            StatusCode::SERVICE_UNAVAILABLE,
            "Error: Relay Protocol is not mounted to the node".into(),
        ))
    }
}

async fn all_peers(State(state): State<RestState>) -> Answer<Vec<WakuPeer>> {
    Ok(Json(everyone(&view(&state).await?)))
}

async fn one_peer(State(state): State<RestState>, Path(peer_id): Path<String>) -> Answer<WakuPeer> {
    let wanted: PeerId =
        peer_id.parse().map_err(|e| RestError::bad(format!("Invalid argument:{e}")))?;
    let view = view(&state).await?;
    let connected = view.connected.iter().find(|p| p.peer_id == wanted).map(WakuPeer::connected);
    let known = || view.known.iter().find(|p| p.peer_id == wanted).map(WakuPeer::known);
    connected.or_else(known).map(Json).ok_or_else(|| {
        RestError(StatusCode::NOT_FOUND, format!("Peer with ID {peer_id} not found"))
    })
}

async fn connected(State(state): State<RestState>) -> Answer<Vec<WakuPeer>> {
    Ok(Json(view(&state).await?.connected.iter().map(WakuPeer::connected).collect()))
}

async fn connected_on(
    State(state): State<RestState>,
    Path(shard): Path<String>,
) -> Answer<Vec<WakuPeer>> {
    let shard = parse_shard(&shard)?;
    let view = view(&state).await?;
    let on = view.connected.iter().filter(|p| p.shards.contains(&u32::from(shard)));
    Ok(Json(on.map(WakuPeer::connected).collect()))
}

/// Per subscribed shard, the peers `pick` says are on it.
fn per_shard(
    view: &AdminView,
    topics: &[String],
    pick: fn(&PeerInfo) -> &Vec<String>,
) -> Vec<PeersOfShard> {
    topics
        .iter()
        .filter_map(|topic| {
            let shard = topic.parse::<ShardTopic>().ok()?.shard;
            let peers = view
                .connected
                .iter()
                .filter(|p| pick(p).contains(topic))
                .map(WakuPeer::connected)
                .collect();
            Some(PeersOfShard { shard, peers })
        })
        .collect()
}

fn relay_of(peer: &PeerInfo) -> &Vec<String> {
    &peer.relay_topics
}

fn mesh_of(peer: &PeerInfo) -> &Vec<String> {
    &peer.mesh_topics
}

async fn relay(State(state): State<RestState>) -> Answer<Vec<PeersOfShard>> {
    let view = view(&state).await?;
    relay_mounted(&view)?;
    Ok(Json(per_shard(&view, &view.relay_topics, relay_of)))
}

async fn mesh(State(state): State<RestState>) -> Answer<Vec<PeersOfShard>> {
    let view = view(&state).await?;
    relay_mounted(&view)?;
    Ok(Json(per_shard(&view, &view.relay_topics, mesh_of)))
}

async fn one_shard(
    state: &RestState,
    shard: &str,
    pick: fn(&PeerInfo) -> &Vec<String>,
) -> Answer<PeersOfShard> {
    let shard = parse_shard(shard)?;
    let view = view(state).await?;
    relay_mounted(&view)?;
    let topic = ShardTopic { cluster: view.cluster, shard }.to_string();
    let mut found = per_shard(&view, std::slice::from_ref(&topic), pick);
    Ok(Json(found.pop().unwrap_or(PeersOfShard { shard, peers: Vec::new() })))
}

async fn relay_on(
    State(state): State<RestState>,
    Path(shard): Path<String>,
) -> Answer<PeersOfShard> {
    one_shard(&state, &shard, relay_of).await
}

async fn mesh_on(
    State(state): State<RestState>,
    Path(shard): Path<String>,
) -> Answer<PeersOfShard> {
    one_shard(&state, &shard, mesh_of).await
}

async fn service(State(state): State<RestState>) -> Answer<Vec<WakuPeer>> {
    let view = view(&state).await?;
    let peers = view
        .connected
        .iter()
        .filter_map(|p| {
            let mut peer = WakuPeer::connected(p);
            peer.protocols.retain(|proto| SERVICE_CODECS.contains(&proto.as_str()));
            (!peer.protocols.is_empty()).then_some(peer)
        })
        .collect();
    Ok(Json(peers))
}

async fn stats(State(state): State<RestState>) -> Answer<Value> {
    let view = view(&state).await?;
    let peers = everyone(&view);
    let count = |f: &dyn Fn(&WakuPeer) -> bool| peers.iter().filter(|p| f(p)).count();
    let mut connectedness = BTreeMap::new();
    for state in ["Connected", "NotConnected", "CannotConnect", "CanConnect"] {
        connectedness.insert(state, count(&|p: &WakuPeer| p.connected == state));
    }
    let shard_counts = |pick: fn(&PeerInfo) -> &Vec<String>, total: &str| {
        let mut out = serde_json::Map::new();
        let mut sum = 0;
        for shard in per_shard(&view, &view.relay_topics, pick) {
            sum += shard.peers.len();
            out.insert(shard.shard.to_string(), shard.peers.len().into());
        }
        out.insert(total.to_owned(), sum.into());
        Value::Object(out)
    };
    let mut protocols = serde_json::Map::new();
    for codec in COUNTED_CODECS {
        protocols.insert(
            codec.to_owned(),
            count(&|p: &WakuPeer| p.protocols.iter().any(|c| c == codec)).into(),
        );
    }
    Ok(Json(serde_json::json!({
        "Sum": { "Total peers": peers.len() },
        "By Connectedness": connectedness,
        "Relay peers": shard_counts(relay_of, "Total relay peers"),
        "Mesh peers": shard_counts(mesh_of, "Total mesh peers"),
        "By Protocols": protocols,
    })))
}

async fn filter_subscriptions(State(state): State<RestState>) -> Answer<Value> {
    let view = view(&state).await?;
    if !view.filter {
        return Err(RestError::bad("Error: Filter Protocol is not mounted to the node"));
    }
    let list: Vec<Value> = view
        .filter_subscriptions
        .iter()
        .map(|(peer, criteria)| {
            let criteria: Vec<Value> = criteria
                .iter()
                .map(|(pubsub, content)| {
                    serde_json::json!({ "pubsubTopic": pubsub, "contentTopic": content })
                })
                .collect();
            serde_json::json!({ "peerId": peer.to_string(), "filterCriteria": criteria })
        })
        .collect();
    Ok(Json(Value::Array(list)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listed_protocol_ids_are_the_ones_the_node_speaks() {
        for id in [
            crate::filter::SUBSCRIBE_PROTOCOL,
            crate::filter::PUSH_PROTOCOL,
            crate::store::PROTOCOL,
            crate::lightpush::PROTOCOL_V2,
            crate::lightpush::PROTOCOL_V3,
            crate::peer_exchange::PROTOCOL,
        ] {
            assert!(COUNTED_CODECS.contains(&id.as_ref()), "{id}");
        }
        assert!(SERVICE_CODECS.iter().all(|c| COUNTED_CODECS.contains(c)));
    }
}
