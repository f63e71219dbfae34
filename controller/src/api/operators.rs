//! Operator endpoints: enrolment tokens, the registry, tree definitions, offline signing and
//! the audit log. Every change is written to the audit log with the operator's identity.

use std::sync::Arc;

use axum::{
    Json,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
};
use node::enrtree::{
    request::{DetachedSignature, PreviousTree, SignRequest},
    signature::{decode_public_key, encode_public_key},
};
use serde::Deserialize;

use super::operator;
use crate::{
    app::AppState,
    config::{ControllerConfig, TreeConfig},
    db::{
        Db, now_ms,
        trees::{TreeRow, VersionState},
    },
    error::{AppError, parse_json},
    policy::TreePolicy,
};

/// Longest enrolment token lifetime.
const MAX_TOKEN_TTL_SECS: u64 = 30 * 24 * 3600;

/// `POST /api/v1/tokens` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for.
    pub label: String,
    /// Roles the node starts with.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Lifetime (default one day, at most 30 days).
    #[serde(default = "default_ttl")]
    pub ttl_secs: u64,
}

fn default_ttl() -> u64 {
    24 * 3600
}

/// `POST /api/v1/tokens`: a one-time enrolment token, shown once.
pub async fn create_token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), AppError> {
    let actor = operator(&state, &headers)?;
    let request: NewToken = parse_json(&body)?;
    if request.label.is_empty() || request.label.len() > 128 {
        return Err(AppError::BadRequest("label must be 1..128 characters".into()));
    }
    if request.ttl_secs == 0 || request.ttl_secs > MAX_TOKEN_TTL_SECS {
        return Err(AppError::BadRequest(format!("ttlSecs must be 1..={MAX_TOKEN_TTL_SECS}")));
    }
    let mut secret = [0u8; 24];
    node::crypto::random_bytes(&mut secret);
    let token = format!("wft_{}", data_encoding::BASE32_NOPAD.encode(&secret).to_lowercase());
    let expires_at = now_ms() + request.ttl_secs as i64 * 1000;
    let info =
        state.db.create_token(&token, &request.label, &request.roles, &actor, expires_at).await?;
    state
        .db
        .audit(&actor, "token.create", &info.id, serde_json::json!({ "label": info.label, "roles": info.roles, "expiresAt": expires_at }))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "token": token, "id": info.id, "expiresAt": expires_at })),
    ))
}

/// `GET /api/v1/tokens`.
pub async fn tokens(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, AppError> {
    operator(&state, &headers)?;
    Ok(Json(serde_json::json!({ "tokens": state.db.tokens().await? })))
}

/// `GET /api/v1/nodes`.
pub async fn nodes(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, AppError> {
    operator(&state, &headers)?;
    Ok(Json(serde_json::json!({ "nodes": state.db.nodes().await? })))
}

/// `GET /api/v1/nodes/{id}`: the node, its newest report and its ENR history.
pub async fn node(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    operator(&state, &headers)?;
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
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, AppError> {
    let actor = operator(&state, &headers)?;
    let NodeConfigRequest { roles, shards, max_connections } = parse_json(&body)?;
    let config = contract::desired::DesiredConfig { version: 0, roles, shards, max_connections };
    config.check().map_err(|e| AppError::Unprocessable(e.to_string()))?;
    let stored = state
        .db
        .set_desired_config(&id, config)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no node {id}")))?;
    state.db.audit(&actor, "node.config", &id, serde_json::json!(stored)).await?;
    Ok(Json(serde_json::json!({ "nodeId": id, "desired": stored })))
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
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, AppError> {
    let actor = operator(&state, &headers)?;
    let MaintenanceRequest { reason } = parse_json(&body)?;
    let reason = reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > 200 {
        return Err(AppError::BadRequest("reason must be 1..=200 characters".into()));
    }
    let maintenance = crate::db::nodes::Maintenance { reason, by: actor.clone(), since: now_ms() };
    if !state.db.set_maintenance(&id, Some(&maintenance)).await? {
        return Err(AppError::NotFound(format!("no node {id}")));
    }
    state.db.audit(&actor, "node.maintenance.start", &id, serde_json::json!(maintenance)).await?;
    state.wake.notify_one();
    Ok(Json(serde_json::json!({ "nodeId": id, "maintenance": maintenance })))
}

/// `DELETE /api/v1/nodes/{id}/maintenance`: the node may be listed again once healthy.
pub async fn end_maintenance(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    let actor = operator(&state, &headers)?;
    let node =
        state.db.node(&id).await?.ok_or_else(|| AppError::NotFound(format!("no node {id}")))?;
    if node.maintenance.is_some() {
        state.db.set_maintenance(&id, None).await?;
        state.db.audit(&actor, "node.maintenance.end", &id, serde_json::json!({})).await?;
        state.wake.notify_one();
    }
    Ok(Json(serde_json::json!({ "nodeId": id, "maintenance": null })))
}

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
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), AppError> {
    let actor = operator(&state, &headers)?;
    let request: NewRollout = parse_json(&body)?;
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
    let now = now_ms();
    let rollout = crate::db::rollouts::Rollout {
        id: data_encoding::HEXLOWER.encode(&id),
        created_at: now,
        created_by: actor.clone(),
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
    state.db.audit(&actor, "rollout.create", &rollout.id, detail).await?;
    state.wake.notify_one();
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "rollout": rollout }))))
}

