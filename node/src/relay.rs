//! Relay (11/WAKU2-RELAY): gossipsub under `/vac/waku/relay/2.0.0`, anonymous, with the
//! parameters and peer-scoring thresholds nwaku and go-waku use, and message id =
//! sha256(serialised WakuMessage).

use std::time::Duration;

use libp2p::gossipsub::{
    self, MessageId, PeerScoreParams, PeerScoreThresholds, TopicHash, TopicScoreParams,
    ValidationMode,
};

use crate::message::gossip_message_id;

/// The relay protocol id, the only one js-waku speaks.
pub const PROTOCOL: &str = "/vac/waku/relay/2.0.0";
/// Gossipsub's D, D_low and D_high as Waku sets them.
pub const MESH_N: usize = 6;
/// D_low: below it a shard's mesh is only "minimally healthy" (nwaku's topic health).
pub const MESH_N_LOW: usize = 4;
/// D_high.
pub const MESH_N_HIGH: usize = 8;
/// Room for the gossipsub RPC framing around a maximal WakuMessage.
const FRAME_OVERHEAD: usize = 16 * 1024;

/// The gossipsub configuration for messages of up to `max_message_size` bytes.
pub fn config(max_message_size: usize) -> Result<gossipsub::Config, gossipsub::ConfigBuilderError> {
    gossipsub::ConfigBuilder::default()
        .protocol_id(PROTOCOL, gossipsub::Version::V1_1)
        .validation_mode(ValidationMode::Anonymous)
        .message_id_fn(|message: &gossipsub::Message| {
            MessageId::from(gossip_message_id(&message.data).to_vec())
        })
        .max_transmit_size(max_message_size + FRAME_OVERHEAD)
        .mesh_n(MESH_N)
        .mesh_n_low(MESH_N_LOW)
        .mesh_n_high(MESH_N_HIGH)
        .mesh_outbound_min(3)
        .gossip_lazy(6)
        .gossip_factor(0.25)
        .heartbeat_interval(Duration::from_secs(1))
        .history_length(6)
        .history_gossip(3)
        .fanout_ttl(Duration::from_secs(60))
        .duplicate_cache_time(Duration::from_secs(120))
        .prune_backoff(Duration::from_secs(60))
        .unsubscribe_backoff(Duration::from_secs(5))
        .flood_publish(true)
        .validate_messages()
        .build()
}

/// Score thresholds (nwaku: gossip −100, publish −1000, graylist −10000).
pub fn thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: -100.0,
        publish_threshold: -1000.0,
        graylist_threshold: -10_000.0,
        accept_px_threshold: 0.0,
        opportunistic_graft_threshold: 0.0,
    }
}

/// Peer score parameters without topics (topics are added on subscription). Peers beyond
/// `ip_colocation_limit` on one IP are penalised (nwaku: 5); 0 turns the penalty off, as a
/// fleet on one host (loopback tests, `wakufleet up`) needs.
pub fn score_params(ip_colocation_limit: usize) -> PeerScoreParams {
    let (weight, threshold) = match ip_colocation_limit {
        0 => (0.0, 1.0),
        limit => (-50.0, limit as f64),
    };
    PeerScoreParams {
        topic_score_cap: 0.0,
        app_specific_weight: 0.0,
        ip_colocation_factor_weight: weight,
        ip_colocation_factor_threshold: threshold,
        behaviour_penalty_weight: -10.0,
        behaviour_penalty_threshold: 0.0,
        behaviour_penalty_decay: 0.986,
        decay_interval: Duration::from_secs(12),
        decay_to_zero: 0.01,
        retain_score: Duration::from_secs(600),
        ..PeerScoreParams::default()
    }
}

/// Per-topic parameters: P1 time in mesh, P2 first deliveries, P4 invalid messages; P3 off.
pub fn topic_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 10.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: 0.5,
        first_message_deliveries_cap: 10.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -100.0,
        invalid_message_deliveries_decay: 0.5,
        ..TopicScoreParams::default()
    }
}

/// The topic hash of a pubsub topic (Waku topics are plain strings, not hashed).
pub fn topic_hash(topic: &str) -> TopicHash {
    TopicHash::from_raw(topic)
}
