//! The node's errors.

use libp2p::Multiaddr;

use crate::message::MessageError;

/// What caused a failure, kept whole so `error:` lines and logs show the chain.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Errors of the node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A part of the node could not be set up from the configuration (its message quotes the
    /// cause, which is also its source).
    #[error("{what}: {cause}")]
    Setup {
        /// What was being set up.
        what: &'static str,
        /// Why it failed.
        #[source]
        cause: Cause,
    },
    /// A listener could not be opened.
    #[error("cannot listen on {address}: {cause}")]
    Listen {
        /// The address.
        address: Multiaddr,
        /// Why.
        #[source]
        cause: Cause,
    },
    /// A transport failed while running or a listener went away.
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
    /// A wait for relay peers ended first.
    #[error("{had} relay peers, fewer than {wanted}, after {waited:?}")]
    TooFewRelayPeers {
        /// Relay peers the node had at the end.
        had: usize,
        /// Relay peers waited for.
        wanted: usize,
        /// How long.
        waited: std::time::Duration,
    },
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

impl NodeError {
    /// A [`NodeError::Setup`] of `what`, for `map_err`.
    pub(crate) fn setup<E: Into<Cause>>(what: &'static str) -> impl FnOnce(E) -> Self {
        move |cause| Self::Setup { what, cause: cause.into() }
    }
}
