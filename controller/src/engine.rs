//! The reconcile loop's work, one pass at a time: evaluate health, rebuild trees whose
//! membership changed (signing online, or leaving them pending for a key holder), publish
//! signed versions (only the lease holder), retire superseded leaves once the old root's TTL
//! has passed, and bring the built-in DNS server up to date from the database.
//!
//! Every step reads its input from the database, so a controller killed at any point picks up
//! where the state says, and several controllers can share one database.

use std::collections::BTreeMap;

use k256::ecdsa::VerifyingKey;
use node::enrtree::{LinkEntry, NodeRecord, Tree, signature::decode_public_key};

use crate::{
    app::AppState,
    db::{
        DbError,
        nodes::{HealthChange, NodeRow},
        now_ms,
        trees::{TreeRow, VersionRow, VersionState},
    },
    health::{Health, evaluate},
    publish::{
        ChangeSet, RecordChange,
        zone::{TxtRecord, TxtZone, in_zone},
    },
};

/// Name of the publishing lease.
const PUBLISHER_LEASE: &str = "publisher";

/// Why a tree could not be built or published.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The tree cannot be built as defined.
    #[error("{0}")]
    Tree(String),
}

/// One pass. Passes of one controller never overlap (a pass reading the registry while
/// another builds would build from stale membership); across controllers only the holder of
/// the publisher lease builds and publishes, the others keep health and their DNS servers
/// current.
pub async fn reconcile(state: &AppState) -> Result<(), EngineError> {
    let _pass = state.reconcile_pass.lock().await;
    let ttl = (state.config.reconcile_interval_ms as i64 * 5).max(10_000);
    let held = state.db.acquire_lease(PUBLISHER_LEASE, &state.instance, ttl).await?;
    state.set_publisher(held);
    let nodes = update_health(state).await?;
    if held {
        crate::rollout::advance_all(state, &nodes).await?;
        let now = now_ms();
        for tree in state.db.trees().await? {
            if tree.retire_at.is_some_and(|at| at <= now) {
                continue; // removed: no new versions
            }
            let result = build(state, &tree, &nodes).await;
            let error = result.as_ref().err().map(ToString::to_string);
            if error != tree.last_error {
                if let Some(error) = &error {
                    tracing::warn!(target: "ctl::trees", tree = %tree.name, %error, "tree not built");
                }
                state.db.set_tree_error(&tree.name, error.as_deref()).await?;
            }
        }
    }
    // Read again: a build may have given a tree its key, which publishing needs.
    let trees = state.db.trees().await?;
    if held {
        publish(state, &trees).await?;
    }
    sync_dns(state, &trees).await?;
    Ok(())
}

async fn update_health(state: &AppState) -> Result<Vec<NodeRow>, EngineError> {
    let now = now_ms();
    let mut nodes = state.db.nodes().await?;
    let mut changed = Vec::new();
    for (index, node) in nodes.iter_mut().enumerate() {
        let (health, reason) = evaluate(node, &state.config.health, now);
        if health == node.health && reason == node.health_reason {
            continue;
        }
        let passing_since = match (health, node.health) {
            (Health::Passing, Health::Passing) => node.passing_since.or(Some(now)),
            (Health::Passing, _) => Some(now),
            _ => None,
        };
        tracing::info!(target: "ctl::health", node = %node.node_id, label = %node.label, from = node.health.as_str(), to = health.as_str(), %reason, "health changed");
        node.health = health;
        node.health_reason = reason;
        node.passing_since = passing_since;
        changed.push(index);
    }
    let changes: Vec<HealthChange<'_>> = changed
        .iter()
        .map(|&i| HealthChange {
            node_id: &nodes[i].node_id,
            health: nodes[i].health,
            reason: &nodes[i].health_reason,
            passing_since: nodes[i].passing_since,
        })
        .collect();
    if !changes.is_empty() {
        state.db.set_health_of(&changes).await?;
    }
    Ok(nodes)
}

/// The links of `tree`, with `tree:<name>` resolved to that tree's URL.
async fn resolve_links(state: &AppState, tree: &TreeRow) -> Result<Vec<LinkEntry>, EngineError> {
    let mut links = Vec::new();
    for link in &tree.policy.links {
        if let Some(name) = link.strip_prefix("tree:") {
            let target = state
                .db
                .tree(name)
                .await?
                .ok_or_else(|| EngineError::Tree(format!("link to unknown tree {name:?}")))?;
            let key =
                target.public_key.as_deref().and_then(decode_public_key).ok_or_else(|| {
                    EngineError::Tree(format!("linked tree {name:?} has no key yet"))
                })?;
            links.push(LinkEntry::new(key, target.domain));
        } else {
            links.push(link.parse().map_err(|e| EngineError::Tree(format!("link {link:?}: {e}")))?);
        }
    }
    Ok(links)
}

