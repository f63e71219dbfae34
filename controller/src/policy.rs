//! Tree policies: which registered nodes a tree lists, and the limits that keep it useful to
//! real clients.

use serde::{Deserialize, Serialize};

use crate::{db::nodes::NodeRow, health::Health};

/// Most records in one tree. nwaku resolves at most 100 names per tree (root, branches and
/// leaves); 90 records need 1 root + 8 branches + 90 leaves = 99 lookups.
pub const MAX_ENTRIES: usize = 90;
/// js-waku resolves at most 10 names per URL: a root, one branch and 8 leaves.
pub const JS_WAKU_ENTRIES: usize = 8;

/// Who a tree lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TreePolicy {
    /// Nodes operators gave any of these roles (empty: any role).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Services a listed node must report running, all of them (e.g. `["relay"]`).
    #[serde(default)]
    pub services: Vec<String>,
    /// Nodes serving any of these shards (empty: any).
    #[serde(default)]
    pub shards: Vec<u16>,
    /// Nodes of this cluster only.
    #[serde(default)]
    pub cluster_id: Option<u16>,
    /// At most this many records ([`JS_WAKU_ENTRIES`] by default, so js-waku reaches all).
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
    /// Links to other trees: `enrtree://…` URLs, or `tree:<name>` for a tree of this controller.
    #[serde(default)]
    pub links: Vec<crate::tree_definition::TreeLink>,
    /// `false` for a links-only tree: the stable entry point whose URL clients keep while the
    /// trees it links to are re-keyed (see the README's key rotation procedure).
    #[serde(default = "yes")]
    pub list_nodes: bool,
}

fn yes() -> bool {
    true
}

fn default_max_entries() -> usize {
    JS_WAKU_ENTRIES
}

impl Default for TreePolicy {
    fn default() -> Self {
        Self {
            roles: Vec::new(),
            services: Vec::new(),
            shards: Vec::new(),
            cluster_id: None,
            max_entries: JS_WAKU_ENTRIES,
            links: Vec::new(),
            list_nodes: true,
        }
    }
}

/// Whether the record `enr` fits a leaf of the tree at `domain`: its DNS answer within one
/// 512-byte UDP message (nwaku's resolver has no TCP fallback). Err: why not.
pub fn record_fits(domain: &str, enr: &str) -> Result<(), String> {
    let text = enr
        .parse::<node::enrtree::NodeRecord>()
        .map_err(|e| format!("invalid ENR: {e}"))?
        .to_string();
    let size = node::enrtree::wire::leaf_answer_size(domain, &text);
    if size > node::enrtree::wire::MAX_UDP_MESSAGE {
        return Err(format!(
            "its ENR ({} characters) needs a {size}-byte DNS answer under {domain}, over the \
             512-byte UDP limit",
            text.len()
        ));
    }
    Ok(())
}

impl TreePolicy {
    /// Checks the limits.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_entries == 0 || self.max_entries > MAX_ENTRIES {
            return Err(format!(
                "maxEntries must be 1..={MAX_ENTRIES}: nwaku stops after 100 lookups per tree"
            ));
        }
        crate::membership::check_roles(&self.roles).map_err(|e| format!("roles: {e}"))?;
        if let Some(unknown) =
            self.services.iter().find(|s| !contract::report::SERVICES.contains(&s.as_str()))
        {
            return Err(format!(
                "services: unknown {unknown:?}; services are {}",
                contract::report::SERVICES.join(", ")
            ));
        }
        if self.links.len() > 8 {
            return Err("at most 8 links".into());
        }
        if !self.list_nodes && self.links.is_empty() {
            return Err("a tree that lists no nodes needs links".into());
        }
        Ok(())
    }

    /// Whether `node` matches the role, shard and cluster filters (health aside).
    pub fn matches(&self, node: &NodeRow) -> bool {
        (self.roles.is_empty() || node.roles.iter().any(|r| self.roles.contains(r)))
            && self.services.iter().all(|s| node.services.contains(s))
            && (self.shards.is_empty() || node.shards.iter().any(|s| self.shards.contains(s)))
            && self.cluster_id.is_none_or(|c| node.cluster_id == Some(c))
    }

    /// The nodes to list in the tree at `domain`: matching, never critical, starting,
    /// unreachable or in maintenance, proven reachable at their current record when `require_reachable` (the
    /// controller probes: a record not yet probed is not listed), and with a record whose answer fits one UDP message there (one that does
    /// not is left out rather than failing the whole build); passing before warning, longest
    /// passing first (a stable membership means fewer rebuilds), then by node id.
    pub fn select<'a>(
        &self,
        nodes: &'a [NodeRow],
        domain: &str,
        require_reachable: bool,
    ) -> Vec<&'a NodeRow> {
        if !self.list_nodes {
            return Vec::new();
        }
        let mut eligible: Vec<&NodeRow> = nodes
            .iter()
            .filter(|n| self.matches(n))
            .filter(|n| n.health != Health::Critical && n.reachable != Some(false))
            .filter(|n| !require_reachable || n.reachable == Some(true))
            .filter(|n| n.maintenance.is_none())
            .filter(|n| !n.health_reason.starts_with(crate::health::STARTING))
            .filter(|n| record_fits(domain, &n.enr).is_ok())
            .collect();
        eligible.sort_by(|a, b| {
            a.health
                .cmp(&b.health)
                .then(a.passing_since.unwrap_or(i64::MAX).cmp(&b.passing_since.unwrap_or(i64::MAX)))
                .then(a.node_id.cmp(&b.node_id))
        });
        eligible.truncate(self.max_entries);
        eligible
    }
}
