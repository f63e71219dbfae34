//! `/api/v1/trees`: tree definitions, retirement, and the key holder's offline signing
//! (sign requests and signature uploads).

use std::sync::Arc;

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
};
use node::enrtree::{
    request::{DetachedSignature, PreviousTree, SignRequest},
    signature::{decode_public_key, encode_public_key},
};
use serde::Deserialize;

use super::extract::{JsonBody, KeyHolder, Operator, Viewer};
use crate::{
    app::AppState,
    config::TreeConfig,
    db::trees::{TreeRow, VersionState},
    error::AppError,
    policy::TreePolicy,
    tree_definition::{self, DefinitionError, Signer, TreeLink},
};

impl From<DefinitionError> for AppError {
    fn from(error: DefinitionError) -> Self {
        match error {
            DefinitionError::Invalid(m) => Self::BadRequest(m),
            DefinitionError::Policy(m) => Self::Unprocessable(m),
            DefinitionError::Conflict(m) => Self::Conflict(m),
            DefinitionError::Database(e) => Self::Database(e),
        }
    }
}

/// `PUT /api/v1/trees/{name}` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TreeDefinition {
    /// Where it is published.
    pub domain: String,
    /// `key:<name>` or `offline`.
    pub signer: Signer,
    /// Who is listed.
    #[serde(default)]
    pub policy: TreePolicy,
}

/// `PUT /api/v1/trees/{name}`.
pub async fn put_tree(
    State(state): State<Arc<AppState>>,
    Operator(actor): Operator,
    Path(name): Path<String>,
    JsonBody(definition): JsonBody<TreeDefinition>,
) -> Result<(StatusCode, Json<serde_json::Value>), AppError> {
    let existed = define_tree(&state, &actor, &name, definition).await?;
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(serde_json::json!({ "name": name }))))
}

/// Defines (or redefines) tree `name` for `actor`; whether it existed.
pub(crate) async fn define_tree(
    state: &AppState,
    actor: &str,
    name: &str,
    TreeDefinition { domain, signer, policy }: TreeDefinition,
) -> Result<bool, AppError> {
    let tree = TreeConfig { name: name.to_owned(), domain, signer, policy };
    let existed =
        tree_definition::define(&state.db, &state.config, &state.keyring, &tree, actor).await?;
    state.wake.notify_one();
    Ok(existed)
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
    KeyHolder(actor): KeyHolder,
    Path(name): Path<String>,
    JsonBody(Retirement { overlap_secs }): JsonBody<Retirement>,
) -> Result<Json<serde_json::Value>, AppError> {
    let retire_at = retire(&state, &actor, &name, overlap_secs).await?;
    Ok(Json(serde_json::json!({ "name": name, "retireAt": retire_at })))
}

/// Starts retiring tree `name` for `actor`; when it goes (Unix ms).
pub(crate) async fn retire(
    state: &AppState,
    actor: &str,
    name: &str,
    overlap_secs: u64,
) -> Result<i64, AppError> {
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
    let link = TreeLink::Tree(name.to_owned());
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
    let retire_at = state.db.now_ms().saturating_add(i64::try_from(overlap_ms).unwrap_or(i64::MAX));
    state.db.set_tree_retire_at(name, Some(retire_at)).await?;
    state
        .db
        .audit(
            actor,
            "tree.retire",
            name,
            serde_json::json!({ "overlapSecs": overlap_secs, "retireAt": retire_at }),
        )
        .await?;
    state.wake.notify_one();
    Ok(retire_at)
}

/// `DELETE /api/v1/trees/{name}/retire`: keep the tree after all, if it is not removed yet.
pub async fn cancel_retirement(
    State(state): State<Arc<AppState>>,
    KeyHolder(actor): KeyHolder,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    keep_tree(&state, &actor, &name).await?;
    Ok(Json(serde_json::json!({ "name": name })))
}

/// Cancels tree `name`'s retirement for `actor`, if it is not removed yet.
pub(crate) async fn keep_tree(state: &AppState, actor: &str, name: &str) -> Result<(), AppError> {
    let tree =
        state.db.tree(name).await?.ok_or_else(|| AppError::NotFound(format!("no tree {name}")))?;
    match tree.retire_at {
        None => return Err(AppError::Conflict(format!("tree {name} is not being retired"))),
        Some(at) if at <= state.db.now_ms() => {
            return Err(AppError::Conflict(format!(
                "tree {name} was removed; define it again with PUT to publish it anew"
            )));
        }
        Some(_) => {}
    }
    state.db.set_tree_retire_at(name, None).await?;
    state.db.audit(actor, "tree.retire.cancel", name, serde_json::json!({})).await?;
    Ok(())
}

