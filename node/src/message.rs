//! WakuMessage (14/WAKU2-MESSAGE): the protobuf, its presence rules, and the deterministic
//! message hash.
//!
//! Field numbers and presence follow js-waku's `message.proto` and nwaku's codec. nwaku refuses
//! a message whose `payload` (1) or `content_topic` (2) field is absent, and proto3 encoders omit
//! empty values, so an empty payload cannot cross to nwaku; js-waku's relay validator drops
//! empty payloads as well. We therefore never publish one ([`WakuMessage::check_publishable`]),
//! while decoding treats missing fields as their defaults.

use sha2::{Digest, Sha256};

/// nwaku's default maximum message size, 150 KiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 150 * 1024;
/// nwaku's limit on `meta`.
pub const MAX_META_LEN: usize = 64;

/// A Waku message.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct WakuMessage {
    /// The application payload.
    #[prost(bytes = "vec", tag = "1")]
    pub payload: Vec<u8>,
    /// `/{application}/{version}/{name}/{encoding}`.
    #[prost(string, tag = "2")]
    pub content_topic: String,
    /// Payload encryption version (0 = none).
    #[prost(uint32, optional, tag = "3")]
    pub version: Option<u32>,
    /// Unix time in nanoseconds (zigzag `sint64`).
    #[prost(sint64, optional, tag = "10")]
    pub timestamp: Option<i64>,
    /// Application metadata that takes part in the message hash (at most 64 bytes).
    #[prost(bytes = "vec", optional, tag = "11")]
    pub meta: Option<Vec<u8>>,
    /// RLN proof (17/WAKU2-RLN-RELAY), carried opaquely.
    #[prost(bytes = "vec", optional, tag = "21")]
    pub rate_limit_proof: Option<Vec<u8>>,
    /// Ephemeral messages are relayed but never stored.
    #[prost(bool, optional, tag = "31")]
    pub ephemeral: Option<bool>,
}

/// Why a message may not be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Empty payload: nwaku cannot decode it and js-waku drops it.
    #[error("empty payload")]
    EmptyPayload,
    /// Empty content topic.
    #[error("empty content topic")]
    EmptyContentTopic,
    /// `meta` longer than 64 bytes.
    #[error("meta is {0} bytes, over the 64-byte limit")]
    MetaTooLong(usize),
    /// The encoded message exceeds the size limit.
    #[error("message is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The bytes are not a WakuMessage.
    #[error("undecodable message: {0}")]
    Decode(String),
}

impl WakuMessage {
    /// A message with `payload` on `content_topic`, stamped with `timestamp_ns`.
    pub fn new(content_topic: impl Into<String>, payload: Vec<u8>, timestamp_ns: i64) -> Self {
        Self {
            payload,
            content_topic: content_topic.into(),
            timestamp: Some(timestamp_ns),
            ..Self::default()
        }
    }

    /// Whether other Waku implementations accept this message for relay.
    pub fn check_publishable(&self, max_size: usize) -> Result<(), MessageError> {
        if self.payload.is_empty() {
            return Err(MessageError::EmptyPayload);
        }
        if self.content_topic.is_empty() {
            return Err(MessageError::EmptyContentTopic);
        }
        if let Some(meta) = &self.meta
            && meta.len() > MAX_META_LEN
        {
            return Err(MessageError::MetaTooLong(meta.len()));
        }
        let size = prost::Message::encoded_len(self);
        if size > max_size {
            return Err(MessageError::TooLarge { size, limit: max_size });
        }
        Ok(())
    }

    /// Decodes a message received from the network, refusing oversized input before parsing.
    pub fn decode_bounded(bytes: &[u8], max_size: usize) -> Result<Self, MessageError> {
        if bytes.len() > max_size {
            return Err(MessageError::TooLarge { size: bytes.len(), limit: max_size });
        }
        <Self as prost::Message>::decode(bytes).map_err(|e| MessageError::Decode(e.to_string()))
    }

    /// Whether the message is ephemeral (never stored).
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral.unwrap_or(false)
    }

    /// The deterministic message hash on `pubsub_topic`.
    pub fn hash(&self, pubsub_topic: &str) -> MessageHash {
        message_hash(pubsub_topic, self)
    }
}

/// The current Unix time in nanoseconds, as Waku timestamps are.
pub use crate::clock::now_ns;

/// The 32-byte deterministic message hash: the key of stores and filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageHash(pub [u8; 32]);

impl std::fmt::Display for MessageHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x{}", data_encoding::HEXLOWER.encode(&self.0))
    }
}

impl std::str::FromStr for MessageHash {
    type Err = MessageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.strip_prefix("0x").unwrap_or(s);
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(hex.as_bytes())
            .map_err(|_| MessageError::Decode(format!("not a hex hash: {s:?}")))?;
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| MessageError::Decode(format!("a message hash is 32 bytes: {s:?}")))?;
        Ok(Self(array))
    }
}

/// `sha256(pubsub_topic ‖ payload ‖ content_topic ‖ meta ‖ timestamp as 8 bytes big-endian)`.
/// An absent timestamp counts as 0 (nwaku, go-waku); js-waku leaves the 8 bytes out, so
/// timestamp-less messages hash differently there — we always set timestamps.
pub fn message_hash(pubsub_topic: &str, message: &WakuMessage) -> MessageHash {
    let mut hasher = Sha256::new();
    hasher.update(pubsub_topic.as_bytes());
    hasher.update(&message.payload);
    hasher.update(message.content_topic.as_bytes());
    if let Some(meta) = &message.meta {
        hasher.update(meta);
    }
    // nwaku casts the signed timestamp to u64 before taking its big-endian bytes.
    hasher.update((message.timestamp.unwrap_or(0) as u64).to_be_bytes());
    MessageHash(hasher.finalize().into())
}

