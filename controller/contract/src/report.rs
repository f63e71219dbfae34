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

/// Longest error text in a report (the agent keeps 240 bytes; this leaves room).
pub const MAX_TEXT: usize = 1024;
/// Most errors in one report.
pub const MAX_ERRORS: usize = 32;
/// Most entries in `peersByProtocol`.
pub const MAX_PROTOCOLS: usize = 64;
/// Longest protocol id in `peersByProtocol`.
pub const MAX_PROTOCOL_LEN: usize = 128;
/// Most entries in `meshPerShard` (one per shard of a cluster).
pub const MAX_MESH_TOPICS: usize = 1024;
/// Longest topic in `meshPerShard`.
pub const MAX_TOPIC_LEN: usize = 64;
/// Longest ENR text: EIP-778 caps a record at 300 bytes, which is 400 base64 characters and
/// the `enr:` prefix.
pub const MAX_ENR_TEXT: usize = 404;
/// Most bytes of one stored report (it is stored re-serialised, so this bounds what a node can
/// make the controller keep: `reports_kept` times this).
pub const MAX_STORED_REPORT: usize = 48 * 1024;

/// A health report. Unknown fields are refused: the schema has a version, and a field the
/// controller does not read is one it would otherwise store unread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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
    /// The [`FleetHint::version`] the running node was given last: an unchanged hint is then
    /// left out of the answer (at a thousand nodes its peer ids are tens of kilobytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet_version: Option<String>,
}

/// Health figures measured by the agent. Every field is optional; names this controller does not
/// know are refused (a newer agent's figure needs a newer schema version).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
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
    /// Seconds the running node has been up (absent while it is down): a node that just
    /// started has few peers for a reason.
    pub node_uptime_secs: Option<u64>,
    /// The agent's last report before a clean stop: the node is going away now, so it should
    /// leave its trees now rather than when its reports stop being fresh.
    pub stopping: Option<bool>,
}

/// A store probe: a store node asked for a message the agent published.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct StoreProbe {
    /// Answered with the message.
    pub ok: bool,
    /// Answer time.
    pub latency_ms: Option<f64>,
    /// What went wrong.
    pub error: Option<String>,
}

/// Most records a fleet hint carries.
pub const MAX_FLEET_RECORDS: usize = 16;
/// Most peer ids a fleet hint carries.
pub const MAX_FLEET_PEER_IDS: usize = 4096;

/// Other nodes of the reporting node's fleet, from the controller.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetHint {
    /// Records (`enr:…`) of up to [`MAX_FLEET_RECORDS`] other fleet nodes on the node's
    /// cluster that are up (not critical, not in maintenance): discv5 bootstrap records and
    /// dial candidates.
    #[serde(default)]
    pub records: Vec<String>,
    /// libp2p peer ids of the fleet's nodes, up to [`MAX_FLEET_PEER_IDS`].
    #[serde(default)]
    pub peer_ids: Vec<String>,
    /// Names this content: the agent sends it back in its next reports
    /// ([`Report::fleet_version`]) and gets no hint while the content stays the same.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
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
    /// The fleet this node belongs to: other fleet nodes to bootstrap from, and the fleet's
    /// peer ids (for the fleet share), so no operator writes bootstrap lists for the fleet
    /// itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetHint>,
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
    // saturating_abs: the difference saturates to i64::MIN when `sent_at` is far ahead and
    // `max_ahead_secs` so large that the check above lets it through.
    let skew_secs = now_ms.saturating_sub(sent_at).saturating_abs() / 1000;
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
        // Saturating: `sent_at` is the sender's number, and near i64::MAX the sum overflows.
        if self.measured_at > self.sent_at.saturating_add(1000) {
            return Err(ReportError::MeasuredAfterSent);
        }
        if self.counter == 0 || self.counter > i64::MAX as u64 {
            return Err(ReportError::Invalid("counter must be in 1..2^63".into()));
        }
        if self.services.len() > 16 || self.services.iter().any(|r| r.is_empty() || r.len() > 32) {
            return Err(ReportError::Invalid("at most 16 services of 1..32 characters".into()));
        }
        if self.node_id.len() != 64 || !self.node_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ReportError::Invalid("nodeId must be 64 hex digits".into()));
        }
        if self.enr.len() > MAX_ENR_TEXT {
            return Err(ReportError::Invalid(format!(
                "the ENR is {} characters, over EIP-778's 300 bytes ({MAX_ENR_TEXT} characters)",
                self.enr.len()
            )));
        }
        if self.shards.len() > 1024 {
            return Err(ReportError::Invalid("at most 1024 shards".into()));
        }
        self.figures.check()
    }

    /// The report as stored: parsed and re-serialised (no unknown fields, no whitespace), and
    /// at most [`MAX_STORED_REPORT`] bytes.
    pub fn to_stored(&self) -> Result<String, ReportError> {
        let text = serde_json::to_string(self)
            .map_err(|e| ReportError::Invalid(format!("report not serialisable: {e}")))?;
        if text.len() > MAX_STORED_REPORT {
            return Err(ReportError::Invalid(format!(
                "the report is {} bytes once parsed, over {MAX_STORED_REPORT}",
                text.len()
            )));
        }
        Ok(text)
    }
}