/// `GET /api/v1/rollouts`: the newest 50.
pub async fn rollouts(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, AppError> {
    operator(&state, &headers)?;
    Ok(Json(serde_json::json!({ "rollouts": state.db.rollouts(false, 50).await? })))
}

/// `GET /api/v1/rollouts/{id}`.
pub async fn rollout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    operator(&state, &headers)?;
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
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    let actor = operator(&state, &headers)?;
    // Serialised with the passes that advance rollouts, so a cancel is never overwritten.
    let _pass = state.reconcile_pass.lock().await;
    let mut rollout = state
        .db
        .rollout(&id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no rollout {id}")))?;
    if rollout.state != crate::db::rollouts::RolloutState::Running {
        return Err(AppError::Conflict(format!("rollout {id} is not running")));
    }
    rollout.state = crate::db::rollouts::RolloutState::Cancelled;
    rollout.updated_at = now_ms();
    state.db.update_rollout(&rollout).await?;
    state.db.audit(&actor, "rollout.cancel", &id, serde_json::json!({})).await?;
    Ok(Json(serde_json::json!({ "rollout": rollout })))
}

/// `PUT /api/v1/trees/{name}` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TreeDefinition {
    /// Where it is published.
    pub domain: String,
    /// `key:<name>` or `offline`.
    pub signer: String,
    /// Who is listed.
    #[serde(default)]
    pub policy: TreePolicy,
}

/// Checks and stores a tree definition (from the API or the configuration file). Returns
/// whether the tree existed.
pub async fn define_tree(
    db: &Db,
    config: &ControllerConfig,
    keyring: &crate::keyring::Keyring,
    tree: &TreeConfig,
    actor: &str,
) -> Result<bool, AppError> {
    let TreeConfig { name, domain, signer, policy } = tree;
    let bad = |m: String| Err(AppError::BadRequest(m));
    if name.is_empty()
        || name.len() > 64
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return bad("tree names are 1..64 of [A-Za-z0-9_-]".into());
    }
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty()
        || domain.len() > 200
        || crate::publish::zone::absolute_name(&domain).is_none()
    {
        return bad(format!("invalid domain {domain:?}"));
    }
    if let Some(dns) = &config.dns
        && !crate::publish::zone::in_zone(&domain, &dns.zone)
    {
        return bad(format!("domain {domain} is not inside the served zone {}", dns.zone));
    }
    if signer != "offline" && !signer.starts_with("key:") {
        return bad(format!("signer {signer:?}: use key:<name> or offline"));
    }
    if let Some(key) = signer.strip_prefix("key:")
        && keyring.get(key).is_none()
    {
        return bad(format!("signer {signer:?}: no key {key:?} is unlocked on this controller"));
    }
    policy.validate().map_err(AppError::Unprocessable)?;
    let existing = db.tree(name).await?;
    let row = TreeRow {
        name: name.to_owned(),
        domain: domain.clone(),
        policy: policy.clone(),
        signer: signer.to_owned(),
        // Another signer means another key, so another URL: keep the key only if unchanged.
        public_key: existing
            .as_ref()
            .filter(|t| t.signer == *signer)
            .and_then(|t| t.public_key.clone()),
        last_error: None,
        retire_at: None,
    };
    if existing.as_ref().is_some_and(|t| {
        t.domain == row.domain
            && t.policy == row.policy
            && t.signer == row.signer
            && t.retire_at.is_none()
    }) {
        return Ok(true);
    }
    if let Some(old) = &existing {
        if old.retire_at.is_some_and(|at| at > now_ms()) {
            return Err(AppError::Conflict(format!(
                "tree {name} is being retired; cancel that first (DELETE /api/v1/trees/{name}/retire)"
            )));
        }
        // A removed tree may be defined again; one still served keeps its key, because its
        // URL (which carries the key) is what clients hold.
        if old.retire_at.is_none() && old.public_key.is_some() && old.signer != *signer {
            return Err(AppError::Conflict(format!(
                "tree {name} is published under its key: another signer would change the URL \
                 clients hold. Define a new tree with the new key, link it from the entry tree \
                 and retire this one (README: key rotation)"
            )));
        }
    }
    let existed = existing.is_some();
    db.put_tree(&row).await.map_err(|e| match e {
        crate::db::DbError::Query(sqlx::Error::Database(d)) if d.is_unique_violation() => {
            AppError::Conflict(format!("domain {domain} is used by another tree"))
        }
        other => AppError::Database(other),
    })?;
    db.audit(
        actor,
        if existed { "tree.update" } else { "tree.create" },
        name,
        serde_json::json!({ "domain": domain, "signer": signer, "policy": policy }),
    )
    .await?;
    Ok(existed)
}

