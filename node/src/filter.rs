//! Filter v2 (12/WAKU2-FILTER): light clients subscribe to content topics on a service node
//! (`/vac/waku/filter-subscribe/2.0.0-beta1`), which pushes matching relayed messages to them
//! (`/vac/waku/filter-push/2.0.0-beta1`, the service node dialing the client).
//!
//! nwaku's rules, which we follow as a server: SUBSCRIBE and UNSUBSCRIBE need a pubsub topic and
//! 1 to 100 content topics (else 400); at most 100 subscribers and 1000 criteria each;
//! a subscription lives 5 minutes past its last activity, so clients ping (a ping from an
//! unknown subscriber is 404). Every push carries `pubsub_topic`, which nwaku's decoder requires.

use std::{io, time::Duration};

use futures::{AsyncRead, AsyncWrite, AsyncWriteExt};
use libp2p::{StreamProtocol, request_response};

use crate::{
    codec::{read_length_prefixed, write_length_prefixed},
    message::WakuMessage,
};

/// Subscribe, unsubscribe and ping.
pub const SUBSCRIBE_PROTOCOL: StreamProtocol =
    StreamProtocol::new("/vac/waku/filter-subscribe/2.0.0-beta1");
/// Pushes from the service node to the client.
pub const PUSH_PROTOCOL: StreamProtocol = StreamProtocol::new("/vac/waku/filter-push/2.0.0-beta1");
/// Content topics per request at most.
pub const MAX_CONTENT_TOPICS_PER_REQUEST: usize = 100;
/// Subscribers at most.
pub const MAX_SUBSCRIBERS: usize = 100;
/// Criteria (pubsub topic, content topic) per subscriber at most.
pub const MAX_CRITERIA_PER_SUBSCRIBER: usize = 1000;
/// A subscription expires this long after its last activity.
pub const SUBSCRIPTION_TTL: Duration = Duration::from_secs(5 * 60);

/// Status codes (nwaku `waku_filter_v2/common.nim`).
pub mod status {
    /// Done.
    pub const SUCCESS: u32 = 200;
    /// Malformed request or limit exceeded.
    pub const BAD_REQUEST: u32 = 400;
    /// Unknown subscriber.
    pub const NOT_FOUND: u32 = 404;
    /// Too many subscribers.
    pub const SERVICE_UNAVAILABLE: u32 = 503;
}

/// What a subscribe request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum FilterSubscribeType {
    /// Keep-alive.
    SubscriberPing = 0,
    /// Add criteria.
    Subscribe = 1,
    /// Remove criteria.
    Unsubscribe = 2,
    /// Remove everything.
    UnsubscribeAll = 3,
}

/// A subscribe-protocol request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FilterSubscribeRequest {
    /// Request id.
    #[prost(string, tag = "1")]
    pub request_id: String,
    /// The kind of request.
    #[prost(enumeration = "FilterSubscribeType", tag = "2")]
    pub filter_subscribe_type: i32,
    /// Pubsub topic.
    #[prost(string, optional, tag = "10")]
    pub pubsub_topic: Option<String>,
    /// Content topics.
    #[prost(string, repeated, tag = "11")]
    pub content_topics: Vec<String>,
}

/// A subscribe-protocol response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FilterSubscribeResponse {
    /// Request id.
    #[prost(string, tag = "1")]
    pub request_id: String,
    /// Status code.
    #[prost(uint32, tag = "10")]
    pub status_code: u32,
    /// Status text.
    #[prost(string, optional, tag = "11")]
    pub status_desc: Option<String>,
}

/// A pushed message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MessagePush {
    /// The message.
    #[prost(message, optional, tag = "1")]
    pub waku_message: Option<WakuMessage>,
    /// Its pubsub topic (always set).
    #[prost(string, optional, tag = "2")]
    pub pubsub_topic: Option<String>,
}

/// The subscribe codec: small requests (100 topics) and responses.
pub type SubscribeCodec = crate::codec::ProtoCodec<FilterSubscribeRequest, FilterSubscribeResponse>;

/// The subscribe codec with nwaku's limits.
pub fn subscribe_codec() -> SubscribeCodec {
    SubscribeCodec::new(10 * 150 * 1024 + 64 * 1024, 64 * 1024)
}

/// Pushes are one-way: the push is the "request", and the "response" is nothing, so a push
/// completes once written and the client closes the stream after reading it.
#[derive(Debug, Clone)]
pub struct PushCodec {
    max_size: usize,
}

impl PushCodec {
    /// A codec for pushes of messages up to `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Self {
        Self { max_size: max_message_size + 64 * 1024 }
    }
}

impl request_response::Codec for PushCodec {
    type Protocol = StreamProtocol;
    type Request = MessagePush;
    type Response = ();

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<MessagePush>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_length_prefixed(io, self.max_size).await?;
        prost::Message::decode(bytes.as_slice())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, _: &mut T) -> io::Result<()>
    where
        T: AsyncRead + Unpin + Send,
    {
        Ok(())
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        push: MessagePush,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_length_prefixed(io, &prost::Message::encode_to_vec(&push)).await?;
        io.close().await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, (): ()) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.close().await
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn wire_format_follows_the_spec() {
        let request = FilterSubscribeRequest {
            request_id: "r1".into(),
            filter_subscribe_type: FilterSubscribeType::Subscribe as i32,
            pubsub_topic: Some("/waku/2/rs/0/0".into()),
            content_topics: vec!["/a/1/b/c".into()],
        };
        let bytes = request.encode_to_vec();
        assert_eq!(&bytes[..6], &[0x0a, 2, b'r', b'1', 0x10, 1]);
        assert_eq!(FilterSubscribeRequest::decode(bytes.as_slice()).unwrap(), request);
        let push = MessagePush {
            waku_message: Some(WakuMessage::new("/a/1/b/c", vec![1], 1)),
            pubsub_topic: Some("/waku/2/rs/0/0".into()),
        };
        let decoded = MessagePush::decode(push.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, push);
        // A ping is type 0, which proto3 leaves off the wire: still decodes as a ping.
        let ping = FilterSubscribeRequest { request_id: "p".into(), ..Default::default() };
        assert_eq!(
            FilterSubscribeRequest::decode(ping.encode_to_vec().as_slice())
                .unwrap()
                .filter_subscribe_type,
            0
        );
    }
}
