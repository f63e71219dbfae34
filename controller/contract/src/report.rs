//! Health reports (schema version 1): JSON bodies signed as [`crate::signing`] describes, and
//! the controller's answer.
//!
//! A report carries two times: `measuredAt`, when the figures were taken, and `sentAt`, when
//! this delivery was signed. Freshness is checked on `sentAt` (a report signed long ago is a
//! replay), health on `measuredAt` — so an agent that queued reports while the controller was
//! away can still deliver them, re-signed, in order, with rising counters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::desired::{ConfigStatus, DesiredConfig};

/// The report schema version this controller reads.
pub const REPORT_VERSION: u32 = 1;

/// The services a node can report running; a tree policy may require some of them. Roles
/// (boot, store, …) are not reported: operators assign them.
pub const SERVICES: [&str; 5] = ["relay", "store", "filter", "lightpush", "peer-exchange"];

/// A health report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// The reporting node's id (hex).
    pub node_id: String,
    /// Strictly increasing per node: the replay guard.
    pub counter: u64,
    /// When this delivery was signed, Unix ms.
    pub sent_at: i64,
    /// When the figures were measured, Unix ms.
    pub measured_at: i64,
    /// The node's current ENR.
    pub enr: String,
    /// Services the node runs now ([`SERVICES`]; earlier agents called them roles and may
    /// send other names, which mean nothing to the controller).
    #[serde(default, alias = "roles")]
    pub services: Vec<String>,
    /// Relay shards it serves.
    #[serde(default)]
    pub shards: Vec<u16>,
    /// Its cluster.
    #[serde(default)]
    pub cluster_id: Option<u16>,
    /// The figures.
    #[serde(default)]
    pub figures: Figures,
}

/// Health figures measured by the agent. Every field is optional so older and newer agents of
/// the same schema version interoperate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Figures {
    /// Inbound connections.
    pub peers_inbound: Option<u32>,
    /// Outbound connections.
    pub peers_outbound: Option<u32>,
    /// Peers by protocol.
    pub peers_by_protocol: BTreeMap<String, u32>,
    /// Relay peers.
    pub relay_peers: Option<u32>,
    /// Relay mesh size per shard topic.
    pub mesh_per_shard: BTreeMap<String, u32>,
    /// Share of relay peers that are fleet nodes (0..1).
    pub fleet_share: Option<f64>,
    /// Seconds from start to the target number of relay peers.
    pub bootstrap_seconds: Option<f64>,
    /// Whether inbound connections have been seen.
    pub inbound_seen: Option<bool>,
    /// discv5 routing table size.
    pub discv5_table: Option<u32>,
    /// Relay messages received per second.
    pub messages_in_per_sec: Option<f64>,
    /// Messages published per second.
    pub messages_out_per_sec: Option<f64>,
    /// The store probe.
    pub store_probe: Option<StoreProbe>,
    /// Times the node was restarted by its agent.
    pub restarts: Option<u64>,
    /// Recent errors.
    pub errors: Vec<String>,
    /// The desired configuration the agent last tried to apply, and how that went.
    pub config: Option<ConfigStatus>,
    /// Measurements folded into this report while the controller was unreachable (absent: 1).
    /// The other figures are the newest of them; `errors` are all of theirs.
    pub merged: Option<u32>,
    /// The earliest measurement folded in, Unix ms (with `merged`).
    pub measured_from: Option<i64>,
}

/// A store probe: a store node asked for a message the agent published.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StoreProbe {
    /// Answered with the message.
    pub ok: bool,
    /// Answer time.
    pub latency_ms: Option<f64>,
    /// What went wrong.
    pub error: Option<String>,
}

/// The controller's answer to an accepted report (202).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportAnswer {
    /// The accepted counter.
    #[serde(default)]
    pub counter: Option<u64>,
    /// The configuration the controller wants this node to run, when it has one. The agent
    /// applies each version once and reports it applied or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<DesiredConfig>,
}

/// Why a report or enrolment is refused (4xx).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// Another schema version.
    #[error("unsupported report version {0}, this controller reads {REPORT_VERSION}")]
    Version(u32),
    /// `sentAt` too far from the controller's clock.
    #[error(
        "sentAt is {skew_secs} s from the controller's clock (at most {max_secs} s): stale report or clock skew"
    )]
    Skew {
        /// How far off.
        skew_secs: i64,
        /// The allowed skew.
        max_secs: i64,
    },
    /// `sentAt` ahead of the controller's clock by more than a small skew: a report from the
    /// future would keep a node "fresh" and make later honest reports look stale.
    #[error(
        "sentAt is {ahead_secs} s ahead of the controller's clock (at most {max_secs} s): fix the agent's clock"
    )]
    Future {
        /// How far ahead.
        ahead_secs: i64,
        /// The allowed skew ahead.
        max_secs: i64,
    },
    /// Measured after it was sent.
    #[error("measuredAt is after sentAt")]
    MeasuredAfterSent,
    /// A field is out of bounds.
    #[error("{0}")]
    Invalid(String),
}

