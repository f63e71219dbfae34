//! What the dashboard pages show, worked out from registry rows: every figure formatted here,
//! so the templates only lay it out (and askama escapes all of it).

use std::{collections::BTreeMap, time::Duration};

use crate::{
    db::{
        audit::AuditEntry,
        nodes::NodeRow,
        rollouts::Rollout,
        trees::{TreeRow, VersionRow, VersionState},
    },
    health::Health,
};

/// Placeholder for a figure the node has not reported.
pub(crate) const NONE: &str = "—";

/// How urgent something is; also the CSS class it is drawn with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// Needs an operator now.
    Critical,
    /// Degraded.
    Warning,
    /// Fine.
    Passing,
}

impl Level {
    pub(crate) fn class(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Warning => "warning",
            Self::Passing => "passing",
        }
    }
}

impl From<Health> for Level {
    fn from(health: Health) -> Self {
        match health {
            Health::Passing => Self::Passing,
            Health::Warning => Self::Warning,
            Health::Critical => Self::Critical,
        }
    }
}

/// "4 s ago", "3 min ago", "2 h ago", "5 d ago".
pub(crate) fn ago(now_ms: i64, at_ms: i64) -> String {
    let secs = (now_ms - at_ms).max(0) / 1000;
    match secs {
        0..=119 => format!("{secs} s ago"),
        120..=7_199 => format!("{} min ago", secs / 60),
        7_200..=172_799 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// "in 40 s", "in 3 min"… for a time ahead (or "now" once passed).
pub(crate) fn ahead(now_ms: i64, at_ms: i64) -> String {
    if at_ms <= now_ms {
        return "now".into();
    }
    format!("in {}", ago(at_ms, now_ms).trim_end_matches(" ago"))
}

/// A Unix-ms time as UTC, to the second.
pub(crate) fn utc(at_ms: i64) -> String {
    let Ok(ms) = u64::try_from(at_ms) else { return NONE.into() };
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// The first 8 and last 4 hex digits of a node id.
pub(crate) fn short_id(node_id: &str) -> String {
    if node_id.len() <= 14 || !node_id.is_ascii() {
        return node_id.into();
    }
    format!("{}…{}", &node_id[..8], &node_id[node_id.len() - 4..])
}

fn opt<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| NONE.into(), |v| v.to_string())
}

/// One node as a table row.
#[derive(Debug, Clone)]
pub(crate) struct NodeView {
    pub(crate) node_id: String,
    pub(crate) short_id: String,
    pub(crate) label: String,
    pub(crate) roles: String,
    pub(crate) shards: String,
    pub(crate) health: &'static str,
    pub(crate) reason: String,
    /// "yes", "no" or "not checked".
    pub(crate) reachable: &'static str,
    pub(crate) reachable_class: &'static str,
    pub(crate) peers_in_out: String,
    pub(crate) relay_peers: String,
    /// Below the configured minimum.
    pub(crate) relay_short: bool,
    pub(crate) fleet_share: String,
    pub(crate) bootstrap: String,
    /// The same, as measured (the overview's distribution).
    pub(crate) bootstrap_seconds: Option<f64>,
    pub(crate) store_probe: String,
    pub(crate) store_probe_class: &'static str,
    pub(crate) restarts: String,
    pub(crate) last_report: String,
    pub(crate) config: String,
    pub(crate) config_class: &'static str,
    /// "reason (by …, since …)" while in maintenance, else empty.
    pub(crate) maintenance: String,
}

impl NodeView {
    pub(crate) fn new(node: &NodeRow, now_ms: i64, min_relay_peers: u32) -> Self {
        let figures = node.figures().unwrap_or_default();
        let (reachable, reachable_class) = match node.reachable {
            Some(true) => ("yes", "passing"),
            Some(false) => ("no", "critical"),
            None => ("not checked", ""),
        };
        let (store_probe, store_probe_class) = match &figures.store_probe {
            None => (NONE.to_string(), ""),
            Some(probe) if probe.ok => (
                probe.latency_ms.map_or_else(|| "ok".into(), |ms| format!("{ms:.1} ms")),
                "passing",
            ),
            Some(probe) => {
                (format!("failed: {}", probe.error.as_deref().unwrap_or("no answer")), "critical")
            }
        };
        let (config, config_class) = match (&node.desired_config, &figures.config) {
            (None, None) => (NONE.to_string(), ""),
            (Some(desired), Some(status)) if status.version == desired.version => {
                if status.applied {
                    (format!("v{} applied", status.version), "passing")
                } else {
                    (
                        format!(
                            "v{} failed: {}",
                            status.version,
                            status.error.as_deref().unwrap_or("no reason given")
                        ),
                        "critical",
                    )
                }
            }
            (Some(desired), _) => (format!("v{} not yet applied", desired.version), "warning"),
            (None, Some(status)) => (format!("v{} reported", status.version), ""),
        };
        let peers_in_out = match (figures.peers_inbound, figures.peers_outbound) {
            (None, None) => NONE.into(),
            (inbound, outbound) => format!("{} / {}", opt(inbound), opt(outbound)),
        };
        Self {
            node_id: node.node_id.clone(),
            short_id: short_id(&node.node_id),
            label: node.label.clone(),
            roles: node.roles.join(", "),
            shards: shards_text(node.cluster_id, &node.shards),
            health: node.health.as_str(),
            reason: node.health_reason.clone(),
            reachable,
            reachable_class,
            peers_in_out,
            relay_peers: opt(figures.relay_peers),
            relay_short: figures.relay_peers.is_some_and(|n| n < min_relay_peers),
            fleet_share: figures
                .fleet_share
                .map_or_else(|| NONE.into(), |share| format!("{:.0} %", share * 100.0)),
            bootstrap: figures
                .bootstrap_seconds
                .map_or_else(|| NONE.into(), |secs| format!("{secs:.2} s")),
            bootstrap_seconds: figures.bootstrap_seconds,
            store_probe,
            store_probe_class,
            restarts: opt(figures.restarts),
            last_report: node.last_measured_at.map_or_else(|| "never".into(), |at| ago(now_ms, at)),
            config,
            config_class,
            maintenance: node.maintenance.as_ref().map_or_else(String::new, |m| {
                format!("{} ({}, {})", m.reason, m.by, ago(now_ms, m.since))
            }),
        }
    }
}

/// "cluster 1: 0, 2" (or the shards alone when the cluster is unknown).
pub(crate) fn shards_text(cluster: Option<u16>, shards: &[u16]) -> String {
    let list = shards.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
    match (cluster, list.is_empty()) {
        (_, true) => NONE.into(),
        (Some(cluster), false) => format!("cluster {cluster}: {list}"),
        (None, false) => list,
    }
}

/// How well one relay shard is served.
#[derive(Debug, Clone)]
pub(crate) struct ShardView {
    pub(crate) cluster: String,
    pub(crate) shard: u16,
    pub(crate) passing: usize,
    pub(crate) warning: usize,
    pub(crate) critical: usize,
    pub(crate) level: Level,
}

/// Every shard any node serves, with its nodes counted by health; a shard no passing node
/// serves is critical, one served by a single passing node a warning.
pub(crate) fn shard_coverage(nodes: &[NodeRow]) -> Vec<ShardView> {
    let mut counts: BTreeMap<(Option<u16>, u16), [usize; 3]> = BTreeMap::new();
    for node in nodes {
        for shard in &node.shards {
            let entry = counts.entry((node.cluster_id, *shard)).or_default();
            entry[match node.health {
                Health::Passing => 0,
                Health::Warning => 1,
                Health::Critical => 2,
            }] += 1;
        }
    }
    counts
        .into_iter()
        .map(|((cluster, shard), [passing, warning, critical])| ShardView {
            cluster: opt(cluster),
            shard,
            passing,
            warning,
            critical,
            level: match passing {
                0 => Level::Critical,
                1 => Level::Warning,
                _ => Level::Passing,
            },
        })
        .collect()
}

/// One tree as a table row.
#[derive(Debug, Clone)]
pub(crate) struct TreeView {
    pub(crate) name: String,
    pub(crate) domain: String,
    pub(crate) url: String,
    pub(crate) signer: String,
    pub(crate) seq: String,
    pub(crate) records: String,
    pub(crate) published: String,
    /// What needs doing, if anything: a failed build, a signature awaited, a retirement.
    pub(crate) status: String,
    pub(crate) level: Level,
}

impl TreeView {
    /// `versions`: the tree's newest versions, newest first.
    pub(crate) fn new(tree: &TreeRow, versions: &[VersionRow], now_ms: i64) -> Self {
        let published = versions.iter().find(|v| v.state == VersionState::Published);
        let pending = versions.iter().find(|v| v.state == VersionState::Pending);
        let signed = versions.iter().find(|v| v.state == VersionState::Signed);
        let (status, level) = if let Some(error) = &tree.last_error {
            (format!("build failed: {error}"), Level::Critical)
        } else if let Some(pending) = pending {
            (
                format!(
                    "seq {} awaits an offline signature (built {})",
                    pending.seq,
                    ago(now_ms, pending.created_at)
                ),
                Level::Warning,
            )
        } else if let Some(signed) = signed {
            (format!("seq {} signed, not yet published", signed.seq), Level::Warning)
        } else if let Some(at) = tree.retire_at {
            (format!("retiring: removed {}", ahead(now_ms, at)), Level::Warning)
        } else if published.is_some() {
            ("published".into(), Level::Passing)
        } else {
            ("nothing published yet".into(), Level::Warning)
        };
        Self {
            name: tree.name.clone(),
            domain: tree.domain.clone(),
            url: tree
                .public_key
                .as_ref()
                .map_or_else(|| NONE.into(), |key| format!("enrtree://{key}@{}", tree.domain)),
            signer: tree.signer.to_string(),
            seq: opt(published.map(|v| v.seq)),
            records: published.map_or_else(
                || NONE.into(),
                |v| format!("{} nodes, {} links", v.enrs.len(), v.links.len()),
            ),
            published: published
                .and_then(|v| v.published_at)
                .map_or_else(|| NONE.into(), |at| ago(now_ms, at)),
            status,
            level,
        }
    }
}

/// One version of a tree as a table row.
#[derive(Debug, Clone)]
pub(crate) struct VersionView {
    pub(crate) seq: u64,
    pub(crate) state: &'static str,
    pub(crate) records: usize,
    pub(crate) links: usize,
    pub(crate) created: String,
    pub(crate) signed: String,
    pub(crate) published: String,
}

impl VersionView {
    pub(crate) fn new(version: &VersionRow) -> Self {
        Self {
            seq: version.seq,
            state: version.state.as_str(),
            records: version.enrs.len(),
            links: version.links.len(),
            created: utc(version.created_at),
            signed: version.signed_at.map_or_else(|| NONE.into(), utc),
            published: version.published_at.map_or_else(|| NONE.into(), utc),
        }
    }
}

/// `detail` with its times (`…At` fields holding Unix ms) as UTC text, for people.
fn readable_times(detail: &serde_json::Value) -> serde_json::Value {
    match detail {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let value = match value.as_i64() {
                        Some(ms) if key.ends_with("At") => serde_json::Value::String(utc(ms)),
                        _ => readable_times(value),
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        serde_json::Value::Array(items) => items.iter().map(readable_times).collect(),
        other => other.clone(),
    }
}

/// One audit entry as a table row.
#[derive(Debug, Clone)]
pub(crate) struct AuditView {
    pub(crate) at: String,
    pub(crate) actor: String,
    pub(crate) action: String,
    pub(crate) subject: String,
    pub(crate) detail: String,
}

impl AuditView {
    pub(crate) fn new(entry: &AuditEntry) -> Self {
        let detail = match &entry.detail {
            serde_json::Value::Object(map) if map.is_empty() => String::new(),
            other => readable_times(other).to_string(),
        };
        Self {
            at: utc(entry.at),
            actor: entry.actor.clone(),
            action: entry.action.clone(),
            subject: entry.subject.clone(),
            detail,
        }
    }
}

/// Something an operator should look at, with where to look.
#[derive(Debug, Clone)]
pub(crate) struct Attention {
    pub(crate) level: Level,
    pub(crate) text: String,
    pub(crate) href: String,
}

/// The problems of the fleet, most urgent first: uncovered shards, critical nodes, failed or
/// waiting trees, configurations that did not apply, halted rollouts.
pub(crate) fn attention(
    shards: &[ShardView],
    nodes: &[NodeView],
    trees: &[TreeView],
    halted_rollouts: &[Rollout],
) -> Vec<Attention> {
    let mut out = Vec::new();
    for shard in shards {
        let text = match shard.passing {
            0 => format!(
                "shard {} of cluster {}: no passing node serves it",
                shard.shard, shard.cluster
            ),
            1 => format!(
                "shard {} of cluster {}: a single passing node serves it",
                shard.shard, shard.cluster
            ),
            _ => continue,
        };
        out.push(Attention { level: shard.level, text, href: "#shards".into() });
    }
    for node in nodes {
        let href = format!("/dashboard/nodes/{}", node.node_id);
        // An operator is working on it: expected to be down, already out of the trees.
        if node.health != "passing" && node.maintenance.is_empty() {
            let level = if node.health == "critical" { Level::Critical } else { Level::Warning };
            out.push(Attention {
                level,
                text: format!(
                    "node {} ({}) is {}: {}",
                    node.label, node.short_id, node.health, node.reason
                ),
                href: href.clone(),
            });
        }
        if node.config_class == "critical" {
            out.push(Attention {
                level: Level::Warning,
                text: format!(
                    "node {} ({}): configuration {}",
                    node.label, node.short_id, node.config
                ),
                href,
            });
        }
    }
    for tree in trees {
        if tree.level != Level::Passing {
            out.push(Attention {
                level: tree.level,
                text: format!("tree {}: {}", tree.name, tree.status),
                href: format!("/dashboard/trees/{}", tree.name),
            });
        }
    }
    for rollout in halted_rollouts {
        out.push(Attention {
            level: Level::Warning,
            text: format!(
                "rollout {} halted: {}",
                rollout.id,
                rollout.reason.as_deref().unwrap_or("no reason recorded")
            ),
            href: format!("/api/v1/rollouts/{}", rollout.id),
        });
    }
    out.sort_by_key(|a| a.level);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_details_show_times_as_utc() {
        let detail = serde_json::json!({
            "label": "edge-1", "expiresAt": 86_400_000, "seq": 3,
            "maintenance": { "since": 5, "startedAt": 0 }
        });
        let shown = readable_times(&detail);
        assert_eq!(shown["expiresAt"], "1970-01-02T00:00:00Z");
        assert_eq!(shown["maintenance"]["startedAt"], "1970-01-01T00:00:00Z");
        assert_eq!(shown["seq"], 3, "other numbers stay numbers");
        assert_eq!(shown["maintenance"]["since"], 5);
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(ago(10_000, 6_000), "4 s ago");
        assert_eq!(ago(1_000_000, 0), "16 min ago");
        assert_eq!(ago(3 * 3_600_000, 0), "3 h ago");
        assert_eq!(ago(3 * 86_400_000, 0), "3 d ago");
        // A clock behind the report's never shows a negative age.
        assert_eq!(ago(0, 5_000), "0 s ago");
        assert_eq!(ahead(0, 40_000), "in 40 s");
        assert_eq!(ahead(50_000, 40_000), "now");
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(-1), NONE);
    }

    #[test]
    fn short_ids_keep_both_ends() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(short_id(id), "01234567…cdef");
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(shards_text(Some(1), &[0, 2]), "cluster 1: 0, 2");
        assert_eq!(shards_text(None, &[]), NONE);
    }
}
