//! Config drift: a node whose reported cluster or shards differ from what operators said it
//! should run — the trees its roles put it in, and its desired configuration once the agent
//! says it applied it. Such a node drops out of its trees without a word (the tree policy
//! simply stops selecting it), as when a preset left nodes on the wrong cluster
//! (logos-delivery #4114); here it becomes a *warning* with the reason.

use contract::desired::DesiredConfig;

use crate::db::{nodes::NodeRow, trees::TreeRow};

/// The words every drift reason starts with (the metric and the dashboard look for them).
pub const DRIFT: &str = "config drift";

/// What a tree expects of the nodes its roles select.
#[derive(Debug, Clone, PartialEq)]
struct TreeExpectation {
    name: String,
    roles: Vec<String>,
    cluster_id: Option<u16>,
    shards: Vec<u16>,
}

/// A tree that lists nodes: where a matching node's record must fit.
#[derive(Debug, Clone, PartialEq)]
struct Home {
    name: String,
    domain: String,
    policy: crate::policy::TreePolicy,
}

/// What operators' trees expect of nodes, taken from the tree definitions once per reconcile
/// pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expectations {
    trees: Vec<TreeExpectation>,
    homes: Vec<Home>,
}

impl Expectations {
    /// From the defined trees. Only trees that list nodes by role count: a tree for "any role"
    /// says nothing about a particular node, and a retiring tree no longer matters.
    pub fn of(trees: &[TreeRow]) -> Self {
        let by_role = trees
            .iter()
            .filter(|t| t.retire_at.is_none() && t.policy.list_nodes && !t.policy.roles.is_empty())
            .filter(|t| t.policy.cluster_id.is_some() || !t.policy.shards.is_empty())
            .map(|t| TreeExpectation {
                name: t.name.clone(),
                roles: t.policy.roles.clone(),
                cluster_id: t.policy.cluster_id,
                shards: t.policy.shards.clone(),
            })
            .collect();
        let homes = trees
            .iter()
            .filter(|t| t.retire_at.is_none() && t.policy.list_nodes)
            .map(|t| Home {
                name: t.name.clone(),
                domain: t.domain.clone(),
                policy: t.policy.clone(),
            })
            .collect();
        Self { trees: by_role, homes }
    }

    /// Why `node`'s record cannot be listed in a tree it belongs to, if it cannot: too large
    /// for one UDP answer under that tree's domain. Such a node is a warning and left out of
    /// that tree; the tree is still built.
    pub fn oversized(&self, node: &NodeRow) -> Option<String> {
        self.homes.iter().filter(|home| home.policy.matches(node)).find_map(|home| {
            crate::policy::record_fits(&home.domain, &node.enr)
                .err()
                .map(|reason| format!("not listed in tree {}: {reason}", home.name))
        })
    }

    /// Why `node` drifted, if it has.
    pub fn drift(&self, node: &NodeRow) -> Option<String> {
        if let Some(reason) = desired_drift(node) {
            return Some(reason);
        }
        for tree in &self.trees {
            if !tree.roles.iter().any(|r| node.roles.contains(r)) {
                continue;
            }
            if let Some(want) = tree.cluster_id
                && node.cluster_id != Some(want)
            {
                let have = node.cluster_id.map_or("none".to_owned(), |c| c.to_string());
                return Some(format!(
                    "{DRIFT}: cluster {have}, but tree {} lists its roles on cluster {want}",
                    tree.name
                ));
            }
            if !tree.shards.is_empty() && !tree.shards.iter().any(|s| node.shards.contains(s)) {
                return Some(format!(
                    "{DRIFT}: shards {:?}, but tree {} lists its roles on shards {:?}",
                    node.shards, tree.name, tree.shards
                ));
            }
        }
        None
    }
}

/// The desired shards differ from the reported ones although the agent says it applied that
/// configuration (while a rollout is still applying it, the old shards are expected).
fn desired_drift(node: &NodeRow) -> Option<String> {
    let DesiredConfig { version, shards: Some(want), .. } = node.desired_config.as_ref()? else {
        return None;
    };
    let applied = node.figures()?.config?;
    if applied.version < *version || !applied.applied {
        return None;
    }
    let mut have = node.shards.clone();
    have.sort_unstable();
    let mut want = want.clone();
    want.sort_unstable();
    (have != want).then(|| {
        format!(
            "{DRIFT}: shards {have:?}, but desired configuration v{version} (applied) says {want:?}"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{policy::TreePolicy, tree_definition::Signer};

    fn tree(name: &str, roles: &[&str], cluster: Option<u16>, shards: &[u16]) -> TreeRow {
        TreeRow {
            name: name.into(),
            domain: format!("{name}.example.org"),
            policy: TreePolicy {
                roles: roles.iter().map(|r| (*r).to_owned()).collect(),
                shards: shards.to_vec(),
                cluster_id: cluster,
                ..serde_json::from_str("{}").unwrap()
            },
            signer: Signer::Offline,
            public_key: None,
            last_error: None,
            retire_at: None,
        }
    }

    fn node(roles: &[&str], cluster: u16, shards: &[u16]) -> NodeRow {
        NodeRow {
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            shards: shards.to_vec(),
            cluster_id: Some(cluster),
            ..NodeRow::example("aa")
        }
    }

    #[test]
    fn a_node_on_another_cluster_than_its_roles_tree_drifted() {
        let expectations = Expectations::of(&[tree("boot", &["boot"], Some(3), &[])]);
        assert_eq!(expectations.drift(&node(&["boot"], 3, &[0])), None);
        let reason = expectations.drift(&node(&["boot", "relay"], 2, &[0])).unwrap();
        assert_eq!(reason, "config drift: cluster 2, but tree boot lists its roles on cluster 3");
        // A node of other roles is not this tree's business.
        assert_eq!(expectations.drift(&node(&["store"], 2, &[0])), None);
    }

    #[test]
    fn shards_outside_the_tree_and_unapplied_desired_shards() {
        let expectations = Expectations::of(&[tree("s", &["relay"], None, &[1, 2])]);
        assert_eq!(expectations.drift(&node(&["relay"], 1, &[2, 5])), None);
        assert!(expectations.drift(&node(&["relay"], 1, &[0])).unwrap().contains("shards [0]"));
        // "Any role" trees and retiring trees expect nothing.
        let mut retiring = tree("old", &["relay"], Some(9), &[]);
        retiring.retire_at = Some(1);
        let loose = Expectations::of(&[tree("any", &[], Some(9), &[]), retiring]);
        assert_eq!(loose.drift(&node(&["relay"], 1, &[0])), None);

        // Desired shards: drift only once the agent reports that version applied.
        let mut n = node(&["relay"], 1, &[0]);
        n.desired_config = Some(DesiredConfig {
            version: 4,
            shards: Some(vec![0, 1]),
            ..DesiredConfig::default()
        });
        let report = |version: u64, applied: bool| serde_json::json!({ "figures": { "config": { "version": version, "applied": applied } } });
        n.last_report = Some(report(3, true));
        assert_eq!(Expectations::default().drift(&n), None, "still being applied");
        n.last_report = Some(report(4, true));
        let reason = Expectations::default().drift(&n).unwrap();
        assert!(reason.contains("desired configuration v4 (applied) says [0, 1]"), "{reason}");
        n.shards = vec![1, 0];
        assert_eq!(Expectations::default().drift(&n), None, "order does not matter");
    }
}
