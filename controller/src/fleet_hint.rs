//! What the controller tells each agent of its fleet, so fleet nodes find each other without
//! hand-written bootstrap lists (a tree cannot bootstrap them: it lists only healthy nodes, and
//! a node without peers is not healthy). Each report's answer carries a few records of other
//! fleet nodes that are up, on the same cluster, and the fleet's peer ids. A snapshot is taken
//! once per reconcile pass, so answering a report costs no query. Each hint carries a version
//! that the agent echoes: an unchanged hint is not sent again, nor even built (at a thousand
//! nodes its peer ids are tens of kilobytes).

use contract::report::{FleetHint, MAX_FLEET_PEER_IDS, MAX_FLEET_RECORDS};
use node::{enrtree::NodeRecord, waku_enr::WakuEnr};
use sha2::{Digest, Sha256};

use crate::{db::nodes::NodeRow, health::Health};

/// One fleet node a hint may name.
#[derive(Debug, Clone)]
struct Member {
    node_id: String,
    cluster_id: Option<u16>,
    enr: String,
}

/// The fleet as of the last reconcile pass.
#[derive(Debug, Clone, Default)]
pub struct FleetSnapshot {
    /// Nodes that are up (not critical, not in maintenance, not found unreachable).
    members: Vec<Member>,
    /// Every enrolled node's id, record seq and peer id (their records name the key), bounded.
    peer_ids: Vec<(String, u64, String)>,
    /// SHA-256 of everything above: a hint is a function of it, the node and its cluster.
    digest: [u8; 32],
}

impl FleetSnapshot {
    /// The snapshot of `nodes`. Peer ids of records `previous` already decoded (same node,
    /// same seq) are taken from it: checking a record's signature is what costs, and a pass
    /// runs every few seconds over records that rarely change.
    pub fn of(nodes: &[NodeRow], previous: &Self) -> Self {
        let known: std::collections::HashMap<(&str, u64), &str> = previous
            .peer_ids
            .iter()
            .map(|(id, seq, peer)| ((id.as_str(), *seq), peer.as_str()))
            .collect();
        let mut snapshot = Self::default();
        for node in nodes {
            let peer = match known.get(&(node.node_id.as_str(), node.enr_seq)) {
                Some(peer) => (*peer).to_owned(),
                None => {
                    let Ok(record) = node.enr.parse::<NodeRecord>() else { continue };
                    let Ok(waku) = WakuEnr::decode(record.enr()) else { continue };
                    waku.peer_id.to_string()
                }
            };
            if snapshot.peer_ids.len() < MAX_FLEET_PEER_IDS {
                snapshot.peer_ids.push((node.node_id.clone(), node.enr_seq, peer));
            }
            let up = node.health != Health::Critical
                && node.maintenance.is_none()
                && node.reachable != Some(false);
            if up {
                snapshot.members.push(Member {
                    node_id: node.node_id.clone(),
                    cluster_id: node.cluster_id,
                    enr: node.enr.clone(),
                });
            }
        }
        let mut hash = Sha256::new();
        for member in &snapshot.members {
            let cluster = member.cluster_id.map_or(-1, i32::from);
            hash.update(format!("m {} {cluster} {}\n", member.node_id, member.enr));
        }
        for (id, _, peer) in &snapshot.peer_ids {
            hash.update(format!("p {id} {peer}\n"));
        }
        snapshot.digest = hash.finalize().into();
        snapshot
    }

    /// The version of the hint for `node_id` on `cluster_id`: 16 bytes of SHA-256 over the
    /// snapshot's digest and the two, so it changes whenever the hint may.
    fn version_for(&self, node_id: &str, cluster_id: Option<u16>) -> String {
        let mut hash = Sha256::new();
        hash.update(self.digest);
        hash.update(format!("{node_id} {}", cluster_id.map_or(-1, i32::from)));
        data_encoding::HEXLOWER.encode(&hash.finalize()[..16])
    }

