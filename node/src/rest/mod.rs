//! nwaku's REST API, so scripts, Consul checks and js-waku's own test harness can drive our
//! node: `/health`, `/debug/v1/info`, `/debug/v1/version`, the relay endpoints (pubsub and
//! `/auto` content-topic forms) and `/store/v3/messages` with nwaku's JSON shapes, the admin
//! routes with `--rest-admin` ([`admin`]), and a separate Prometheus `/metrics` router for the
//! metrics port. Whoever binds a port puts it behind [`access::RestAccess`] (token, Host
//! allow-list).

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use data_encoding::BASE64;
use serde::{Deserialize, Serialize};

use crate::{
    message::WakuMessage,
    running::{NodeError, NodeEvent, NodeHandle},
    topics::ShardTopic,
};

pub mod access;
mod admin;

/// Messages kept per subscribed topic for `GET …/messages` (nwaku's
/// `--rest-relay-cache-capacity` default).
pub const DEFAULT_CACHE_CAPACITY: usize = 50;
/// Topics REST clients may subscribe to at once (pubsub and content topics together): each
/// holds a cache of messages, so the number is bounded.
pub const MAX_SUBSCRIPTIONS: usize = 100;

/// How a REST router serves.
#[derive(Debug, Clone, Copy)]
pub struct RestSettings {
    /// Messages cached per subscribed topic.
    pub cache_capacity: usize,
    /// The node's largest message, for the body limit.
    pub max_message_size: usize,
    /// Serve the admin routes and let store queries name a peer to dial (`--rest-admin`).
    pub admin: bool,
    /// Most subscribed topics.
    pub max_subscriptions: usize,
}

impl RestSettings {
    /// nwaku's defaults for a node whose messages are at most `max_message_size` bytes:
    /// admin routes off.
    pub fn new(max_message_size: usize) -> Self {
        Self {
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            max_message_size,
            admin: false,
            max_subscriptions: MAX_SUBSCRIPTIONS,
        }
    }
}

/// A message as nwaku's REST API writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestMessage {
    /// Base64 payload.
    pub payload: String,
    /// Content topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_topic: Option<String>,
    /// Version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Timestamp in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// Base64 meta.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<String>,
    /// Ephemeral flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral: Option<bool>,
}

impl RestMessage {
    fn from_message(message: &WakuMessage) -> Self {
        Self {
            payload: BASE64.encode(&message.payload),
            content_topic: Some(message.content_topic.clone()),
            version: message.version,
            timestamp: message.timestamp,
            meta: message.meta.as_ref().map(|m| BASE64.encode(m)),
            ephemeral: message.ephemeral,
        }
    }

    fn into_message(self) -> Result<WakuMessage, RestError> {
        let decode = |field: &str, s: &str| {
            BASE64
                .decode(s.as_bytes())
                .map_err(|_| RestError::bad(format!("{field} is not base64")))
        };
        let content_topic =
            self.content_topic.ok_or_else(|| RestError::bad("contentTopic is required"))?;
        Ok(WakuMessage {
            payload: decode("payload", &self.payload)?,
            content_topic,
            version: self.version,
            // nwaku stamps messages that come without a timestamp.
            timestamp: Some(self.timestamp.unwrap_or_else(crate::message::now_ns)),
            meta: self.meta.map(|m| decode("meta", &m)).transpose()?,
            rate_limit_proof: None,
            ephemeral: self.ephemeral,
        })
    }
}

/// A REST failure: status and a plain-text message, as nwaku answers.
#[derive(Debug)]
pub struct RestError(StatusCode, String);

impl RestError {
    fn bad(message: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, message.into())
    }
}

