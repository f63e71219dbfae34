//! Store v3 protobufs (`/vac/waku/store-query/3.0.0`, js-waku `store_v3.proto`).
//!
//! nwaku's response decoder requires `request_id` (1), `status_code` (10) and `status_desc`
//! (11) — so we always send a description — and `message_hash` (1) in every entry.

use crate::message::WakuMessage;

/// One result: the hash, and with `include_data` the message and its pubsub topic.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WakuMessageKeyValue {
    /// The 32-byte deterministic hash.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub message_hash: Option<Vec<u8>>,
    /// The message.
    #[prost(message, optional, tag = "2")]
    pub message: Option<WakuMessage>,
    /// Its pubsub topic.
    #[prost(string, optional, tag = "3")]
    pub pubsub_topic: Option<String>,
}

/// A store query.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoreQueryRequest {
    /// Request id.
    #[prost(string, tag = "1")]
    pub request_id: String,
    /// Return messages, not only hashes.
    #[prost(bool, tag = "2")]
    pub include_data: bool,
    /// Pubsub topic (required with content topics).
    #[prost(string, optional, tag = "10")]
    pub pubsub_topic: Option<String>,
    /// Content topics.
    #[prost(string, repeated, tag = "11")]
    pub content_topics: Vec<String>,
    /// Start of the time range, ns, inclusive.
    #[prost(sint64, optional, tag = "12")]
    pub time_start: Option<i64>,
    /// End of the time range, ns, exclusive.
    #[prost(sint64, optional, tag = "13")]
    pub time_end: Option<i64>,
    /// Hash lookup (exclusive with the content filter).
    #[prost(bytes = "vec", repeated, tag = "20")]
    pub message_hashes: Vec<Vec<u8>>,
    /// Continue after this message hash (exclusive).
    #[prost(bytes = "vec", optional, tag = "51")]
    pub pagination_cursor: Option<Vec<u8>>,
    /// Page forward in time (default: backward, newest first).
    #[prost(bool, tag = "52")]
    pub pagination_forward: bool,
    /// Page size (default 20, at most 100).
    #[prost(uint64, optional, tag = "53")]
    pub pagination_limit: Option<u64>,
}

/// A store response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoreQueryResponse {
    /// Request id.
    #[prost(string, tag = "1")]
    pub request_id: String,
    /// Status code.
    #[prost(uint32, optional, tag = "10")]
    pub status_code: Option<u32>,
    /// Status text (always set: nwaku requires it).
    #[prost(string, optional, tag = "11")]
    pub status_desc: Option<String>,
    /// Results, always in forward (time, then hash) order.
    #[prost(message, repeated, tag = "20")]
    pub messages: Vec<WakuMessageKeyValue>,
    /// Cursor for the next page, if there is one.
    #[prost(bytes = "vec", optional, tag = "51")]
    pub pagination_cursor: Option<Vec<u8>>,
}
