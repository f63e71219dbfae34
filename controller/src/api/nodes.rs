//! `/api/v1/nodes`: the registry, decommissioning, desired configurations and maintenance.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
};
use serde::Deserialize;

use super::extract::{JsonBody, Operator, Viewer};
use crate::{app::AppState, error::AppError};

/// `GET /api/v1/nodes`.
pub async fn nodes(
    State(state): State<Arc<AppState>>,
    _caller: Viewer,
) -> Result<Json<serde_json::Value>, AppError> {
    Ok(Json(serde_json::json!({ "nodes": state.db.nodes().await? })))
}

/// `GET /api/v1/nodes/{id}`: the node, its newest report and its ENR history.
pub async fn node(
    State(state): State<Arc<AppState>>,
    _caller: Viewer,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    let node =
        state.db.node(&id).await?.ok_or_else(|| AppError::NotFound(format!("no node {id}")))?;
    let history: Vec<serde_json::Value> = state
        .db
        .enr_history(&id)
        .await?
        .into_iter()
        .map(|(seq, enr, first_seen)| serde_json::json!({ "seq": seq, "enr": enr, "firstSeen": first_seen }))
        .collect();
    Ok(Json(serde_json::json!({ "node": node, "enrHistory": history })))
}

/// `DELETE /api/v1/nodes/{id}`: decommissions a node. It leaves every tree at the next pass,
/// its reports, record history and alerts go, and its agent's next report is refused as from
/// an unknown node (the agent cannot enrol again with its used token, so it stops). The audit
/// log keeps what it was.
pub async fn decommission(
    State(state): State<Arc<AppState>>,
    Operator(actor): Operator,
    Path(id): Path<String>,
) -> Result<axum::http::StatusCode, AppError> {
    decommission_node(&state, &actor, &id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Decommissions node `id` for `actor` (the API's and the dashboard's action).
pub(crate) async fn decommission_node(
    state: &AppState,
    actor: &str,
    id: &str,
) -> Result<(), AppError> {
    let node =
        state.db.node(id).await?.ok_or_else(|| AppError::NotFound(format!("no node {id}")))?;
    state.db.delete_node(id).await?;
    let detail = serde_json::json!({ "label": node.label, "roles": node.roles, "enr": node.enr });
    state.db.audit(actor, "node.decommission", id, detail).await?;
    state.wake.notify_one();
    Ok(())
}

/// `PUT /api/v1/nodes/{id}/config` body: what the node should run; the controller numbers it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeConfigRequest {
    /// Roles (services on or off).
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// Relay shards.
    #[serde(default)]
    pub shards: Option<Vec<u16>>,
    /// Most connections.
    #[serde(default)]
    pub max_connections: Option<usize>,
}

/// `PUT /api/v1/nodes/{id}/config`: the configuration the node's agent applies (it reports
/// the version as applied or failed); handed out with every report answer.
pub async fn put_node_config(
    State(state): State<Arc<AppState>>,
    Operator(actor): Operator,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<NodeConfigRequest>,
) -> Result<Json<serde_json::Value>, AppError> {
    let stored = set_node_config(&state, &actor, &id, request).await?;
    Ok(Json(serde_json::json!({ "nodeId": id, "desired": stored })))
}

/// Gives node `id` a desired configuration for `actor`; the stored one, numbered.
pub(crate) async fn set_node_config(
    state: &AppState,
    actor: &str,
    id: &str,
    NodeConfigRequest { roles, shards, max_connections }: NodeConfigRequest,
) -> Result<contract::desired::DesiredConfig, AppError> {
    let config = contract::desired::DesiredConfig { version: 0, roles, shards, max_connections };
    config.check().map_err(|e| AppError::Unprocessable(e.to_string()))?;
    let stored = state
        .db
        .set_desired_config(id, config)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no node {id}")))?;
    state.db.audit(actor, "node.config", id, serde_json::json!(stored)).await?;
    Ok(stored)
}

/// `PUT /api/v1/nodes/{id}/membership` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MembershipRequest {
    /// The node's roles ([`crate::membership::ROLES`]).
    pub roles: Vec<String>,
    /// Its label (default: unchanged).
    #[serde(default)]
    pub label: Option<String>,
}

