//! Serving store queries from the archive, archiving relayed messages, retention, and the
//! client side.
//!
//! Database work never runs on the swarm task: inserts go through a bounded queue to a writer
//! task (when it is full, messages are dropped from the archive and counted — relay goes on),
//! and queries run on their own tasks whose answers come back to the swarm task to be sent.

use std::{
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use libp2p::request_response::{self, Message, ResponseChannel};

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{Service, service_peers::ServiceKind};
use crate::{
    message::WakuMessage,
    store::{
        self,
        archive::Archive,
        proto::{StoreQueryRequest, StoreQueryResponse},
    },
};

/// The store's part of the swarm task: the archive, its writer's queue, and answers waiting to
/// be sent.
pub(super) struct StoreState {
    pub(super) archive: Option<Archive>,
    pub(super) archive_queue: Option<mpsc::Sender<(String, WakuMessage)>>,
    pub(super) archive_errors: Arc<AtomicU64>,
    /// Dropped with the service: stops the retention task.
    pub(super) _retention_stop: oneshot::Sender<()>,
    pub(super) store_answers: mpsc::Sender<StoreAnswer>,
    /// One permit per inbound query being answered.
    pub(super) query_slots: Arc<Semaphore>,
}

/// Messages waiting to be archived.
pub(super) const ARCHIVE_QUEUE: usize = 4096;

/// A store answer ready to be sent.
pub(super) type StoreAnswer = (ResponseChannel<StoreQueryResponse>, StoreQueryResponse);

/// Messages written per transaction at most.
const BATCH: usize = 256;

/// Archives messages from the queue until the node stops, in batches of what has queued up
/// (one commit per batch keeps up with busy shards where a commit per message cannot).
pub(super) async fn archive_writer(
    archive: Archive,
    mut queue: mpsc::Receiver<(String, WakuMessage)>,
    errors: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = queue.recv().await {
        batch.push(first);
        while batch.len() < BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        if let Err(error) = archive.insert_batch(&batch).await {
            errors.fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(target: "node::store", %error, messages = batch.len(), "could not archive messages");
        }
        batch.clear();
    }
}

impl Service {
    /// Queues a relayed or published message for the archive (ephemeral ones are skipped).
    pub(super) fn archive(&mut self, topic: &str, message: &WakuMessage) {
        let Some(queue) = &self.store.archive_queue else { return };
        if message.is_ephemeral() {
            return;
        }
        if queue.try_send((topic.to_owned(), message.clone())).is_err() {
            self.stats.archive_dropped += 1;
        }
    }

    pub(super) fn on_store_event(
        &mut self,
        event: request_response::Event<StoreQueryRequest, StoreQueryResponse>,
    ) {
        match event {
            request_response::Event::Message {
                message: Message::Request { request, channel, .. },
                ..
            } => {
                self.stats.store_queries += 1;
                let Some(archive) = self.store.archive.clone() else { return };
                let Ok(slot) = self.store.query_slots.clone().try_acquire_owned() else {
                    self.stats.store_queries_refused += 1;
                    let busy = store::busy(&request);
                    let _ = self.swarm.behaviour_mut().store.send_response(channel, busy);
                    return;
                };
                let answers = self.store.store_answers.clone();
                // Off the swarm task: a slow database must not hold up relay.
                tokio::spawn(async move {
                    let response = store::answer(&archive, &request).await;
                    drop(slot);
                    let _ = answers.send((channel, response)).await;
                });
            }
            request_response::Event::Message {
                message: Message::Response { request_id, response },
                ..
            } => {
                if let Some(pending) = self.client.pending_store.remove(&request_id) {
                    self.settle(ServiceKind::Store, pending, Ok(response));
                }
            }
            request_response::Event::OutboundFailure { request_id, error, .. } => {
                if let Some(pending) = self.client.pending_store.remove(&request_id) {
                    self.settle(ServiceKind::Store, pending, Err(error.to_string()));
                }
            }
            _ => {}
        }
    }

    pub(super) fn send_store_answer(&mut self, (channel, response): StoreAnswer) {
        let _ = self.swarm.behaviour_mut().store.send_response(channel, response);
    }
}

/// Applies the retention policy every minute until the service drops `stopped`'s sender.
pub(super) async fn enforce_retention(
    archive: store::archive::Archive,
    retention: crate::config::Retention,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stopped => return,
        }
        let result = match retention {
            crate::config::Retention::Time(keep) => {
                let keep = i64::try_from(keep.as_nanos()).unwrap_or(i64::MAX);
                archive.delete_older_than(crate::message::now_ns().saturating_sub(keep)).await
            }
            crate::config::Retention::Size(bytes) => {
                archive.shrink_to(i64::try_from(bytes).unwrap_or(i64::MAX)).await
            }
        };
        if let Err(error) = result {
            tracing::warn!(target: "node::store", %error, "retention failed");
        }
    }
}
