//! The store probe, on store nodes: publish a small message on the node's first shard, then
//! ask the node's store for it by hash until it is there. Success and the time it took are
//! the figure — like Sonda's, but from inside the node.

use std::time::{Duration, Instant};

use contract::report::StoreProbe;
use node::{message::WakuMessage, store::proto::StoreQueryRequest};

use crate::supervisor::NodeInstance;

/// How often the store is asked while waiting.
const POLL: Duration = Duration::from_millis(25);

/// Probes `instance`'s store; `None` when it archives nothing.
pub async fn probe_store(
    instance: &NodeInstance,
    content_topic: &str,
    timeout: Duration,
) -> Option<StoreProbe> {
    let topic = instance.probe_topic.as_ref()?;
    let failed = |error: String| StoreProbe {
        ok: false,
        latency_ms: None,
        error: Some(contract::report::clamp_text(error, contract::report::MAX_TEXT)),
    };
    let mut nonce = [0u8; 16];
    node::crypto::random_bytes(&mut nonce);
    let message = WakuMessage::new(content_topic, nonce.to_vec(), node::message::now_ns());
    let started = Instant::now();
    let hash = match instance.handle.publish(topic, message).await {
        Ok(hash) => hash,
        Err(error) => return Some(failed(format!("publishing the probe: {error}"))),
    };
    let request =
        StoreQueryRequest { message_hashes: vec![hash.0.to_vec()], ..StoreQueryRequest::default() };
    let search = async {
        loop {
            match instance.handle.query_archive(request.clone()).await {
                Ok(answer)
                    if answer
                        .messages
                        .iter()
                        .any(|m| m.message_hash.as_deref() == Some(&hash.0[..])) =>
                {
                    return Ok(());
                }
                Ok(_) => tokio::time::sleep(POLL).await,
                Err(error) => return Err(format!("querying the store: {error}")),
            }
        }
    };
    Some(match tokio::time::timeout(timeout, search).await {
        Ok(Ok(())) => StoreProbe {
            ok: true,
            latency_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
            error: None,
        },
        Ok(Err(error)) => failed(error),
        Err(_) => failed(format!("the probe message was not in the store after {timeout:?}")),
    })
}
