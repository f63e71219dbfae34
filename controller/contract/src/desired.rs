//! The configuration the controller wants a node to run, and the agent's word on applying it.

use serde::{Deserialize, Serialize};

/// Whether a desired configuration was applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ConfigStatus {
    /// The desired configuration's version.
    pub version: u64,
    /// Applied (the node runs it) or failed (the node runs the previous one).
    pub applied: bool,
    /// Why it failed.
    pub error: Option<String>,
}

/// The configuration the controller wants a node to run. Absent fields leave the agent's own
/// configuration as it is. Versions rise; an agent applies each version once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DesiredConfig {
    /// Rises with every change.
    pub version: u64,
    /// Roles; `relay`, `store`, `filter`, `lightpush` and `peer-exchange` switch services on,
    /// others (e.g. `boot`) are labels.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// Relay shards.
    #[serde(default)]
    pub shards: Option<Vec<u16>>,
    /// Most connections.
    #[serde(default)]
    pub max_connections: Option<usize>,
}

/// Why an agent refuses a desired configuration: a bound it exceeds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DesiredConfigError(pub &'static str);

impl DesiredConfig {
    /// Checks bounds: what an agent refuses to apply.
    pub fn check(&self) -> Result<(), DesiredConfigError> {
        if let Some(roles) = &self.roles
            && (roles.len() > 16 || roles.iter().any(|r| r.is_empty() || r.len() > 32))
        {
            return Err(DesiredConfigError("at most 16 roles of 1..32 characters"));
        }
        if let Some(shards) = &self.shards
            && (shards.is_empty() || shards.len() > 64 || shards.iter().any(|&s| s > 1023))
        {
            return Err(DesiredConfigError("1..64 shards, each at most 1023"));
        }
        if self.max_connections.is_some_and(|m| !(1..=10_000).contains(&m)) {
            return Err(DesiredConfigError("max connections must be in 1..=10000"));
        }
        Ok(())
    }
}
