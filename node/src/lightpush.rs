//! Lightpush (19/WAKU2-LIGHTPUSH): a light client hands a message to a service node, which
//! relays it. Both versions are served: v3 `/vac/waku/lightpush/3.0.0` (js-waku, nwaku) and the
//! legacy v2 `/vac/waku/lightpush/2.0.0-beta1` (go-waku speaks only this one).
//!
//! Wire quirks: nwaku's v2 decoder requires `is_success` to be present even when false, so it is
//! an `optional bool` here; status codes are nwaku's (`NO_PEERS_TO_RELAY` = 505, where the spec
//! table says 503).

use libp2p::StreamProtocol;

use crate::message::WakuMessage;

/// Lightpush v3.
pub const PROTOCOL_V3: StreamProtocol = StreamProtocol::new("/vac/waku/lightpush/3.0.0");
/// Lightpush v2 (legacy).
pub const PROTOCOL_V2: StreamProtocol = StreamProtocol::new("/vac/waku/lightpush/2.0.0-beta1");

/// Status codes (nwaku `waku_lightpush/common.nim`).
pub mod status {
    /// Relayed.
    pub const SUCCESS: u32 = 200;
    /// Malformed request.
    pub const BAD_REQUEST: u32 = 400;
    /// Message over the size limit.
    pub const PAYLOAD_TOO_LARGE: u32 = 413;
    /// The message fails validation.
    pub const INVALID_MESSAGE: u32 = 420;
    /// A pubsub topic this node does not relay.
    pub const UNSUPPORTED_PUBSUB_TOPIC: u32 = 421;
    /// Rate limited.
    pub const TOO_MANY_REQUESTS: u32 = 429;
    /// Something broke here.
    pub const INTERNAL_SERVER_ERROR: u32 = 500;
    /// Relay is not available.
    pub const SERVICE_NOT_AVAILABLE: u32 = 503;
    /// No relay peer to pass the message to.
    pub const NO_PEERS_TO_RELAY: u32 = 505;
}

/// v3 request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LightPushRequest {
    /// Request id.
    #[prost(string, tag = "1")]
    pub request_id: String,
    /// Pubsub topic; derived by autosharding when absent.
    #[prost(string, optional, tag = "20")]
    pub pubsub_topic: Option<String>,
    /// The message.
    #[prost(message, optional, tag = "21")]
    pub message: Option<WakuMessage>,
}

/// v3 response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LightPushResponse {
    /// Request id.
    #[prost(string, tag = "1")]
    pub request_id: String,
    /// Status code.
    #[prost(uint32, tag = "10")]
    pub status_code: u32,
    /// Status text.
    #[prost(string, optional, tag = "11")]
    pub status_desc: Option<String>,
    /// Relay peers the message went to.
    #[prost(uint32, optional, tag = "12")]
    pub relay_peer_count: Option<u32>,
}

/// v2 request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    /// Pubsub topic.
    #[prost(string, tag = "1")]
    pub pubsub_topic: String,
    /// The message.
    #[prost(message, optional, tag = "2")]
    pub message: Option<WakuMessage>,
}

/// v2 response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushResponse {
    /// Whether it was relayed; always present (nwaku requires the field).
    #[prost(bool, optional, tag = "1")]
    pub is_success: Option<bool>,
    /// Error text.
    #[prost(string, optional, tag = "2")]
    pub info: Option<String>,
}

/// v2 envelope.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRpc {
    /// Request id.
    #[prost(string, tag = "1")]
    pub request_id: String,
    /// Request.
    #[prost(message, optional, tag = "2")]
    pub request: Option<PushRequest>,
    /// Response.
    #[prost(message, optional, tag = "3")]
    pub response: Option<PushResponse>,
}

/// v3 codec.
pub type CodecV3 = crate::codec::ProtoCodec<LightPushRequest, LightPushResponse>;
/// v2 codec.
pub type CodecV2 = crate::codec::ProtoCodec<PushRpc, PushRpc>;

/// The v3 codec with limits for messages of `max_message_size`.
pub fn codec_v3(max_message_size: usize) -> CodecV3 {
    CodecV3::new(max_message_size + 64 * 1024, 64 * 1024)
}

/// The v2 codec with limits for messages of `max_message_size`.
pub fn codec_v2(max_message_size: usize) -> CodecV2 {
    CodecV2::new(max_message_size + 64 * 1024, max_message_size + 64 * 1024)
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn v2_failure_keeps_is_success_on_the_wire() {
        let rpc = PushRpc {
            request_id: "r".into(),
            request: None,
            response: Some(PushResponse { is_success: Some(false), info: Some("no peers".into()) }),
        };
        let bytes = rpc.encode_to_vec();
        // field 3 (response) contains field 1 = false: 0x08 0x00.
        let response = &bytes[bytes.iter().position(|&b| b == 0x1a).unwrap() + 2..];
        assert_eq!(&response[..2], &[0x08, 0x00]);
        assert_eq!(PushRpc::decode(bytes.as_slice()).unwrap(), rpc);
    }

    #[test]
    fn v3_uses_spec_field_numbers() {
        let request = LightPushRequest {
            request_id: "id".into(),
            pubsub_topic: Some("/waku/2/rs/0/0".into()),
            message: Some(WakuMessage::new("/a/1/b/c", vec![1], 5)),
        };
        let bytes = request.encode_to_vec();
        assert_eq!(bytes[0], 0x0a, "request_id is field 1");
        assert!(bytes.contains(&0xa2) && bytes.contains(&0xaa), "fields 20 and 21 (two-byte tags)");
        assert_eq!(LightPushRequest::decode(bytes.as_slice()).unwrap(), request);
        let response = LightPushResponse {
            request_id: "id".into(),
            status_code: status::NO_PEERS_TO_RELAY,
            status_desc: Some("no peers".into()),
            relay_peer_count: Some(0),
        };
        assert_eq!(
            LightPushResponse::decode(response.encode_to_vec().as_slice()).unwrap(),
            response
        );
    }
}
