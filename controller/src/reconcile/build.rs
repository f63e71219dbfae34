//! Building: a new version of a tree when its membership or links changed, signed online
//! with an unlocked key or left pending for a key holder; stored versions rebuilt as trees.

use k256::ecdsa::VerifyingKey;
use node::enrtree::{LinkEntry, NodeRecord, Tree, signature::decode_public_key};

use crate::{
    app::AppState,
    db::{
        nodes::NodeRow,
        trees::{TreeRow, VersionRow, VersionState},
    },
    tree_definition::{Signer, TreeLink},
};

use super::ReconcileError;

/// The links of `tree`, with `tree:<name>` resolved to that tree's URL.
pub(super) async fn resolve_links(
    state: &AppState,
    tree: &TreeRow,
) -> Result<Vec<LinkEntry>, ReconcileError> {
    let mut links = Vec::new();
    for link in &tree.policy.links {
        if let TreeLink::Tree(name) = link {
            let target =
                state.db.tree(name).await?.ok_or_else(|| {
                    ReconcileError::Tree(format!("link to unknown tree {name:?}"))
                })?;
            let key =
                target.public_key.as_deref().and_then(decode_public_key).ok_or_else(|| {
                    ReconcileError::Tree(format!("linked tree {name:?} has no key yet"))
                })?;
            links.push(LinkEntry::new(key, target.domain));
        } else if let TreeLink::Url(url) = link {
            links.push(url.clone());
        }
    }
    Ok(links)
}

/// Builds a new version of `tree` when its membership or links changed.
pub(super) async fn build(
    state: &AppState,
    tree: &TreeRow,
    nodes: &[NodeRow],
) -> Result<(), ReconcileError> {
    let records: Vec<NodeRecord> = tree
        .policy
        .select(nodes, &tree.domain, state.config.reachability.enabled)
        .into_iter()
        .filter_map(|node| node.enr.parse().ok())
        .collect();
    let links = resolve_links(state, tree).await?;
    let mut enrs: Vec<String> = records.iter().map(ToString::to_string).collect();
    enrs.sort();
    let link_texts: Vec<String> = links.iter().map(ToString::to_string).collect();
    let versions = state.db.versions(&tree.name, 50).await?;
    let current = versions.iter().find(|v| {
        matches!(v.state, VersionState::Pending | VersionState::Signed | VersionState::Published)
    });
    let lists_the_same = |version: &VersionRow| {
        let mut listed = version.enrs.clone();
        listed.sort();
        listed == enrs && version.links == link_texts
    };
    if let Some(current) = current {
        if lists_the_same(current) {
            // Unchanged, or a change undone within its settle window.
            state.settling.lock().unwrap_or_else(|e| e.into_inner()).remove(&tree.name);
            return Ok(());
        }
        // A change undone before a key holder signed it (a node back from maintenance, a
        // flapping one): clients already have this membership, so nobody is asked to sign it
        // again.
        let live = versions
            .iter()
            .find(|v| matches!(v.state, VersionState::Signed | VersionState::Published));
        if current.state == VersionState::Pending
            && live.is_some_and(lists_the_same)
            && state.db.abandon_pending(&tree.name, current.seq).await?
        {
            tracing::info!(target: "ctl::trees", tree = %tree.name, seq = current.seq, "pending version abandoned: its change was undone");
            state
                .db
                .audit(
                    "controller",
                    "tree.abandon",
                    &tree.name,
                    serde_json::json!({ "seq": current.seq }),
                )
                .await?;
            return Ok(());
        }
    } else if records.is_empty() && links.is_empty() {
        // Nothing to list and nothing published yet: an empty first tree helps no one.
        return Ok(());
    }
    // Every listed node gone at once (the whole fleet down, or the controller cut off from
    // every agent): an empty tree would take every client's way in and give nothing back,
    // while the last one's nodes may return as they were. It stays, and the tree's error (and
    // its alert) says why no version follows. Found by `wakufleet sim --scenario fleet-loss`.
    if let Some(current) = current
        && records.is_empty()
        && links.is_empty()
    {
        return Err(ReconcileError::Tree(format!(
            "no node is eligible any more: version {} stays rather than an empty tree",
            current.seq
        )));
    }
    // Let a burst of changes settle into one version (the first version builds at once).
    if current.is_some() && state.config.settle_ms > 0 {
        let now = state.db.now_ms();
        let mut settling = state.settling.lock().unwrap_or_else(|e| e.into_inner());
        let since = *settling.entry(tree.name.clone()).or_insert(now);
        if now - since < state.config.settle_ms as i64 {
            return Ok(());
        }
        settling.remove(&tree.name);
    }
    let seq = versions.first().map_or(1, |v| v.seq + 1);
    let mut built =
        Tree::build(seq, records, links).map_err(|e| ReconcileError::Tree(e.to_string()))?;
    built.check_sizes(&tree.domain).map_err(|e| ReconcileError::Tree(e.to_string()))?;
    let now = state.db.now_ms();
    let (state_after, signature) = match &tree.signer {
        Signer::Key(key_name) => {
            let key = state.keyring.get(key_name).ok_or_else(|| {
                ReconcileError::Tree(format!("signing key {key_name:?} is not unlocked here"))
            })?;
            let url = built.sign(key, &tree.domain);
            let key_text = node::enrtree::signature::encode_public_key(&url.public_key);
            if tree.public_key.as_deref() != Some(key_text.as_str()) {
                state.db.set_tree_public_key(&tree.name, &key_text).await?;
            }
            (VersionState::Signed, built.root().signature.as_ref().map(ToString::to_string))
        }
        Signer::Offline => (VersionState::Pending, None),
    };
    let version = VersionRow {
        tree: tree.name.clone(),
        seq,
        state: state_after,
        enrs: built.records().iter().map(ToString::to_string).collect(),
        links: link_texts,
        root: built.root().content(),
        signature,
        created_at: now,
        signed_at: (state_after == VersionState::Signed).then_some(now),
        published_at: None,
        retire_after: None,
    };
    state.db.insert_version(&version).await?;
    tracing::info!(target: "ctl::trees", tree = %tree.name, seq, records = version.enrs.len(), state = state_after.as_str(), "tree built");
    state
        .db
        .audit(
            "controller",
            "tree.build",
            &tree.name,
            serde_json::json!({ "seq": seq, "records": version.enrs.len(), "state": state_after.as_str() }),
        )
        .await?;
    Ok(())
}

/// Rebuilds the tree of a stored version, unsigned.
pub fn unsigned_tree_of(version: &VersionRow) -> Result<Tree, ReconcileError> {
    let bad = |e: String| ReconcileError::Tree(format!("stored version {}: {e}", version.seq));
    let records = version
        .enrs
        .iter()
        .map(|e| e.parse::<NodeRecord>().map_err(|e| bad(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let links = version
        .links
        .iter()
        .map(|l| l.parse::<LinkEntry>().map_err(|e| bad(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    Tree::build(version.seq, records, links).map_err(|e| bad(e.to_string()))
}

/// Rebuilds the signed tree of a stored version.
pub fn tree_of(version: &VersionRow, public_key: &VerifyingKey) -> Result<Tree, ReconcileError> {
    let bad = |e: String| ReconcileError::Tree(format!("stored version {}: {e}", version.seq));
    let mut tree = unsigned_tree_of(version)?;
    let signature = version.signature.as_deref().ok_or_else(|| bad("unsigned".into()))?;
    let signature =
        signature.parse().map_err(|e: node::enrtree::SignatureError| bad(e.to_string()))?;
    tree.set_signature(public_key, signature).map_err(|e| bad(e.to_string()))?;
    Ok(tree)
}
