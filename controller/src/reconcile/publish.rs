//! Publishing: the newest signed version of every tree to every publisher, superseded leaves
//! retired after their grace period, retired trees removed root first.

use std::collections::BTreeMap;

use node::enrtree::signature::decode_public_key;

use crate::{
    app::AppState,
    db::trees::{TreeRow, VersionRow, VersionState},
    publish::{
        ChangeSet, RecordChange,
        zone::{TxtRecord, TxtZone},
    },
};

use super::{ReconcileError, build::tree_of};

/// The records a version puts into the zone `origin`.
pub(super) fn zone_of(
    state: &AppState,
    origin: &str,
    tree: &TreeRow,
    version: &VersionRow,
) -> Result<TxtZone, ReconcileError> {
    let key = tree
        .public_key
        .as_deref()
        .and_then(decode_public_key)
        .ok_or_else(|| ReconcileError::Tree(format!("tree {} has no public key", tree.name)))?;
    let built = tree_of(version, &key)?;
    let (root_ttl, ttl) = state.ttls();
    let mut zone = TxtZone::from_tree(&built, &tree.domain, root_ttl, ttl);
    zone.origin = origin.to_owned();
    Ok(zone)
}

/// Publishes the newest signed version of every tree, and retires superseded leaves whose
/// grace period is over (the lease holder only).
pub(super) async fn publish(state: &AppState, trees: &[TreeRow]) -> Result<(), ReconcileError> {
    let now = state.db.now_ms();
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
pub(super) async fn remove(state: &AppState, tree: &TreeRow) -> Result<(), ReconcileError> {
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
pub(super) async fn retire(
    state: &AppState,
    tree: &TreeRow,
    origin: &str,
    now: i64,
) -> Result<(), ReconcileError> {
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
pub(super) async fn apply_all(state: &AppState, tree: &TreeRow, changes: &ChangeSet) -> bool {
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