/// `PUT /api/v1/trees/{name}`.
pub async fn put_tree(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), AppError> {
    let actor = operator(&state, &headers)?;
    let TreeDefinition { domain, signer, policy } = parse_json(&body)?;
    let tree = TreeConfig { name: name.clone(), domain, signer, policy };
    let existed = define_tree(&state.db, &state.config, &state.keyring, &tree, &actor).await?;
    state.wake.notify_one();
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(serde_json::json!({ "name": name }))))
}

/// Body of `POST /api/v1/trees/{name}/retire`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retirement {
    /// How long the tree stays published (the overlap window), in seconds.
    pub overlap_secs: u64,
}

/// Longest overlap window: a year.
const MAX_OVERLAP_SECS: u64 = 366 * 24 * 3600;

/// `POST /api/v1/trees/{name}/retire`: keep the tree published for the overlap window, then
/// remove it (root first). Refused while a live tree links to it.
pub async fn retire_tree(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, AppError> {
    let actor = operator(&state, &headers)?;
    let Retirement { overlap_secs } = parse_json(&body)?;
    if overlap_secs > MAX_OVERLAP_SECS {
        return Err(AppError::BadRequest(format!("overlapSecs above {MAX_OVERLAP_SECS}")));
    }
    let trees = state.db.trees().await?;
    let tree = trees
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| AppError::NotFound(format!("no tree {name}")))?;
    if tree.retire_at.is_some() {
        return Err(AppError::Conflict(format!("tree {name} is already being retired")));
    }
    let link = format!("tree:{name}");
    if let Some(linker) =
        trees.iter().find(|t| t.retire_at.is_none() && t.policy.links.contains(&link))
    {
        return Err(AppError::Conflict(format!(
            "tree {} links to {name}: point it at the new tree first",
            linker.name
        )));
    }
    // Never shorter than the root TTL: a client that just fetched the root can walk it.
    let overlap_ms = overlap_secs.max(u64::from(state.config.root_ttl)).saturating_mul(1000);
    let retire_at = now_ms().saturating_add(i64::try_from(overlap_ms).unwrap_or(i64::MAX));
    state.db.set_tree_retire_at(&name, Some(retire_at)).await?;
    state
        .db
        .audit(
            &actor,
            "tree.retire",
            &name,
            serde_json::json!({ "overlapSecs": overlap_secs, "retireAt": retire_at }),
        )
        .await?;
    state.wake.notify_one();
    Ok(Json(serde_json::json!({ "name": name, "retireAt": retire_at })))
}

/// `DELETE /api/v1/trees/{name}/retire`: keep the tree after all, if it is not removed yet.
pub async fn cancel_retirement(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    let actor = operator(&state, &headers)?;
    let tree =
        state.db.tree(&name).await?.ok_or_else(|| AppError::NotFound(format!("no tree {name}")))?;
    match tree.retire_at {
        None => return Err(AppError::Conflict(format!("tree {name} is not being retired"))),
        Some(at) if at <= now_ms() => {
            return Err(AppError::Conflict(format!(
                "tree {name} was removed; define it again with PUT to publish it anew"
            )));
        }
        Some(_) => {}
    }
    state.db.set_tree_retire_at(&name, None).await?;
    state.db.audit(&actor, "tree.retire.cancel", &name, serde_json::json!({})).await?;
    Ok(Json(serde_json::json!({ "name": name })))
}