/// `PUT /api/v1/nodes/{id}/membership`: the operator gives a node its roles (and label);
/// trees pick it up at the next pass. Reports never change either.
pub async fn put_membership(
    State(state): State<Arc<AppState>>,
    Operator(actor): Operator,
    Path(id): Path<String>,
    JsonBody(MembershipRequest { roles, label }): JsonBody<MembershipRequest>,
) -> Result<Json<serde_json::Value>, AppError> {
    let label = set_membership(&state, &actor, &id, &roles, label).await?;
    Ok(Json(serde_json::json!({ "nodeId": id, "roles": roles, "label": label })))
}

/// Gives node `id` its roles and (if given) label for `actor`; the label it has now.
pub(crate) async fn set_membership(
    state: &AppState,
    actor: &str,
    id: &str,
    roles: &[String],
    label: Option<String>,
) -> Result<String, AppError> {
    crate::membership::check_roles(roles).map_err(AppError::BadRequest)?;
    let node =
        state.db.node(id).await?.ok_or_else(|| AppError::NotFound(format!("no node {id}")))?;
    let label = match label {
        Some(l) if l.is_empty() || l.chars().count() > 128 => {
            return Err(AppError::BadRequest("label must be 1..128 characters".into()));
        }
        Some(l) => l,
        None => node.label,
    };
    if !state.db.set_membership(id, roles, &label).await? {
        return Err(AppError::NotFound(format!("no node {id}")));
    }
    state
        .db
        .audit(actor, "node.membership", id, serde_json::json!({ "roles": roles, "label": label }))
        .await?;
    state.wake.notify_one();
    Ok(label)
}

/// `PUT /api/v1/nodes/{id}/maintenance` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaintenanceRequest {
    /// Why, for the dashboard and the audit log (1..=200 characters).
    pub reason: String,
}

/// `PUT /api/v1/nodes/{id}/maintenance`: the node leaves every tree at the next pass (before
/// the operator takes it down, so clients never get a record of a node being worked on) and
/// raises no alerts until the maintenance ends.
pub async fn start_maintenance(
    State(state): State<Arc<AppState>>,
    Operator(actor): Operator,
    Path(id): Path<String>,
    JsonBody(MaintenanceRequest { reason }): JsonBody<MaintenanceRequest>,
) -> Result<Json<serde_json::Value>, AppError> {
    let maintenance = begin_maintenance(&state, &actor, &id, &reason).await?;
    Ok(Json(serde_json::json!({ "nodeId": id, "maintenance": maintenance })))
}

/// Puts node `id` into maintenance for `actor`.
pub(crate) async fn begin_maintenance(
    state: &AppState,
    actor: &str,
    id: &str,
    reason: &str,
) -> Result<crate::db::nodes::Maintenance, AppError> {
    let reason = reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > 200 {
        return Err(AppError::BadRequest("reason must be 1..=200 characters".into()));
    }
    let maintenance =
        crate::db::nodes::Maintenance { reason, by: actor.to_owned(), since: state.db.now_ms() };
    if !state.db.set_maintenance(id, Some(&maintenance)).await? {
        return Err(AppError::NotFound(format!("no node {id}")));
    }
    state.db.audit(actor, "node.maintenance.start", id, serde_json::json!(maintenance)).await?;
    state.wake.notify_one();
    Ok(maintenance)
}

/// `DELETE /api/v1/nodes/{id}/maintenance`: the node may be listed again once healthy.
pub async fn end_maintenance(
    State(state): State<Arc<AppState>>,
    Operator(actor): Operator,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    finish_maintenance(&state, &actor, &id).await?;
    Ok(Json(serde_json::json!({ "nodeId": id, "maintenance": null })))
}

/// Ends node `id`'s maintenance for `actor` (nothing to do, and nothing audited, without one).
pub(crate) async fn finish_maintenance(
    state: &AppState,
    actor: &str,
    id: &str,
) -> Result<(), AppError> {
    let node =
        state.db.node(id).await?.ok_or_else(|| AppError::NotFound(format!("no node {id}")))?;
    if node.maintenance.is_some() {
        state.db.set_maintenance(id, None).await?;
        state.db.audit(actor, "node.maintenance.end", id, serde_json::json!({})).await?;
        state.wake.notify_one();
    }
    Ok(())
}
