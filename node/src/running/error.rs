//! The node's errors.

use crate::message::MessageError;

/// Errors of the node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A transport could not be set up or a listener failed.
    #[error("transport: {0}")]
    Transport(String),
    /// The message may not be published.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// A topic string is invalid.
    #[error(transparent)]
    Topic(#[from] crate::topics::TopicError),
    /// No peer to publish to.
    #[error("no relay peers on {0}")]
    NoPeers(String),
    /// Relay is not mounted.
    #[error("relay is disabled on this node")]
    RelayDisabled,
    /// Dialing failed.
    #[error("dial failed: {0}")]
    Dial(String),
    /// A request to a service peer failed.
    #[error("request failed: {0}")]
    Request(String),
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
}