/// Builds a new version of `tree` when its membership or links changed.
async fn build(state: &AppState, tree: &TreeRow, nodes: &[NodeRow]) -> Result<(), EngineError> {
    let records: Vec<NodeRecord> =
        tree.policy.select(nodes).into_iter().filter_map(|node| node.enr.parse().ok()).collect();
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
    let seq = versions.first().map_or(1, |v| v.seq + 1);
    let mut built =
        Tree::build(seq, records, links).map_err(|e| EngineError::Tree(e.to_string()))?;
    built.check_sizes(&tree.domain).map_err(|e| EngineError::Tree(e.to_string()))?;
    let now = now_ms();
    let (state_after, signature) = match tree.signer.strip_prefix("key:") {
        Some(key_name) => {
            let key = state.keyring.get(key_name).ok_or_else(|| {
                EngineError::Tree(format!("signing key {key_name:?} is not unlocked here"))
            })?;
            let url = built.sign(key, &tree.domain);
            let key_text = node::enrtree::signature::encode_public_key(&url.public_key);
            if tree.public_key.as_deref() != Some(key_text.as_str()) {
                state.db.set_tree_public_key(&tree.name, &key_text).await?;
            }
            (VersionState::Signed, built.root().signature.as_ref().map(ToString::to_string))
        }
        None => (VersionState::Pending, None),
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
pub fn unsigned_tree_of(version: &VersionRow) -> Result<Tree, EngineError> {
    let bad = |e: String| EngineError::Tree(format!("stored version {}: {e}", version.seq));
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
pub fn tree_of(version: &VersionRow, public_key: &VerifyingKey) -> Result<Tree, EngineError> {
    let bad = |e: String| EngineError::Tree(format!("stored version {}: {e}", version.seq));
    let mut tree = unsigned_tree_of(version)?;
    let signature = version.signature.as_deref().ok_or_else(|| bad("unsigned".into()))?;
    let signature =
        signature.parse().map_err(|e: node::enrtree::SignatureError| bad(e.to_string()))?;
    tree.set_signature(public_key, signature).map_err(|e| bad(e.to_string()))?;
    Ok(tree)
}

/// The records a version puts into the zone `origin`.
fn zone_of(
    state: &AppState,
    origin: &str,
    tree: &TreeRow,
    version: &VersionRow,
) -> Result<TxtZone, EngineError> {
    let key = tree
        .public_key
        .as_deref()
        .and_then(decode_public_key)
        .ok_or_else(|| EngineError::Tree(format!("tree {} has no public key", tree.name)))?;
    let built = tree_of(version, &key)?;
    let (root_ttl, ttl) = state.ttls();
    let mut zone = TxtZone::from_tree(&built, &tree.domain, root_ttl, ttl);
    zone.origin = origin.to_owned();
    Ok(zone)
}

/// Publishes the newest signed version of every tree, and retires superseded leaves whose
/// grace period is over (the lease holder only).
async fn publish(state: &AppState, trees: &[TreeRow]) -> Result<(), EngineError> {
    let now = now_ms();
    for tree in trees {
        if tree.retire_at.is_some_and(|at| at <= now) {
            remove(state, tree).await?;
            continue;
        }
        // External publishers each know their own zone; the tree's domain lies inside it.
        let origin = tree.domain.clone();
        let published = state.db.versions_in(&tree.name, VersionState::Published).await?;
        let signed = state.db.versions_in(&tree.name, VersionState::Signed).await?;
        if let Some(next) = signed.first()
            && published.first().is_none_or(|p| next.seq > p.seq)
        {
            let new_zone = zone_of(state, &origin, tree, next)?;
            let old_zone =
                published.first().map(|p| zone_of(state, &origin, tree, p)).transpose()?;
            let changes = ChangeSet::between(old_zone.as_ref(), &new_zone).additions();
            if apply_all(state, tree, &changes).await {
                let (root_ttl, _) = state.ttls();
                state
                    .db
                    .mark_published(&tree.name, next.seq, now + i64::from(root_ttl) * 1000)
                    .await?;
                tracing::info!(target: "ctl::publish", tree = %tree.name, seq = next.seq, "published");
                state
                    .db
                    .audit(
                        "controller",
                        "tree.publish",
                        &tree.name,
                        serde_json::json!({ "seq": next.seq }),
                    )
                    .await?;
            }
        }
        retire(state, tree, &origin, now).await?;
    }
    Ok(())
}

/// Takes a tree whose overlap window is over off every publisher: the root first, so clients
/// stop walking it at once, then the rest; then nothing of it is served any more.
async fn remove(state: &AppState, tree: &TreeRow) -> Result<(), EngineError> {
    let published = state.db.versions_in(&tree.name, VersionState::Published).await?;
    let superseded = state.db.versions_in(&tree.name, VersionState::Superseded).await?;
    let unpublished = [VersionState::Pending, VersionState::Signed];
    let mut live = false;
    for wanted in unpublished {
        live |= !state.db.versions_in(&tree.name, wanted).await?.is_empty();
    }
    if published.is_empty() && superseded.is_empty() {
        if live {
            state.db.retire_all_versions(&tree.name).await?;
        }
        return Ok(());
    }
    let origin = tree.domain.clone();
    // Only the published root is served; superseded versions still have their leaves.
    let mut records = BTreeMap::new();
    for version in superseded.iter().chain(published.iter()) {
        for record in zone_of(state, &origin, tree, version)?.records {
            if record.name != tree.domain || version.state == VersionState::Published {
                records.insert(record.name.clone(), record);
            }
        }
    }
    let (root, rest): (Vec<_>, Vec<_>) =
        records.into_values().partition(|record| record.name == tree.domain);
    let deletions = |records: Vec<TxtRecord>| ChangeSet {
        origin: origin.clone(),
        serial: 0,
        changes: records.into_iter().map(RecordChange::Delete).collect(),
    };
    if apply_all(state, tree, &deletions(root)).await
        && apply_all(state, tree, &deletions(rest)).await
    {
        state.db.retire_all_versions(&tree.name).await?;
        tracing::info!(target: "ctl::publish", tree = %tree.name, "tree removed after its overlap window");
        state
            .db
            .audit(
                "controller",
                "tree.remove",
                &tree.name,
                serde_json::json!({ "seq": published.first().map(|v| v.seq) }),
            )
            .await?;
    }
    Ok(())
}

/// Deletes the leaves of superseded versions past their grace period that no served version
/// still uses.
async fn retire(
    state: &AppState,
    tree: &TreeRow,
    origin: &str,
    now: i64,
) -> Result<(), EngineError> {
    let superseded = state.db.versions_in(&tree.name, VersionState::Superseded).await?;
    let published = state.db.versions_in(&tree.name, VersionState::Published).await?;
    for old in superseded.iter().filter(|v| v.retire_after.is_some_and(|t| t <= now)) {
        let mut keep = TxtZone::new(origin, 0);
        for other in published.iter().chain(superseded.iter().filter(|v| v.seq != old.seq)) {
            keep.records.extend(zone_of(state, origin, tree, other)?.records);
        }
        let old_zone = zone_of(state, origin, tree, old)?;
        let changes = ChangeSet::between(Some(&old_zone), &keep).deletions();
        if apply_all(state, tree, &changes).await {
            state.db.mark_retired(&tree.name, old.seq).await?;
        }
    }
    Ok(())
}

/// Applies `changes` to every external publisher; `false` if one failed (tried again on the
/// next pass: publishers are idempotent).
async fn apply_all(state: &AppState, tree: &TreeRow, changes: &ChangeSet) -> bool {
    if changes.is_empty() {
        return true;
    }
    for publisher in state.publishers.iter().filter(|p| p.covers(&tree.domain)) {
        let result = publisher.apply(changes).await;
        state.metrics.publication(&publisher.name(), result.is_ok());
        if let Err(error) = result {
            tracing::warn!(target: "ctl::publish", tree = %tree.name, publisher = %publisher.name(), %error, "publication failed; will retry");
            return false;
        }
    }
    true
}

/// Serves, from the built-in DNS server, every published root and the leaves of published
/// and superseded versions — rebuilt from the database, so a restarted controller serves
/// exactly what was published. The zone is rebuilt only when the set of served versions
/// changed.
async fn sync_dns(state: &AppState, trees: &[TreeRow]) -> Result<(), EngineError> {
    let (Some(dns), Some(config)) = (&state.dns, &state.config.dns) else { return Ok(()) };
    let origin = config.zone.trim_end_matches('.').to_owned();
    let mut served_versions = Vec::new();
    for tree in trees.iter().filter(|t| in_zone(&t.domain, &origin)) {
        // Superseded first, so a published version's records win where names coincide.
        for state_wanted in [VersionState::Superseded, VersionState::Published] {
            for version in state.db.versions_in(&tree.name, state_wanted).await? {
                served_versions.push((tree, version));
            }
        }
    }
    let fingerprint: Vec<(String, u64, VersionState)> =
        served_versions.iter().map(|(t, v)| (t.name.clone(), v.seq, v.state)).collect();
    let mut served = state.served.lock().await;
    if served.as_ref() == Some(&fingerprint) {
        return Ok(());
    }
    let mut records = BTreeMap::new();
    for (tree, version) in &served_versions {
        for record in zone_of(state, &origin, tree, version)?.records {
            // A superseded version's root is no longer served; its leaves are, for a while.
            if version.state == VersionState::Published || record.name != tree.domain {
                records.insert(record.name.clone(), record);
            }
        }
    }
    let serial = u32::try_from(now_ms() / 1000 % i64::from(u32::MAX)).unwrap_or(1);
    let mut zone = TxtZone::new(&origin, serial);
    zone.records = records.into_values().collect();
    if let Err(error) = dns.replace(&zone).await {
        tracing::warn!(target: "ctl::dns", %error, "cannot update the built-in DNS server");
        return Ok(());
    }
    *served = Some(fingerprint);
    Ok(())
}
