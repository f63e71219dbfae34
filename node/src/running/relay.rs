//! Relay (gossipsub): subscriptions, publishing, validation of what arrives.

use std::sync::Arc;

use libp2p::{PeerId, gossipsub};
use prost::Message as _;

use super::{NodeError, NodeEvent, Service, TARGET_RELAY_PEERS};
use crate::{
    message::{MessageError, MessageHash, WakuMessage},
    relay,
};

impl Service {
    pub(super) fn subscribe(&mut self, topic: &str) -> Result<(), NodeError> {
        if !self.config.relay {
            return Err(NodeError::RelayDisabled);
        }
        let ident = gossipsub::IdentTopic::new(topic);
        self.swarm
            .behaviour_mut()
            .relay
            .subscribe(&ident)
            .map_err(|e| NodeError::Config(e.to_string()))?;
        let _ = self.swarm.behaviour_mut().relay.set_topic_params(ident, relay::topic_params());
        self.subscribed.insert(topic.to_owned());
        Ok(())
    }

    pub(super) fn publish(
        &mut self,
        topic: &str,
        message: WakuMessage,
    ) -> Result<MessageHash, NodeError> {
        if !self.config.relay {
            return Err(NodeError::RelayDisabled);
        }
        message.check_publishable(self.config.max_message_size)?;
        let hash = message.hash(topic);
        let data = message.encode_to_vec();
        match self.swarm.behaviour_mut().relay.publish(gossipsub::IdentTopic::new(topic), data) {
            Ok(_) => {
                self.stats.messages_published += 1;
                // Gossipsub never hands our own messages back, so local filter subscribers
                // (e.g. of a lightpushed message) are served here.
                self.push_to_subscribers(topic, &message);
                self.archive(topic, &message);
                Ok(hash)
            }
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                Err(NodeError::NoPeers(topic.to_owned()))
            }
            // The same bytes again: already relayed, which is what the caller wanted.
            Err(gossipsub::PublishError::Duplicate) => Ok(hash),
            Err(e) => Err(NodeError::Transport(e.to_string())),
        }
    }

    pub(super) fn relay_peers(&self) -> Vec<PeerId> {
        self.swarm
            .behaviour()
            .relay
            .all_peers()
            .filter(|(_, topics)| topics.iter().any(|t| self.subscribed.contains(t.as_str())))
            .map(|(peer, _)| *peer)
            .collect()
    }

    pub(super) fn on_relay_event(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message { propagation_source, message_id, message } => {
                let verdict = self.validate(&message);
                let acceptance = match &verdict {
                    Ok(_) if !self.config.forward_messages => gossipsub::MessageAcceptance::Ignore,
                    Ok(_) => gossipsub::MessageAcceptance::Accept,
                    Err(_) => gossipsub::MessageAcceptance::Reject,
                };
                let _ = self.swarm.behaviour_mut().relay.report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    acceptance,
                );
                match verdict {
                    Ok(waku) => {
                        self.stats.messages_received += 1;
                        let topic = message.topic.into_string();
                        let hash = waku.hash(&topic);
                        self.push_to_subscribers(&topic, &waku);
                        self.archive(&topic, &waku);
                        self.note_arrival(hash, &topic, &waku.content_topic, None);
                        self.emit(NodeEvent::Message {
                            topic,
                            hash,
                            message: Arc::new(waku),
                            from: propagation_source,
                        });
                    }
                    Err(error) => {
                        self.stats.invalid_messages += 1;
                        tracing::debug!(target: "node::relay", peer = %propagation_source, %error, "rejected message");
                    }
                }
            }
            gossipsub::Event::Subscribed { .. }
                if self.reached_target.is_none()
                    && self.relay_peers().len() >= TARGET_RELAY_PEERS =>
            {
                self.reached_target = Some(self.started.elapsed());
            }
            _ => {}
        }
    }

    pub(super) fn validate(
        &self,
        message: &gossipsub::Message,
    ) -> Result<WakuMessage, MessageError> {
        let waku = WakuMessage::decode_bounded(&message.data, self.config.max_message_size)?;
        if let Some(drift) = self.config.max_timestamp_drift {
            let stamp = waku.timestamp.unwrap_or(0);
            if !within_drift(crate::message::now_ns(), stamp, drift) {
                return Err(MessageError::Decode(format!(
                    "timestamp {stamp} drifts more than {drift:?}"
                )));
            }
        }
        Ok(waku)
    }
}

/// Whether a peer-supplied `stamp` (ns) is within `drift` of `now`. Any i64 may arrive: the
/// difference is taken without overflow (`now - stamp` panics in debug builds for
/// `stamp = i64::MIN`).
fn within_drift(now: i64, stamp: i64, drift: std::time::Duration) -> bool {
    u128::from(now.abs_diff(stamp)) <= drift.as_nanos()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::within_drift;

    #[test]
    fn drift_is_checked_for_every_i64_without_overflow() {
        let now = 1_700_000_000_000_000_000;
        let drift = Duration::from_secs(20);
        assert!(within_drift(now, now - 19_000_000_000, drift));
        assert!(within_drift(now, now + 20_000_000_000, drift));
        assert!(!within_drift(now, now + 21_000_000_000, drift));
        for stamp in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX] {
            assert!(!within_drift(now, stamp, drift), "{stamp}");
        }
        assert!(within_drift(i64::MAX, i64::MAX, Duration::ZERO));
    }
}