/// Checks that `sent_at` is at most `max_skew_secs` behind `now_ms` and at most
/// `max_ahead_secs` ahead of it.
pub fn check_fresh(
    sent_at: i64,
    now_ms: i64,
    max_skew_secs: i64,
    max_ahead_secs: i64,
) -> Result<(), ReportError> {
    let ahead_ms = sent_at.saturating_sub(now_ms);
    if ahead_ms > max_ahead_secs.saturating_mul(1000) {
        return Err(ReportError::Future { ahead_secs: ahead_ms / 1000, max_secs: max_ahead_secs });
    }
    let skew_secs = (now_ms.saturating_sub(sent_at)).abs() / 1000;
    if skew_secs > max_skew_secs {
        return Err(ReportError::Skew { skew_secs, max_secs: max_skew_secs });
    }
    Ok(())
}

impl Report {
    /// The reported services the controller knows, in [`SERVICES`] order, each once.
    pub fn known_services(&self) -> Vec<String> {
        SERVICES
            .iter()
            .filter(|s| self.services.iter().any(|r| r == *s))
            .map(|s| (*s).to_owned())
            .collect()
    }

    /// Checks version, freshness and bounds.
    pub fn check(
        &self,
        now_ms: i64,
        max_skew_secs: i64,
        max_ahead_secs: i64,
    ) -> Result<(), ReportError> {
        if self.version != REPORT_VERSION {
            return Err(ReportError::Version(self.version));
        }
        check_fresh(self.sent_at, now_ms, max_skew_secs, max_ahead_secs)?;
        if self.measured_at > self.sent_at + 1000 {
            return Err(ReportError::MeasuredAfterSent);
        }
        if self.counter == 0 || self.counter > i64::MAX as u64 {
            return Err(ReportError::Invalid("counter must be in 1..2^63".into()));
        }
        if self.services.len() > 16 || self.services.iter().any(|r| r.is_empty() || r.len() > 32) {
            return Err(ReportError::Invalid("at most 16 services of 1..32 characters".into()));
        }
        if self.shards.len() > 1024 || self.figures.errors.len() > 32 {
            return Err(ReportError::Invalid("too many shards or errors".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            version: 1,
            node_id: "ab".into(),
            counter: 1,
            sent_at: 1_000_000,
            measured_at: 999_000,
            enr: "enr:x".into(),
            services: vec!["relay".into()],
            shards: vec![0],
            cluster_id: Some(1),
            figures: Figures::default(),
        }
    }

    #[test]
    fn a_report_from_the_future_is_refused_beyond_a_small_skew() {
        let ahead = |secs: i64| Report {
            sent_at: 1_000_000 + secs * 1000,
            measured_at: 1_000_000 + secs * 1000,
            ..report()
        };
        assert_eq!(ahead(9).check(1_000_000, 300, 10), Ok(()));
        assert_eq!(
            ahead(291).check(1_000_000, 300, 10),
            Err(ReportError::Future { ahead_secs: 291, max_secs: 10 })
        );
    }

    #[test]
    fn checks_version_freshness_and_bounds() {
        assert_eq!(report().check(1_000_000, 300, 10), Ok(()));
        assert_eq!(
            report().check(1_000_000 + 301_000, 300, 10),
            Err(ReportError::Skew { skew_secs: 301, max_secs: 300 })
        );
        assert_eq!(
            Report { version: 2, ..report() }.check(1_000_000, 300, 10),
            Err(ReportError::Version(2))
        );
        assert_eq!(
            Report { measured_at: 2_000_000, ..report() }.check(1_000_000, 300, 10),
            Err(ReportError::MeasuredAfterSent)
        );
        assert!(Report { counter: 0, ..report() }.check(1_000_000, 300, 10).is_err());
        // Unknown figure fields from a newer agent are ignored, not refused.
        let json = r#"{"version":1,"nodeId":"ab","counter":1,"sentAt":1,"measuredAt":1,"enr":"enr:x","figures":{"relayPeers":3,"futureFigure":7}}"#;
        let parsed: Report = serde_json::from_str(json).unwrap();
        assert_eq!(parsed.figures.relay_peers, Some(3));
    }
}
