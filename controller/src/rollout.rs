//! Rollouts: one desired configuration taken to a list of nodes `max_parallel` at a time. A
//! node is done once its agent reports the configuration applied and the node has passed for
//! `healthy_secs` since; the next node starts only then. A node whose agent refuses the
//! configuration, or that is not applied and passing within `deadline_secs`, halts the
//! rollout: the nodes after it keep what they run. Advanced by the publisher's reconcile pass.

use crate::{
    app::AppState,
    db::{
        DbError,
        nodes::NodeRow,
        rollouts::{Rollout, RolloutState, Step, StepState},
    },
    health::Health,
};
use contract::desired::DesiredConfig;

/// Running rollouts looked at per pass.
const RUNNING_SCANNED: i64 = 100;

/// What a step's node has done about `version`, from its newest report.
enum Applied {
    Yes,
    Refused(String),
    NotYet,
}

fn applied(node: &NodeRow, version: u64) -> Applied {
    let status = node.figures().and_then(|f| f.config);
    match status {
        Some(status) if status.version == version && status.applied => Applied::Yes,
        Some(status) if status.version == version => {
            Applied::Refused(status.error.unwrap_or_else(|| "no reason given".into()))
        }
        _ => Applied::NotYet,
    }
}

/// The node's desired configuration with the rollout's fields over it.
fn merged(current: Option<&DesiredConfig>, rollout: &DesiredConfig) -> DesiredConfig {
    let current = current.cloned().unwrap_or_default();
    DesiredConfig {
        version: 0,
        roles: rollout.roles.clone().or(current.roles),
        shards: rollout.shards.clone().or(current.shards),
        max_connections: rollout.max_connections.or(current.max_connections),
    }
}

/// Moves every running rollout on by what the nodes reported.
pub async fn advance_all(state: &AppState, nodes: &[NodeRow]) -> Result<(), DbError> {
    for mut rollout in state.db.rollouts(true, RUNNING_SCANNED).await? {
        if advance(state, &mut rollout, nodes).await? {
            rollout.updated_at = state.db.now_ms();
            state.db.update_rollout(&rollout).await?;
        }
    }
    Ok(())
}

/// One rollout's pass; whether anything changed.
async fn advance(
    state: &AppState,
    rollout: &mut Rollout,
    nodes: &[NodeRow],
) -> Result<bool, DbError> {
    let now = state.db.now_ms();
    let mut changed = false;
    let mut halt: Option<String> = None;
    for step in rollout.steps.iter_mut().filter(|s| s.state == StepState::Applying) {
        let node = nodes.iter().find(|n| n.node_id == step.node_id);
        let (Some(node), Some(version)) = (node, step.version) else {
            step.state = StepState::Failed;
            halt = Some(format!("node {} is no longer enrolled", step.node_id));
            changed = true;
            continue;
        };
        match applied(node, version) {
            Applied::Refused(error) => {
                step.state = StepState::Failed;
                halt = Some(format!(
                    "node {} ({}) refused version {version}: {error}",
                    node.label, node.node_id
                ));
                changed = true;
                continue;
            }
            Applied::Yes if step.applied_at.is_none() => {
                step.applied_at = Some(now);
                changed = true;
            }
            _ => {}
        }
        let healthy_for = rollout.healthy_secs as i64 * 1000;
        if step.applied_at.is_some_and(|at| now - at >= healthy_for)
            && node.health == Health::Passing
        {
            step.state = StepState::Done;
            changed = true;
        } else if step.started_at.is_some_and(|at| now - at > rollout.deadline_secs as i64 * 1000) {
            step.state = StepState::Failed;
            halt = Some(format!(
                "node {} ({}) did not apply version {version} and pass within {} s",
                node.label, node.node_id, rollout.deadline_secs
            ));
            changed = true;
        }
    }
    if let Some(reason) = halt {
        tracing::warn!(target: "ctl::rollout", rollout = %rollout.id, %reason, "rollout halted");
        state
            .db
            .audit(
                "controller",
                "rollout.halt",
                &rollout.id,
                serde_json::json!({ "reason": reason }),
            )
            .await?;
        rollout.state = RolloutState::Halted;
        rollout.reason = Some(reason);
        return Ok(true);
    }
    let applying = rollout.steps.iter().filter(|s| s.state == StepState::Applying).count();
    let room = (rollout.max_parallel as usize).saturating_sub(applying);
    let waiting: Vec<usize> = rollout
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.state == StepState::Waiting)
        .map(|(i, _)| i)
        .take(room)
        .collect();
    for index in waiting {
        let step: &mut Step = &mut rollout.steps[index];
        let current = nodes
            .iter()
            .find(|n| n.node_id == step.node_id)
            .and_then(|n| n.desired_config.as_ref());
        let Some(stored) =
            state.db.set_desired_config(&step.node_id, merged(current, &rollout.config)).await?
        else {
            step.state = StepState::Failed;
            let reason = format!("node {} is no longer enrolled", step.node_id);
            rollout.state = RolloutState::Halted;
            rollout.reason = Some(reason);
            return Ok(true);
        };
        step.state = StepState::Applying;
        step.version = Some(stored.version);
        step.started_at = Some(now);
        state
            .db
            .audit(
                "controller",
                "node.config",
                &step.node_id,
                serde_json::json!({ "rollout": rollout.id, "desired": stored }),
            )
            .await?;
        changed = true;
    }
    if rollout.steps.iter().all(|s| s.state == StepState::Done) {
        rollout.state = RolloutState::Done;
        state
            .db
            .audit(
                "controller",
                "rollout.done",
                &rollout.id,
                serde_json::json!({ "nodes": rollout.steps.len() }),
            )
            .await?;
        changed = true;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollout_sets_only_its_own_fields() {
        let current = DesiredConfig {
            version: 4,
            roles: Some(vec!["relay".into()]),
            shards: Some(vec![1]),
            max_connections: None,
        };
        let rollout = DesiredConfig {
            max_connections: Some(40),
            shards: Some(vec![0, 2]),
            ..DesiredConfig::default()
        };
        let out = merged(Some(&current), &rollout);
        assert_eq!(out.roles, Some(vec!["relay".into()]));
        assert_eq!(out.shards, Some(vec![0, 2]));
        assert_eq!(out.max_connections, Some(40));
    }
}
