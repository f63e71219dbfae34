//! The controller's configuration: a TOML file, with secrets only from files or the
//! environment.

use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;

use crate::{health::HealthThresholds, policy::TreePolicy};

/// Environment variable holding the operators' API token (or use `admin_token_file`).
pub const ADMIN_TOKEN_ENV: &str = "WAKUFLEET_ADMIN_TOKEN";

/// Everything the controller is told at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControllerConfig {
    /// HTTP API address.
    pub listen: SocketAddr,
    /// `sqlite://file` (the embedded default) or `postgres://…`.
    pub database_url: String,
    /// File holding the operators' bearer token (else `$WAKUFLEET_ADMIN_TOKEN`).
    pub admin_token_file: Option<PathBuf>,
    /// Health thresholds.
    pub health: HealthThresholds,
    /// How far a report's `sentAt` may be from our clock.
    pub max_skew_secs: i64,
    /// Reports kept per node.
    pub reports_kept: i64,
    /// How often health, trees and publication are brought up to date.
    pub reconcile_interval_ms: u64,
    /// TTL of tree roots, wherever published. Superseded leaves stay published for at least
    /// this long after a new root, so clients holding the old root can still walk it.
    pub root_ttl: u32,
    /// TTL of the other tree records (content-addressed, so they can be cached long).
    pub ttl: u32,
    /// The built-in authoritative DNS server, if any.
    pub dns: Option<DnsConfig>,
    /// Signing keys held online.
    pub keys: Vec<KeyConfig>,
    /// Trees defined at start (more can be defined over the API).
    pub trees: Vec<TreeConfig>,
    /// Where signed trees are published besides the built-in DNS server.
    pub publishers: Vec<PublisherConfig>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://wakufleet-controller.db".into(),
            admin_token_file: None,
            health: HealthThresholds::default(),
            max_skew_secs: 300,
            reports_kept: 100,
            reconcile_interval_ms: 2_000,
            root_ttl: crate::publish::zone::DEFAULT_ROOT_TTL,
            ttl: crate::publish::zone::DEFAULT_TTL,
            dns: None,
            keys: Vec::new(),
            trees: Vec::new(),
            publishers: Vec::new(),
        }
    }
}

/// The built-in DNS server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// UDP and TCP address.
    pub listen: SocketAddr,
    /// The zone it is authoritative for; every tree domain must be inside it.
    pub zone: String,
}

/// A signing key the controller unlocks at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Its name; trees refer to it as `key:<name>`.
    pub name: String,
    /// The Web3 v3 keystore file.
    pub keystore: PathBuf,
    /// File holding the keystore password (else `$WAKUFLEET_KEY_<NAME>_PASSWORD`).
    pub password_file: Option<PathBuf>,
}

/// A tree defined in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeConfig {
    /// Its name.
    pub name: String,
    /// Where it is published.
    pub domain: String,
    /// `key:<name>` or `offline`.
    pub signer: String,
    /// Who is listed.
    #[serde(default)]
    pub policy: TreePolicy,
}

/// An external publisher, `kind = "…"` in a `[[publishers]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PublisherConfig {
    /// RFC 2136 dynamic updates to a primary DNS server (Knot, BIND, PowerDNS…).
    Rfc2136 {
        /// The primary's address (TCP).
        server: SocketAddr,
        /// The zone it is authoritative for.
        zone: String,
        /// File holding the TSIG key as `[algorithm:]name:base64secret` (Knot's `-y` form).
        tsig_key_file: Option<PathBuf>,
        /// Else the name of an environment variable holding it. Neither: unsigned updates.
        tsig_key_env: Option<String>,
        /// How long one UPDATE exchange may take.
        #[serde(default = "default_publish_timeout_ms")]
        timeout_ms: u64,
    },
}

fn default_publish_timeout_ms() -> u64 {
    10_000
}

impl PublisherConfig {
    /// Builds the publisher. Secrets are read here, from files or the environment.
    pub fn build(&self) -> Result<Box<dyn crate::publish::Publisher>, ConfigError> {
        use crate::publish::rfc2136::{Rfc2136Config, Rfc2136Publisher, TsigKey};
        match self {
            Self::Rfc2136 { server, zone, tsig_key_file, tsig_key_env, timeout_ms } => {
                let key_text = match (tsig_key_file, tsig_key_env) {
                    (Some(path), _) => Some(
                        node::keystore::read_password_file(path)
                            .map_err(|source| ConfigError::Read { path: path.clone(), source })?,
                    ),
                    (None, Some(var)) => {
                        Some(zeroize::Zeroizing::new(std::env::var(var).map_err(|_| {
                            ConfigError::Invalid(format!("rfc2136 publisher: ${var} is not set"))
                        })?))
                    }
                    (None, None) => None,
                };
                let tsig = key_text
                    .map(|text| text.parse::<TsigKey>())
                    .transpose()
                    .map_err(|e| ConfigError::Invalid(format!("rfc2136 publisher: {e}")))?;
                let mut config = Rfc2136Config::new(*server, zone, tsig);
                config.timeout = std::time::Duration::from_millis((*timeout_ms).max(1));
                let publisher = Rfc2136Publisher::new(config)
                    .map_err(|e| ConfigError::Invalid(format!("rfc2136 publisher: {e}")))?;
                Ok(Box::new(publisher))
            }
        }
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not valid TOML of this shape.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    /// A value is invalid.
    #[error("{0}")]
    Invalid(String),
}

impl ControllerConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let config: Self = toml::from_str(&text)
            .map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.health.warning_after_secs >= self.health.critical_after_secs {
            return Err(ConfigError::Invalid(
                "health.warning_after_secs must be below health.critical_after_secs".into(),
            ));
        }
        for tree in &self.trees {
            tree.policy
                .validate()
                .map_err(|e| ConfigError::Invalid(format!("tree {}: {e}", tree.name)))?;
        }
        Ok(())
    }

    /// The operators' token, from the file or the environment.
    pub fn admin_token(&self) -> Result<Option<String>, ConfigError> {
        if let Some(path) = &self.admin_token_file {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: path.clone(), source })?;
            return Ok(Some(text.trim().to_owned()).filter(|t| !t.is_empty()));
        }
        Ok(std::env::var(ADMIN_TOKEN_ENV).ok().filter(|t| !t.is_empty()))
    }
}