/// `GET /api/v1/trees`.
pub async fn trees(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, AppError> {
    operator(&state, &headers)?;
    let mut out = Vec::new();
    for tree in state.db.trees().await? {
        out.push(tree_json(&state, tree).await?);
    }
    Ok(Json(serde_json::json!({ "trees": out })))
}

async fn tree_json(state: &AppState, tree: TreeRow) -> Result<serde_json::Value, AppError> {
    let versions = state.db.versions(&tree.name, 10).await?;
    let url = tree.public_key.as_ref().map(|k| format!("enrtree://{k}@{}", tree.domain));
    Ok(serde_json::json!({ "tree": tree, "url": url, "versions": versions }))
}

/// `GET /api/v1/trees/{name}`: the definition, its URL and recent versions.
pub async fn tree(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    operator(&state, &headers)?;
    let tree =
        state.db.tree(&name).await?.ok_or_else(|| AppError::NotFound(format!("no tree {name}")))?;
    Ok(Json(tree_json(&state, tree).await?))
}

/// `GET /api/v1/trees/{name}/sign-request`: what a key holder signs for the pending version.
pub async fn sign_request(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<SignRequest>, AppError> {
    operator(&state, &headers)?;
    let tree =
        state.db.tree(&name).await?.ok_or_else(|| AppError::NotFound(format!("no tree {name}")))?;
    let pending =
        state.db.versions_in(&name, VersionState::Pending).await?.into_iter().next().ok_or_else(
            || AppError::NotFound(format!("tree {name} has no version waiting for a signature")),
        )?;
    let built = crate::engine::unsigned_tree_of(&pending)
        .map_err(|e| AppError::Unprocessable(e.to_string()))?;
    let previous = state
        .db
        .versions_in(&name, VersionState::Published)
        .await?
        .into_iter()
        .next()
        .map(|p| PreviousTree { seq: p.seq, enrs: p.enrs, links: p.links });
    let key = tree.public_key.as_deref().and_then(decode_public_key);
    Ok(Json(SignRequest::new(&built, &tree.domain, key.as_ref(), previous)))
}

/// `POST /api/v1/trees/{name}/signature`: a key holder's detached signature for the pending
/// version, verified before it is accepted.
pub async fn upload_signature(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, AppError> {
    let actor = operator(&state, &headers)?;
    let text =
        std::str::from_utf8(&body).map_err(|_| AppError::BadRequest("body is not UTF-8".into()))?;
    let detached =
        DetachedSignature::from_json(text).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let (key, signature) = detached
        .verify()
        .map_err(|e| AppError::BadRequest(format!("signature does not verify: {e}")))?;
    let tree =
        state.db.tree(&name).await?.ok_or_else(|| AppError::NotFound(format!("no tree {name}")))?;
    if tree.signer != "offline" {
        return Err(AppError::Conflict(format!("tree {name} is signed online by {}", tree.signer)));
    }
    if detached.domain.trim_end_matches('.') != tree.domain {
        return Err(AppError::Conflict(format!(
            "signature is for {}, not {}",
            detached.domain, tree.domain
        )));
    }
    let pending =
        state.db.versions_in(&name, VersionState::Pending).await?.into_iter().next().ok_or_else(
            || AppError::Conflict(format!("tree {name} has no version waiting for a signature")),
        )?;
    if detached.seq != pending.seq || detached.root_content != pending.root {
        return Err(AppError::Conflict(format!(
            "signature is for seq {} ({}), the pending version is seq {} ({})",
            detached.seq, detached.root_content, pending.seq, pending.root
        )));
    }
    let key_text = encode_public_key(&key);
    if let Some(expected) = &tree.public_key
        && *expected != key_text
    {
        return Err(AppError::Forbidden(format!(
            "signed with {key_text}, but the tree's URL carries {expected}; define a new tree to rotate keys"
        )));
    }
    if !state.db.sign_version(&name, pending.seq, &signature.to_string()).await? {
        return Err(AppError::Conflict("the pending version changed meanwhile".into()));
    }
    if tree.public_key.is_none() {
        state.db.set_tree_public_key(&name, &key_text).await?;
    }
    state
        .db
        .audit(
            &actor,
            "tree.sign",
            &name,
            serde_json::json!({ "seq": pending.seq, "publicKey": key_text }),
        )
        .await?;
    state.wake.notify_one();
    Ok(Json(
        serde_json::json!({ "seq": pending.seq, "url": format!("enrtree://{key_text}@{}", tree.domain) }),
    ))
}

/// `GET /api/v1/audit` query.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    /// Entries after this id.
    #[serde(default)]
    pub after: i64,
    /// At most this many (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<i64>,
}

/// `GET /api/v1/audit`.
pub async fn audit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Result<Json<serde_json::Value>, AppError> {
    operator(&state, &headers)?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(serde_json::json!({ "entries": state.db.audit_entries(query.after, limit).await? })))
}