/// `GET /api/v1/trees`.
pub async fn trees(
    State(state): State<Arc<AppState>>,
    _caller: Viewer,
) -> Result<Json<serde_json::Value>, AppError> {
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
    _caller: Viewer,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    let tree =
        state.db.tree(&name).await?.ok_or_else(|| AppError::NotFound(format!("no tree {name}")))?;
    Ok(Json(tree_json(&state, tree).await?))
}

/// `GET /api/v1/trees/{name}/sign-request`: what a key holder signs for the pending version.
pub async fn sign_request(
    State(state): State<Arc<AppState>>,
    _caller: KeyHolder,
    Path(name): Path<String>,
) -> Result<Json<SignRequest>, AppError> {
    Ok(Json(pending_sign_request(&state, &name).await?))
}

/// What a key holder signs for tree `name`'s pending version.
pub(crate) async fn pending_sign_request(
    state: &AppState,
    name: &str,
) -> Result<SignRequest, AppError> {
    let tree =
        state.db.tree(name).await?.ok_or_else(|| AppError::NotFound(format!("no tree {name}")))?;
    let pending =
        state.db.versions_in(name, VersionState::Pending).await?.into_iter().next().ok_or_else(
            || AppError::NotFound(format!("tree {name} has no version waiting for a signature")),
        )?;
    let built = crate::reconcile::unsigned_tree_of(&pending)
        .map_err(|e| AppError::Unprocessable(e.to_string()))?;
    let previous = state
        .db
        .versions_in(name, VersionState::Published)
        .await?
        .into_iter()
        .next()
        .map(|p| PreviousTree { seq: p.seq, enrs: p.enrs, links: p.links });
    let key = tree.public_key.as_deref().and_then(decode_public_key);
    Ok(SignRequest::new(&built, &tree.domain, key.as_ref(), previous))
}

/// `POST /api/v1/trees/{name}/signature`: a key holder's detached signature for the pending
/// version, verified before it is accepted.
pub async fn upload_signature(
    State(state): State<Arc<AppState>>,
    KeyHolder(actor): KeyHolder,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, AppError> {
    let text =
        std::str::from_utf8(&body).map_err(|_| AppError::BadRequest("body is not UTF-8".into()))?;
    let accepted = accept_signature(&state, &actor, &name, text).await?;
    Ok(Json(serde_json::json!({ "seq": accepted.seq, "url": accepted.url })))
}

/// A key holder's signature, verified and accepted: the version it signed and the tree's URL.
pub(crate) struct AcceptedSignature {
    pub seq: u64,
    pub url: String,
}

/// Verifies `text` (a `request.sig.json`) against tree `name`'s pending version and accepts
/// it for `actor`.
pub(crate) async fn accept_signature(
    state: &AppState,
    actor: &str,
    name: &str,
    text: &str,
) -> Result<AcceptedSignature, AppError> {
    let detached =
        DetachedSignature::from_json(text).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let (key, signature) = detached
        .verify()
        .map_err(|e| AppError::BadRequest(format!("signature does not verify: {e}")))?;
    let tree =
        state.db.tree(name).await?.ok_or_else(|| AppError::NotFound(format!("no tree {name}")))?;
    if tree.signer != Signer::Offline {
        return Err(AppError::Conflict(format!("tree {name} is signed online by {}", tree.signer)));
    }
    if detached.domain.trim_end_matches('.') != tree.domain {
        return Err(AppError::Conflict(format!(
            "signature is for {}, not {}",
            detached.domain, tree.domain
        )));
    }
    let pending =
        state.db.versions_in(name, VersionState::Pending).await?.into_iter().next().ok_or_else(
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
    if !state.db.sign_version(name, pending.seq, &signature.to_string()).await? {
        return Err(AppError::Conflict("the pending version changed meanwhile".into()));
    }
    if tree.public_key.is_none() {
        state.db.set_tree_public_key(name, &key_text).await?;
    }
    state
        .db
        .audit(
            actor,
            "tree.sign",
            name,
            serde_json::json!({ "seq": pending.seq, "publicKey": key_text }),
        )
        .await?;
    state.wake.notify_one();
    Ok(AcceptedSignature { seq: pending.seq, url: format!("enrtree://{key_text}@{}", tree.domain) })
}