fn check_text(what: &str, text: &str, max: usize) -> Result<(), ReportError> {
    if text.len() > max {
        return Err(ReportError::Invalid(format!("{what} is {} bytes, over {max}", text.len())));
    }
    Ok(())
}

fn check_rate(what: &str, value: Option<f64>, max: f64) -> Result<(), ReportError> {
    match value {
        Some(v) if !(v.is_finite() && (0.0..=max).contains(&v)) => {
            Err(ReportError::Invalid(format!("{what} must be a number in 0..={max}")))
        }
        _ => Ok(()),
    }
}

impl Figures {
    /// Bounds on every map, list, string and number.
    pub fn check(&self) -> Result<(), ReportError> {
        if self.peers_by_protocol.len() > MAX_PROTOCOLS {
            return Err(ReportError::Invalid(format!(
                "peersByProtocol has {} entries, over {MAX_PROTOCOLS}",
                self.peers_by_protocol.len()
            )));
        }
        for protocol in self.peers_by_protocol.keys() {
            check_text("a peersByProtocol key", protocol, MAX_PROTOCOL_LEN)?;
        }
        if self.mesh_per_shard.len() > MAX_MESH_TOPICS {
            return Err(ReportError::Invalid(format!(
                "meshPerShard has {} entries, over {MAX_MESH_TOPICS}",
                self.mesh_per_shard.len()
            )));
        }
        for topic in self.mesh_per_shard.keys() {
            check_text("a meshPerShard key", topic, MAX_TOPIC_LEN)?;
        }
        if self.errors.len() > MAX_ERRORS {
            return Err(ReportError::Invalid(format!(
                "{} errors, over {MAX_ERRORS}",
                self.errors.len()
            )));
        }
        for error in &self.errors {
            check_text("an error", error, MAX_TEXT)?;
        }
        if let Some(error) = self.store_probe.as_ref().and_then(|p| p.error.as_deref()) {
            check_text("the store probe's error", error, MAX_TEXT)?;
        }
        if let Some(error) = self.config.as_ref().and_then(|c| c.error.as_deref()) {
            check_text("the configuration's error", error, MAX_TEXT)?;
        }
        check_rate("fleetShare", self.fleet_share, 1.0)?;
        check_rate("bootstrapSeconds", self.bootstrap_seconds, 1e9)?;
        check_rate("messagesInPerSec", self.messages_in_per_sec, 1e9)?;
        check_rate("messagesOutPerSec", self.messages_out_per_sec, 1e9)?;
        check_rate(
            "storeProbe.latencyMs",
            self.store_probe.as_ref().and_then(|p| p.latency_ms),
            1e9,
        )?;
        Ok(())
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary (agents use it so that what they
/// send stays within the bounds above).
pub fn clamp_text(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            version: 1,
            node_id: "ab".repeat(32),
            counter: 1,
            sent_at: 1_000_000,
            measured_at: 999_000,
            enr: "enr:x".into(),
            services: vec!["relay".into()],
            shards: vec![0],
            cluster_id: Some(1),
            figures: Figures::default(),
            fleet_version: None,
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
    fn times_at_the_ends_of_i64_are_checked_without_overflow() {
        // Found by the report_json fuzz target's harness (fuzz/corpus/report_json/
        // regression-sent-at-max): `sent_at + 1000` overflowed.
        let json = r#"{"version":1,"nodeId":"a448f24c6d18e575453db13171562b71999873db5b286df957af199ec94617f7","counter":1,"sentAt":9223372036854775807,"measuredAt":9223372036854775807,"enr":"enr:x"}"#;
        let far = serde_json::from_str::<Report>(json).unwrap();
        assert_eq!(far.check(i64::MAX, 300, 10), Ok(()));
        assert_eq!(
            Report { measured_at: i64::MIN, ..far.clone() }.check(i64::MAX, 300, 10),
            Ok(())
        );
        assert!(matches!(far.check(0, 300, 10), Err(ReportError::Future { .. })));
        assert!(matches!(check_fresh(i64::MAX, -1, 300, i64::MAX), Err(ReportError::Skew { .. })));
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
        // Unknown fields are refused, at the top and inside the figures.
        let json = r#"{"version":1,"nodeId":"ab","counter":1,"sentAt":1,"measuredAt":1,"enr":"enr:x","figures":{"relayPeers":3,"futureFigure":7}}"#;
        let error = serde_json::from_str::<Report>(json).unwrap_err().to_string();
        assert!(error.contains("unknown field `futureFigure`"), "{error}");
        let json = r#"{"version":1,"nodeId":"ab","counter":1,"sentAt":1,"measuredAt":1,"enr":"enr:x","extra":1}"#;
        assert!(serde_json::from_str::<Report>(json).is_err());
        // The old name of `services` still reads.
        let json = r#"{"version":1,"nodeId":"ab","counter":1,"sentAt":1,"measuredAt":1,"enr":"enr:x","roles":["relay"]}"#;
        assert_eq!(serde_json::from_str::<Report>(json).unwrap().services, ["relay"]);
    }

    #[test]
    fn every_map_list_string_and_number_is_bounded() {
        let now = 1_000_000;
        let with = |figures: Figures| Report { figures, ..report() };
        let refused = |r: Report| matches!(r.check(now, 300, 10), Err(ReportError::Invalid(_)));
        let many = |n: usize, len: usize| {
            (0..n).map(|i| (format!("{i:0>len$}"), 1)).collect::<BTreeMap<String, u32>>()
        };
        assert!(!refused(with(Figures {
            peers_by_protocol: many(MAX_PROTOCOLS, 8),
            ..Figures::default()
        })));
        assert!(refused(with(Figures {
            peers_by_protocol: many(MAX_PROTOCOLS + 1, 8),
            ..Figures::default()
        })));
        assert!(refused(with(Figures {
            peers_by_protocol: many(1, MAX_PROTOCOL_LEN + 1),
            ..Figures::default()
        })));
        assert!(refused(with(Figures {
            mesh_per_shard: many(MAX_MESH_TOPICS + 1, 8),
            ..Figures::default()
        })));
        assert!(refused(with(Figures {
            mesh_per_shard: many(1, MAX_TOPIC_LEN + 1),
            ..Figures::default()
        })));
        assert!(refused(with(Figures {
            errors: vec!["e".into(); MAX_ERRORS + 1],
            ..Figures::default()
        })));
        assert!(refused(with(Figures {
            errors: vec!["e".repeat(MAX_TEXT + 1)],
            ..Figures::default()
        })));
        let probe = StoreProbe { error: Some("e".repeat(MAX_TEXT + 1)), ..StoreProbe::default() };
        assert!(refused(with(Figures { store_probe: Some(probe), ..Figures::default() })));
        assert!(refused(with(Figures { fleet_share: Some(1.5), ..Figures::default() })));
        assert!(refused(with(Figures { bootstrap_seconds: Some(-1.0), ..Figures::default() })));
        assert!(refused(with(Figures {
            messages_in_per_sec: Some(f64::NAN),
            ..Figures::default()
        })));
        assert!(refused(Report { node_id: "ab".into(), ..report() }));
        assert!(refused(Report { enr: format!("enr:{}", "x".repeat(MAX_ENR_TEXT)), ..report() }));
        // The largest report the bounds allow still stores within MAX_STORED_REPORT only if it
        // is not padded out everywhere at once: the stored size is checked on its own.
        let big = with(Figures {
            errors: vec!["e".repeat(MAX_TEXT); MAX_ERRORS],
            mesh_per_shard: many(MAX_MESH_TOPICS, MAX_TOPIC_LEN),
            ..Figures::default()
        });
        assert!(!refused(big.clone()));
        assert!(matches!(big.to_stored(), Err(ReportError::Invalid(_))));
        let stored = report().to_stored().unwrap();
        assert_eq!(serde_json::from_str::<Report>(&stored).unwrap(), report());
        assert_eq!(clamp_text("héllo".into(), 2), "h");
    }
}
