//! Health: every node evaluated from its newest report; what changed written in one
//! transaction.

use crate::{
    app::AppState,
    db::nodes::{HealthChange, NodeRow},
    health::{Health, evaluate},
};

use super::ReconcileError;

pub(super) async fn update_health(
    state: &AppState,
    trees: &[crate::db::trees::TreeRow],
) -> Result<Vec<NodeRow>, ReconcileError> {
    let expected = crate::drift::Expectations::of(trees);
    state.set_expectations(expected.clone());
    let now = state.db.now_ms();
    let mut nodes = state.db.nodes().await?;
    let mut changed = Vec::new();
    for (index, node) in nodes.iter_mut().enumerate() {
        let (health, reason) = evaluate(node, &state.config.health, &expected, now);
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
