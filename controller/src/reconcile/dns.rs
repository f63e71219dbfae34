//! The built-in DNS server's zone, rebuilt from the published versions in the database.

use std::collections::BTreeMap;

use crate::{
    app::AppState,
    db::trees::{TreeRow, VersionState},
    publish::zone::{TxtZone, in_zone},
};

use super::{ReconcileError, publish::zone_of};

/// Serves, from the built-in DNS server, every published root and the leaves of published
/// and superseded versions — rebuilt from the database, so a restarted controller serves
/// exactly what was published. The zone is rebuilt only when the set of served versions
/// changed.
pub(super) async fn sync_dns(state: &AppState, trees: &[TreeRow]) -> Result<(), ReconcileError> {
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
    let serial = u32::try_from(state.db.now_ms() / 1000 % i64::from(u32::MAX)).unwrap_or(1);
    let mut zone = TxtZone::new(&origin, serial);
    zone.records = records.into_values().collect();
    if let Err(error) = dns.replace(&zone).await {
        tracing::warn!(target: "ctl::dns", %error, "cannot update the built-in DNS server");
        return Ok(());
    }
    *served = Some(fingerprint);
    Ok(())
}