impl From<NodeError> for RestError {
    fn from(error: NodeError) -> Self {
        let status = match error {
            NodeError::Message(_) | NodeError::Topic(_) => StatusCode::BAD_REQUEST,
            NodeError::NoPeers(_) | NodeError::RelayDisabled => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self(status, format!("Failed to publish: {error}"))
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

#[derive(Default)]
struct Cache {
    topics: HashMap<String, VecDeque<RestMessage>>,
    content_topics: HashSet<String>,
}

#[derive(Clone)]
struct RestState {
    node: NodeHandle,
    cache: Arc<Mutex<Cache>>,
    capacity: usize,
    admin: bool,
    max_subscriptions: usize,
}

impl RestState {
    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The REST API of `node`. Spawns the task that caches relayed messages for `GET` requests.
pub fn router(node: NodeHandle, settings: RestSettings) -> Router {
    let state = RestState {
        node: node.clone(),
        cache: Arc::default(),
        capacity: settings.cache_capacity.max(1),
        admin: settings.admin,
        max_subscriptions: settings.max_subscriptions,
    };
    let max_message_size = settings.max_message_size;
    // The filler holds the cache only, not the node handle: it ends when the node's events
    // channel closes (node and router gone) instead of keeping the node's channel open itself.
    tokio::spawn(fill_cache(state.cache.clone(), state.capacity, node.events()));
    let routes = if settings.admin { admin::routes() } else { Router::new() };
    routes
        .route("/health", get(health))
        .route("/debug/v1/info", get(info))
        .route("/info", get(info))
        .route("/debug/v1/version", get(version))
        .route("/version", get(version))
        .route("/relay/v1/subscriptions", axum::routing::post(subscribe).delete(unsubscribe))
        .route("/relay/v1/messages/{topic}", get(get_messages).post(post_message))
        .route(
            "/relay/v1/auto/subscriptions",
            axum::routing::post(auto_subscribe).delete(auto_unsubscribe),
        )
        .route("/relay/v1/auto/messages/{content_topic}", get(get_auto_messages))
        .route("/relay/v1/auto/messages", axum::routing::post(post_auto_message))
        .route("/store/v3/messages", get(store_messages))
        // Base64 grows payloads by a third; leave room for the JSON around it.
        .layer(DefaultBodyLimit::max(max_message_size / 3 * 4 + 64 * 1024))
        .with_state(state)
}

/// The Prometheus endpoint, for the separate metrics port.
pub fn metrics_router(node: NodeHandle) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(node)
}

async fn fill_cache(
    cache: Arc<Mutex<Cache>>,
    capacity: usize,
    mut events: tokio::sync::broadcast::Receiver<NodeEvent>,
) {
    loop {
        match events.recv().await {
            Ok(NodeEvent::Message { topic, message, .. }) => {
                let rest = RestMessage::from_message(&message);
                let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
                let by_content = cache.content_topics.contains(&message.content_topic);
                for key in [Some(topic), by_content.then(|| message.content_topic.clone())]
                    .into_iter()
                    .flatten()
                {
                    if let Some(queue) = cache.topics.get_mut(&key) {
                        if queue.len() >= capacity {
                            queue.pop_front();
                        }
                        queue.push_back(rest.clone());
                    }
                }
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// nwaku's `/health`: 200 with the report whenever it completes (a node with no peers is
/// answered 200 with Relay NOT_READY, as nwaku does), 503 when the node has stopped.
async fn health(State(state): State<RestState>) -> Response {
    match state.node.stats().await {
        Ok(stats) => {
            let report = crate::health::HealthReport::of(&stats, state.node.mounted());
            (StatusCode::OK, Json(report.to_json())).into_response()
        }
        Err(_) => {
            let body = serde_json::json!({
                "nodeHealth": "SHUTTING_DOWN",
                "connectionStatus": "Disconnected",
                "protocolsHealth": [{ "Relay": "NOT_READY", "desc": "the node has stopped" }],
            });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

async fn info(State(state): State<RestState>) -> Json<serde_json::Value> {
    let addrs: Vec<String> = state.node.listen_addrs().iter().map(ToString::to_string).collect();
    Json(serde_json::json!({ "listenAddresses": addrs, "enrUri": state.node.enr().to_base64() }))
}

async fn version() -> &'static str {
    concat!("v", env!("CARGO_PKG_VERSION"))
}

/// Refuses a subscription that would take the cached topics past the limit.
fn room_for(state: &RestState, topics: &[String]) -> Result<(), RestError> {
    let cache = state.cache();
    let new: HashSet<&String> = topics.iter().filter(|t| !cache.topics.contains_key(*t)).collect();
    if cache.topics.len() + new.len() > state.max_subscriptions {
        return Err(RestError(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "at most {} subscribed topics; unsubscribe from some first",
                state.max_subscriptions
            ),
        ));
    }
    Ok(())
}

fn parse_topics(body: &[String]) -> Result<(), RestError> {
    for topic in body {
        topic.parse::<ShardTopic>().map_err(|e| RestError::bad(e.to_string()))?;
    }
    Ok(())
}

async fn subscribe(
    State(state): State<RestState>,
    Json(topics): Json<Vec<String>>,
) -> Result<&'static str, RestError> {
    parse_topics(&topics)?;
    room_for(&state, &topics)?;
    for topic in topics {
        state.node.subscribe(&topic).await?;
        state.cache().topics.entry(topic).or_default();
    }
    Ok("OK")
}

async fn unsubscribe(
    State(state): State<RestState>,
    Json(topics): Json<Vec<String>>,
) -> Result<&'static str, RestError> {
    parse_topics(&topics)?;
    for topic in topics {
        state.node.unsubscribe(&topic).await?;
        state.cache().topics.remove(&topic);
    }
    Ok("OK")
}

async fn get_messages(
    State(state): State<RestState>,
    Path(topic): Path<String>,
) -> Result<Json<Vec<RestMessage>>, RestError> {
    take_cached(&state, &topic)
}

fn take_cached(state: &RestState, key: &str) -> Result<Json<Vec<RestMessage>>, RestError> {
    let mut cache = state.cache();
    let queue = cache.topics.get_mut(key).ok_or_else(|| {
        RestError(StatusCode::NOT_FOUND, format!("Not subscribed to topic: {key}"))
    })?;
    Ok(Json(queue.drain(..).collect()))
}

async fn post_message(
    State(state): State<RestState>,
    Path(topic): Path<String>,
    Json(message): Json<RestMessage>,
) -> Result<&'static str, RestError> {
    topic.parse::<ShardTopic>().map_err(|e| RestError::bad(e.to_string()))?;
    state.node.publish(&topic, message.into_message()?).await?;
    Ok("OK")
}

async fn auto_subscribe(
    State(state): State<RestState>,
    Json(topics): Json<Vec<String>>,
) -> Result<&'static str, RestError> {
    room_for(&state, &topics)?;
    for content_topic in topics {
        let pubsub = state.node.autoshard_topic(&content_topic)?;
        state.node.subscribe(&pubsub).await?;
        let mut cache = state.cache();
        cache.content_topics.insert(content_topic.clone());
        cache.topics.entry(content_topic).or_default();
    }
    Ok("OK")
}

async fn auto_unsubscribe(
    State(state): State<RestState>,
    Json(topics): Json<Vec<String>>,
) -> Result<&'static str, RestError> {
    for content_topic in topics {
        state.node.autoshard_topic(&content_topic)?;
        let mut cache = state.cache();
        cache.content_topics.remove(&content_topic);
        cache.topics.remove(&content_topic);
    }
    Ok("OK")
}

async fn get_auto_messages(
    State(state): State<RestState>,
    Path(content_topic): Path<String>,
) -> Result<Json<Vec<RestMessage>>, RestError> {
    take_cached(&state, &content_topic)
}

async fn post_auto_message(
    State(state): State<RestState>,
    Json(message): Json<RestMessage>,
) -> Result<&'static str, RestError> {
    state.node.publish_auto(message.into_message()?).await?;
    Ok("OK")
}

/// nwaku's `GET /store/v3/messages`: queries this node's archive, or the store node named by
/// `peerAddr`.
async fn store_messages(
    State(state): State<RestState>,
    axum::extract::Query(params): axum::extract::Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, RestError> {
    let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let list = |k: &str| {
        get(k)
            .map(|v| v.split(',').map(str::trim).map(str::to_owned).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let number = |k: &str| -> Result<Option<i64>, RestError> {
        get(k)
            .map(|v| v.parse::<i64>().map_err(|_| RestError::bad(format!("{k} must be a number"))))
            .transpose()
    };
    let hash = |v: &str| -> Result<Vec<u8>, RestError> {
        if let Ok(hash) = v.parse::<crate::message::MessageHash>() {
            return Ok(hash.0.to_vec());
        }
        BASE64
            .decode(v.as_bytes())
            .or_else(|_| data_encoding::BASE64URL.decode(v.as_bytes()))
            .map_err(|_| RestError::bad(format!("invalid hash {v:?}")))
    };
    let request = crate::store::proto::StoreQueryRequest {
        request_id: String::new(),
        include_data: get("includeData").is_some_and(|v| v == "true"),
        pubsub_topic: get("pubsubTopic").map(str::to_owned),
        content_topics: list("contentTopics"),
        time_start: number("startTime")?,
        time_end: number("endTime")?,
        message_hashes: list("hashes").iter().map(|h| hash(h)).collect::<Result<_, _>>()?,
        pagination_cursor: get("cursor").map(hash).transpose()?,
        pagination_forward: get("ascending").is_none_or(|v| v == "true"),
        pagination_limit: number("pageSize")?.map(|n| u64::try_from(n).unwrap_or(0)),
    };
    let response = match get("peerAddr") {
        // It makes the node dial any address a caller names: an admin's tool.
        Some(_) if !state.admin => {
            return Err(RestError(
                StatusCode::FORBIDDEN,
                "peerAddr makes the node dial another peer: it needs --rest-admin".into(),
            ));
        }
        Some(addr) => {
            let addr: libp2p::Multiaddr =
                addr.parse().map_err(|_| RestError::bad("invalid peerAddr"))?;
            let peer = crate::peers::peer_of(&addr)
                .ok_or_else(|| RestError::bad("peerAddr needs /p2p/<peer id>"))?;
            state.node.dial(addr).await?;
            state.node.store_query(peer, request).await?
        }
        None => state
            .node
            .query_archive(request)
            .await
            .map_err(|e| RestError(StatusCode::PRECONDITION_FAILED, e.to_string()))?,
    };
    let hex = |bytes: &[u8]| format!("0x{}", data_encoding::HEXLOWER.encode(bytes));
    let messages: Vec<serde_json::Value> = response
        .messages
        .iter()
        .map(|kv| {
            serde_json::json!({
                "messageHash": kv.message_hash.as_deref().map(hex),
                "message": kv.message.as_ref().map(RestMessage::from_message),
                "pubsubTopic": kv.pubsub_topic,
            })
        })
        .collect();
    Ok(Json(serde_json::json!({
        "requestId": response.request_id,
        "statusCode": response.status_code,
        "statusDesc": response.status_desc,
        "messages": messages,
        "paginationCursor": response.pagination_cursor.as_deref().map(hex),
    })))
}

async fn metrics(State(node): State<NodeHandle>) -> Response {
    match node.stats().await.map_err(|e| e.to_string()).and_then(|stats| {
        crate::metrics::render(&stats, concat!("v", env!("CARGO_PKG_VERSION")))
            .map_err(|e| e.to_string())
    }) {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, error).into_response(),
    }
}
