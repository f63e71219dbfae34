//! The agent's errors: one enum for configuration, one for running. Each message names the
//! file, address or step that failed, so an operator can act on it without a backtrace.

use std::{net::SocketAddr, path::PathBuf};

/// Why `agent.toml` (or a file it names) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: cannot read: {source}", path = path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown key, or a value of the wrong type.
    #[error("{path}: {message}", path = path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the line and column.
        message: String,
    },
    /// Parsed, but the values cannot work together.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// The node key cannot be unlocked.
    #[error("node key {path}: {message}", path = path.display())]
    Key {
        /// The keystore file.
        path: PathBuf,
        /// Why (never the key or the password).
        message: String,
    },
}

/// Why the agent cannot start or go on.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file in the data directory cannot be read or written.
    #[error("{path}: {source}", path = path.display())]
    Disk {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file in the data directory holds something else than the agent wrote.
    #[error("{path}: unreadable: {message}", path = path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The node did not start, or did not answer its health check in time.
    #[error("the node did not start: {0}")]
    NodeStart(String),
    /// A compatibility listener cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The supervisor has stopped (the agent is shutting down).
    #[error("the supervisor has stopped")]
    Stopped,
    /// Not enrolled, and enrolment cannot succeed without an operator: no token file, an
    /// unreadable one, or a token the controller refuses (unknown, used, expired, revoked).
    /// Waiting would only hide it, so the agent stops (systemd shows it failed).
    #[error("cannot enrol: {0}")]
    CannotEnrol(String),
}

impl AgentError {
    pub(crate) fn disk(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Disk { path, source }
    }
}
