//! `/api/v1/rollouts`: one desired configuration taken to many nodes a few at a time.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::Deserialize;

use super::{
    extract::{JsonBody, Operator, Viewer},
    nodes::NodeConfigRequest,
};
use crate::{app::AppState, error::AppError};

/// `POST /api/v1/rollouts` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewRollout {
    /// The nodes, in the order they are taken.
    pub nodes: Vec<String>,
    /// What each gets (as `PUT /api/v1/nodes/{id}/config`, over what the node has).
    pub config: NodeConfigRequest,
    /// Nodes applying at once (default 1).
    #[serde(default = "one")]
    pub max_parallel: u32,
    /// Seconds a node must pass after applying before the next starts (default 30).
    #[serde(default = "thirty")]
    pub healthy_secs: u64,
    /// Seconds a node may take to apply and pass before the rollout halts (default 600).
    #[serde(default = "six_hundred")]
    pub deadline_secs: u64,
}

fn one() -> u32 {
    1
}

fn thirty() -> u64 {
    30
}

fn six_hundred() -> u64 {
    600
}

/// Most nodes in one rollout.
const MAX_ROLLOUT_NODES: usize = 1000;

/// `POST /api/v1/rollouts`: takes a configuration to `nodes` a few at a time (see
/// [`crate::rollout`]).
pub async fn create_rollout(
    State(state): State<Arc<AppState>>,
    Operator(actor): Operator,
    JsonBody(request): JsonBody<NewRollout>,
) -> Result<(StatusCode, Json<serde_json::Value>), AppError> {
    let rollout = start_rollout(&state, &actor, request).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "rollout": rollout }))))
}

/// Starts a rollout for `actor` (the API's and the dashboard's action).
pub(crate) async fn start_rollout(
    state: &AppState,
    actor: &str,
    request: NewRollout,
) -> Result<crate::db::rollouts::Rollout, AppError> {
    if request.nodes.is_empty() || request.nodes.len() > MAX_ROLLOUT_NODES {
        return Err(AppError::BadRequest(format!("nodes: 1..={MAX_ROLLOUT_NODES} node ids")));
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(twice) = request.nodes.iter().find(|id| !seen.insert(id.as_str())) {
        return Err(AppError::BadRequest(format!("nodes: {twice} is listed twice")));
    }
    if request.max_parallel == 0 || request.max_parallel as usize > request.nodes.len() {
        return Err(AppError::BadRequest("maxParallel must be 1..=the number of nodes".into()));
    }
    if request.healthy_secs > 3600 || !(10..=86_400).contains(&request.deadline_secs) {
        return Err(AppError::BadRequest(
            "healthySecs must be at most 3600, deadlineSecs 10..=86400".into(),
        ));
    }
    let NodeConfigRequest { roles, shards, max_connections } = request.config;
    let config = contract::desired::DesiredConfig { version: 0, roles, shards, max_connections };
    config.check().map_err(|e| AppError::Unprocessable(e.to_string()))?;
    if config == contract::desired::DesiredConfig::default() {
        return Err(AppError::BadRequest("config sets nothing".into()));
    }
    let known = state.db.nodes().await?;
    if let Some(unknown) = request.nodes.iter().find(|id| !known.iter().any(|n| &n.node_id == *id))
    {
        return Err(AppError::NotFound(format!("no node {unknown}")));
    }
    let mut id = [0u8; 8];
    node::crypto::random_bytes(&mut id);
    let now = state.db.now_ms();
    let rollout = crate::db::rollouts::Rollout {
        id: data_encoding::HEXLOWER.encode(&id),
        created_at: now,
        created_by: actor.to_owned(),
        config,
        max_parallel: request.max_parallel,
        healthy_secs: request.healthy_secs,
        deadline_secs: request.deadline_secs,
        state: crate::db::rollouts::RolloutState::Running,
        reason: None,
        steps: request
            .nodes
            .iter()
            .map(|node_id| crate::db::rollouts::Step {
                node_id: node_id.clone(),
                state: crate::db::rollouts::StepState::Waiting,
                version: None,
                started_at: None,
                applied_at: None,
            })
            .collect(),
        updated_at: now,
    };
    state.db.insert_rollout(&rollout).await?;
    let detail = serde_json::json!({ "nodes": rollout.steps.len(), "config": rollout.config, "maxParallel": rollout.max_parallel });
    state.db.audit(actor, "rollout.create", &rollout.id, detail).await?;
    state.wake.notify_one();
    Ok(rollout)
}

/// `GET /api/v1/rollouts`: the newest 50.
pub async fn rollouts(
    State(state): State<Arc<AppState>>,
    _caller: Viewer,
) -> Result<Json<serde_json::Value>, AppError> {
    Ok(Json(serde_json::json!({ "rollouts": state.db.rollouts(false, 50).await? })))
}

/// `GET /api/v1/rollouts/{id}`.
pub async fn rollout(
    State(state): State<Arc<AppState>>,
    _caller: Viewer,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    let rollout = state
        .db
        .rollout(&id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no rollout {id}")))?;
    Ok(Json(serde_json::json!({ "rollout": rollout })))
}

/// `DELETE /api/v1/rollouts/{id}`: stops a running rollout (nodes already given the
/// configuration keep it).
pub async fn cancel_rollout(
    State(state): State<Arc<AppState>>,
    Operator(actor): Operator,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    let rollout = stop_rollout(&state, &actor, &id).await?;
    Ok(Json(serde_json::json!({ "rollout": rollout })))
}

/// Cancels running rollout `id` for `actor`.
pub(crate) async fn stop_rollout(
    state: &AppState,
    actor: &str,
    id: &str,
) -> Result<crate::db::rollouts::Rollout, AppError> {
    // Serialised with the passes that advance rollouts, so a cancel is never overwritten.
    let _pass = state.reconcile_pass.lock().await;
    let mut rollout = state
        .db
        .rollout(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no rollout {id}")))?;
    if rollout.state != crate::db::rollouts::RolloutState::Running {
        return Err(AppError::Conflict(format!("rollout {id} is not running")));
    }
    rollout.state = crate::db::rollouts::RolloutState::Cancelled;
    rollout.updated_at = state.db.now_ms();
    state.db.update_rollout(&rollout).await?;
    state.db.audit(actor, "rollout.cancel", id, serde_json::json!({})).await?;
    Ok(rollout)
}
