//! Store (13/WAKU2-STORE v3): the archive of relayed messages and the store query protocol.
//!
//! - [`proto`] — store v3 protobufs.
//! - [`archive`] — the archive on SQLite or Postgres: insert once by hash, queries, retention.

pub mod archive;
pub mod proto;

/// The store protocol id.
pub const PROTOCOL: libp2p::StreamProtocol =
    libp2p::StreamProtocol::new("/vac/waku/store-query/3.0.0");

/// Status codes (nwaku `waku_store/common.nim`).
pub mod status {
    /// Success.
    pub const SUCCESS: u32 = 200;
    /// Malformed query.
    pub const BAD_REQUEST: u32 = 400;
    /// Rate limited.
    pub const TOO_MANY_REQUESTS: u32 = 429;
    /// The archive is unavailable.
    pub const SERVICE_UNAVAILABLE: u32 = 503;
}

/// The request-response codec: requests are small; a response holds up to 100 messages.
pub type Codec = crate::codec::ProtoCodec<proto::StoreQueryRequest, proto::StoreQueryResponse>;

/// The codec with limits for messages of `max_message_size` bytes.
pub fn codec(max_message_size: usize) -> Codec {
    Codec::new(64 * 1024, archive::MAX_PAGE_SIZE * (max_message_size + 1024) + 64 * 1024)
}

/// Answers a protocol request from `archive`: a 400 for a malformed query, 503 when the
/// database fails. Used by the store server and by the node's own REST endpoint.
pub async fn answer(
    archive: &archive::Archive,
    request: &proto::StoreQueryRequest,
) -> proto::StoreQueryResponse {
    let answer = match to_query(request) {
        Ok(query) => archive.query(&query).await,
        Err(reason) => Err(archive::ArchiveError::BadQuery(reason)),
    };
    to_response(request.request_id.clone(), answer)
}

/// The answer to a query refused because the node is answering as many as it will at once.
pub fn busy(request: &proto::StoreQueryRequest) -> proto::StoreQueryResponse {
    proto::StoreQueryResponse {
        request_id: request.request_id.clone(),
        status_code: Some(status::SERVICE_UNAVAILABLE),
        status_desc: Some("too many store queries in flight; try again".into()),
        messages: Vec::new(),
        pagination_cursor: None,
    }
}

/// Turns a protocol request into an archive query, or says why it is malformed.
fn to_query(request: &proto::StoreQueryRequest) -> Result<archive::StoreQuery, String> {
    let hash = |bytes: &Vec<u8>| -> Result<crate::message::MessageHash, String> {
        let array: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| format!("a message hash is 32 bytes, got {}", bytes.len()))?;
        Ok(crate::message::MessageHash(array))
    };
    let query = archive::StoreQuery {
        pubsub_topic: request.pubsub_topic.clone(),
        content_topics: request.content_topics.clone(),
        time_start: request.time_start,
        time_end: request.time_end,
        hashes: request.message_hashes.iter().map(hash).collect::<Result<_, _>>()?,
        cursor: request.pagination_cursor.as_ref().map(hash).transpose()?,
        forward: request.pagination_forward,
        limit: usize::try_from(request.pagination_limit.unwrap_or(0)).unwrap_or(usize::MAX),
        include_data: request.include_data,
    };
    query.validate().map_err(|e| e.to_string())?;
    Ok(query)
}

/// The protocol response for an archive answer.
fn to_response(
    request_id: String,
    answer: Result<archive::StorePage, archive::ArchiveError>,
) -> proto::StoreQueryResponse {
    match answer {
        Ok(page) => proto::StoreQueryResponse {
            request_id,
            status_code: Some(status::SUCCESS),
            status_desc: Some("OK".into()),
            messages: page
                .messages
                .into_iter()
                .map(|m| proto::WakuMessageKeyValue {
                    message_hash: Some(m.hash.0.to_vec()),
                    pubsub_topic: m.message.as_ref().map(|_| m.pubsub_topic.clone()),
                    message: m.message,
                })
                .collect(),
            pagination_cursor: page.cursor.map(|c| c.0.to_vec()),
        },
        Err(error) => {
            let code = match error {
                archive::ArchiveError::BadQuery(_) | archive::ArchiveError::CursorNotFound => {
                    status::BAD_REQUEST
                }
                _ => status::SERVICE_UNAVAILABLE,
            };
            proto::StoreQueryResponse {
                request_id,
                status_code: Some(code),
                status_desc: Some(error.to_string()),
                messages: Vec::new(),
                pagination_cursor: None,
            }
        }
    }
}