    /// The hint for `node_id` on `cluster_id`: up to [`MAX_FLEET_RECORDS`] other members on its
    /// cluster — a different window of them for each node, so a large fleet's nodes do not all
    /// bootstrap from the same few — and the other members' peer ids. `None` when it is alone,
    /// or when `known` (the version its agent echoed) names this very hint.
    pub fn hint_for(
        &self,
        node_id: &str,
        cluster_id: Option<u16>,
        known: Option<&str>,
    ) -> Option<FleetHint> {
        let version = self.version_for(node_id, cluster_id);
        if known == Some(version.as_str()) {
            return None;
        }
        let candidates: Vec<&Member> = self
            .members
            .iter()
            .filter(|m| m.node_id != node_id)
            .filter(|m| {
                cluster_id.is_none() || m.cluster_id.is_none() || m.cluster_id == cluster_id
            })
            .collect();
        let peer_ids: Vec<String> = self
            .peer_ids
            .iter()
            .filter(|(id, _, _)| id != node_id)
            .map(|(_, _, peer)| peer.clone())
            .collect();
        if candidates.is_empty() && peer_ids.is_empty() {
            return None;
        }
        let start = if candidates.is_empty() { 0 } else { spread(node_id) % candidates.len() };
        let records = candidates
            .iter()
            .cycle()
            .skip(start)
            .take(candidates.len().min(MAX_FLEET_RECORDS))
            .map(|m| m.enr.clone())
            .collect();
        Some(FleetHint { records, peer_ids, version })
    }
}

/// A number from a node id (hex of a hash, so its first bytes are already uniform).
fn spread(node_id: &str) -> usize {
    usize::from_str_radix(node_id.get(..8).unwrap_or("0"), 16).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(port: u16, cluster: u16, health: Health) -> NodeRow {
        let key = node::crypto::generate_key();
        let record = NodeRecord::sign(&key, 1, std::net::Ipv4Addr::LOCALHOST, port, port).unwrap();
        NodeRow {
            enr: record.to_string(),
            cluster_id: Some(cluster),
            health,
            ..NodeRow::example(&record.node_id_hex())
        }
    }

    #[test]
    fn hints_name_other_live_nodes_of_the_cluster_in_a_window_per_node() {
        let mut nodes: Vec<NodeRow> =
            (0..40).map(|i| node(40_000 + i, 1, Health::Passing)).collect();
        nodes.push(node(41_000, 1, Health::Critical));
        nodes.push(node(41_001, 2, Health::Passing));
        let snapshot = FleetSnapshot::of(&nodes, &FleetSnapshot::default());
        // Taken again from the first: the same peer ids, without decoding a record again.
        let again = FleetSnapshot::of(&nodes, &snapshot);
        assert_eq!(again.peer_ids, snapshot.peer_ids);
        let me = &nodes[0];
        let hint = snapshot.hint_for(&me.node_id, Some(1), None).unwrap();
        assert_eq!(hint.records.len(), MAX_FLEET_RECORDS);
        assert!(!hint.records.contains(&me.enr), "never itself");
        assert!(!hint.records.contains(&nodes[40].enr), "never a critical node");
        assert!(!hint.records.contains(&nodes[41].enr), "never another cluster's");
        // Every enrolled node's peer id but its own.
        assert_eq!(hint.peer_ids.len(), 41);
        // Another node gets another window (40 nodes, 16 each: not all the same first record).
        let firsts: std::collections::HashSet<String> = nodes[..40]
            .iter()
            .map(|n| snapshot.hint_for(&n.node_id, Some(1), None).unwrap().records[0].clone())
            .collect();
        assert!(firsts.len() > 4, "{}", firsts.len());
        // Alone: nothing to say.
        let alone = FleetSnapshot::of(&nodes[..1], &snapshot);
        assert!(alone.hint_for(&me.node_id, Some(1), None).is_none());
    }

    #[test]
    fn an_echoed_version_leaves_an_unchanged_hint_out_and_a_change_brings_it_back() {
        let mut nodes: Vec<NodeRow> =
            (0..5).map(|i| node(42_000 + i, 1, Health::Passing)).collect();
        let snapshot = FleetSnapshot::of(&nodes, &FleetSnapshot::default());
        let me = nodes[0].node_id.clone();
        let hint = snapshot.hint_for(&me, Some(1), None).unwrap();
        assert_eq!(hint.version.len(), 32);
        assert!(snapshot.hint_for(&me, Some(1), Some(&hint.version)).is_none());
        assert_eq!(snapshot.hint_for(&me, Some(1), Some("stale")), Some(hint.clone()));
        // A member goes critical: its record leaves the hint, and the hint has a new version.
        nodes[1].health = Health::Critical;
        let changed = FleetSnapshot::of(&nodes, &snapshot);
        let fresh = changed.hint_for(&me, Some(1), Some(&hint.version)).unwrap();
        assert_ne!(fresh.version, hint.version);
        assert_eq!(fresh.records.len(), 3);
    }
}
