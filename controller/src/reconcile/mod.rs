//! The reconcile loop's work, one pass at a time: evaluate health, rebuild trees whose
//! membership changed (signing online, or leaving them pending for a key holder), publish
//! signed versions (only the lease holder), retire superseded leaves once the old root's TTL
//! has passed, and bring the built-in DNS server up to date from the database.
//!
//! Every step reads its input from the database, so a controller killed at any point picks up
//! where the state says, and several controllers can share one database.
//!
//! # Layout
//!
//! - this file — [`reconcile`], one pass, and its error.
//! - `health` — every node's health from its newest report, changes written at once.
//! - [`build`] — new tree versions when membership or links changed; signing online.
//! - `publish` — signed versions to every publisher, retirement of old leaves and trees.
//! - `dns` — the built-in DNS server's zone, rebuilt from what was published.

mod build;
mod dns;
mod health;
mod publish;

pub use build::{tree_of, unsigned_tree_of};

use crate::{app::AppState, db::DbError};
use dns::sync_dns;
use health::update_health;

/// Name of the publishing lease.
const PUBLISHER_LEASE: &str = "publisher";

/// Why a tree could not be built or published.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The tree cannot be built as defined.
    #[error("{0}")]
    Tree(String),
}

/// How often the publisher samples passing nodes per shard, and how long samples are kept.
const SHARD_SAMPLE_EVERY_MS: i64 = 5 * 60_000;
const SHARD_SAMPLES_KEPT_MS: i64 = 7 * 24 * 3600 * 1000;

/// One pass. Passes of one controller never overlap (a pass reading the registry while
/// another builds would build from stale membership); across controllers only the holder of
/// the publisher lease builds and publishes, the others keep health and their DNS servers
/// current.
pub async fn reconcile(state: &AppState) -> Result<(), ReconcileError> {
    let _pass = state.reconcile_pass.lock().await;
    let ttl = (state.config.reconcile_interval_ms as i64 * 5).max(10_000);
    let held = state.db.acquire_lease(PUBLISHER_LEASE, &state.instance, ttl).await?;
    state.set_publisher(held);
    let defined = state.db.trees().await?;
    let nodes = update_health(state, &defined).await?;
    state.set_fleet(crate::fleet_hint::FleetSnapshot::of(&nodes, &state.fleet()));
    if held {
        // The dashboard's shard coverage over time: one sample every five minutes (a day's
        // picture needs no more), a week kept.
        let samples = crate::db::nodes::ShardSample::of(&nodes);
        state
            .db
            .sample_shards(
                state.db.now_ms(),
                &samples,
                SHARD_SAMPLE_EVERY_MS,
                SHARD_SAMPLES_KEPT_MS,
            )
            .await?;
        crate::rollout::advance_all(state, &nodes).await?;
        let now = state.db.now_ms();
        for tree in defined {
            if tree.retire_at.is_some_and(|at| at <= now) {
                continue; // removed: no new versions
            }
            let result = build::build(state, &tree, &nodes).await;
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
        publish::publish(state, &trees).await?;
    }
    sync_dns(state, &trees).await?;
    // After the pass's own work, from what it read: a scrape then costs no query.
    if let Err(error) = state.metrics.refresh_fleet(state, &nodes, &trees).await {
        tracing::warn!(target: "ctl::metrics", %error, "fleet metrics not refreshed");
    }
    Ok(())
}