/// The gossipsub message id Waku uses: sha256 of the serialised WakuMessage bytes (not the
/// deterministic hash). IHAVE/IWANT carry it, so it must match other implementations exactly.
pub fn gossip_message_id(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        data_encoding::HEXLOWER.decode(s.as_bytes()).unwrap()
    }

    /// The four vectors of 14/WAKU2-MESSAGE.
    #[test]
    fn deterministic_hash_vectors() {
        let topic = "/waku/2/default-waku/proto";
        let base = WakuMessage {
            payload: hex("010203045445535405060708"),
            content_topic: "/waku/2/default-content/proto".into(),
            timestamp: Some(0x175789bfa23f8400),
            ..WakuMessage::default()
        };
        let cases = [
            (
                Some(hex("73757065722d736563726574")),
                false,
                "64cce733fed134e83da02b02c6f689814872b1a0ac97ea56b76095c3c72bfe05",
            ),
            (
                Some((0u8..64).collect()),
                false,
                "7158b6498753313368b9af8f6e0a0a05104f68f972981da42a43bc53fb0c1b27",
            ),
            (None, false, "a2554498b31f5bcdfcbf7fa58ad1c2d45f0254f3f8110a85588ec3cf10720fd8"),
            (
                Some(hex("73757065722d736563726574")),
                true,
                "483ea950cb63f9b9d6926b262bb36194d3f40a0463ce8446228350bd44e96de4",
            ),
        ];
        for (meta, empty_payload, want) in cases {
            let mut message = base.clone();
            message.meta = meta;
            if empty_payload {
                message.payload.clear();
            }
            assert_eq!(message.hash(topic).to_string(), format!("0x{want}"));
        }
    }

    #[test]
    fn wire_format_uses_waku_field_numbers_and_zigzag_timestamps() {
        let message = WakuMessage::new("/a/1/b/proto", vec![1], -1);
        // 0x0a payload, 0x12 content topic, 0x50 = field 10 varint, zigzag(-1) = 1.
        assert_eq!(
            message.encode_to_vec(),
            [&[0x0a, 1, 1, 0x12, 12][..], b"/a/1/b/proto", &[0x50, 1]].concat()
        );
        let mut full = message.clone();
        full.ephemeral = Some(true);
        full.meta = Some(vec![9]);
        full.version = Some(0);
        let decoded = WakuMessage::decode(full.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, full);
        assert!(decoded.is_ephemeral());
    }

    #[test]
    fn publishing_rules() {
        let ok = WakuMessage::new("/a/1/b/proto", vec![1], 1);
        assert_eq!(ok.check_publishable(DEFAULT_MAX_MESSAGE_SIZE), Ok(()));
        assert_eq!(
            WakuMessage::new("/a/1/b/proto", vec![], 1).check_publishable(1000),
            Err(MessageError::EmptyPayload)
        );
        assert_eq!(
            WakuMessage::new("", vec![1], 1).check_publishable(1000),
            Err(MessageError::EmptyContentTopic)
        );
        let big = WakuMessage::new("/a/1/b/proto", vec![0; 2000], 1);
        assert!(matches!(big.check_publishable(1000), Err(MessageError::TooLarge { .. })));
        assert!(matches!(
            WakuMessage::decode_bounded(&[0; 2000], 1000),
            Err(MessageError::TooLarge { .. })
        ));
        assert!(matches!(
            WakuMessage::decode_bounded(&[0xff, 0xff], 1000),
            Err(MessageError::Decode(_))
        ));
    }

    #[test]
    fn hash_text_round_trips() {
        let hash = WakuMessage::new("/a/1/b/proto", vec![1], 1).hash("/waku/2/rs/0/0");
        assert_eq!(hash.to_string().parse::<MessageHash>().unwrap(), hash);
        assert!("0x1234".parse::<MessageHash>().is_err());
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;
    use prost::Message as _;

    use super::*;
    use crate::{
        metadata::WakuMetadata,
        topics::{ContentTopic, ShardTopic},
        waku_enr,
    };

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// No decoder of network input panics on any bytes.
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = WakuMessage::decode_bounded(&bytes, DEFAULT_MAX_MESSAGE_SIZE);
            let _ = WakuMetadata::decode(bytes.as_slice());
            let _ = waku_enr::decode_multiaddrs(&bytes);
            let _ = waku_enr::RelayShards::from_rs(&bytes);
            let _ = waku_enr::RelayShards::from_rsv(&bytes);
            let text = String::from_utf8_lossy(&bytes);
            let _ = text.parse::<ShardTopic>();
            let _ = text.parse::<ContentTopic>();
            let _ = text.parse::<MessageHash>();
        }

        #[test]
        fn messages_round_trip(payload in proptest::collection::vec(any::<u8>(), 1..300), topic in "/[a-z]{1,8}/[0-9]{1,2}/[a-z]{1,8}/proto", ts in any::<i64>(), meta in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)), eph in proptest::option::of(any::<bool>())) {
            let message = WakuMessage { payload, content_topic: topic, timestamp: Some(ts), meta, ephemeral: eph, ..WakuMessage::default() };
            let decoded = WakuMessage::decode_bounded(&message.encode_to_vec(), DEFAULT_MAX_MESSAGE_SIZE).unwrap();
            prop_assert_eq!(decoded.hash("/waku/2/rs/0/0"), message.hash("/waku/2/rs/0/0"));
            prop_assert_eq!(decoded, message);
        }
    }
}
