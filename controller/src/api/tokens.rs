//! `/api/v1/tokens`: one-time enrolment tokens, shown once, only their digest kept.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::Deserialize;

use super::extract::{JsonBody, Operator};
use crate::{app::AppState, db::tokens::Revoke, error::AppError};

/// Longest enrolment token lifetime.
const MAX_TOKEN_TTL_SECS: u64 = 30 * 24 * 3600;

/// `POST /api/v1/tokens` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for.
    pub label: String,
    /// Roles the node gets ([`crate::membership::ROLES`]); reports never change them.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Shards the node may serve at most (default: any).
    #[serde(default)]
    pub shards: Option<Vec<u16>>,
    /// The cluster it must be on (default: any).
    #[serde(default)]
    pub cluster_id: Option<u16>,
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
    Operator(actor): Operator,
    JsonBody(request): JsonBody<NewToken>,
) -> Result<(StatusCode, Json<serde_json::Value>), AppError> {
    let issued = issue_token(&state, &actor, &request).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            serde_json::json!({ "token": issued.token, "id": issued.id, "expiresAt": issued.expires_at }),
        ),
    ))
}

/// A new enrolment token: the secret (shown once), its public id and its expiry.
pub(crate) struct IssuedToken {
    pub token: String,
    pub id: String,
    pub expires_at: i64,
}

/// Makes an enrolment token for `actor` (the API's and the dashboard's action).
pub(crate) async fn issue_token(
    state: &AppState,
    actor: &str,
    request: &NewToken,
) -> Result<IssuedToken, AppError> {
    if request.label.is_empty() || request.label.len() > 128 {
        return Err(AppError::BadRequest("label must be 1..128 characters".into()));
    }
    if request.ttl_secs == 0 || request.ttl_secs > MAX_TOKEN_TTL_SECS {
        return Err(AppError::BadRequest(format!("ttlSecs must be 1..={MAX_TOKEN_TTL_SECS}")));
    }
    crate::membership::check_roles(&request.roles).map_err(AppError::BadRequest)?;
    let ceiling = crate::membership::Ceiling {
        shards: request.shards.clone(),
        cluster_id: request.cluster_id,
    };
    ceiling.check().map_err(AppError::BadRequest)?;
    let mut secret = [0u8; 24];
    node::crypto::random_bytes(&mut secret);
    let token = format!("wft_{}", data_encoding::BASE32_NOPAD.encode(&secret).to_lowercase());
    let expires_at = state.db.now_ms() + request.ttl_secs as i64 * 1000;
    let info = state
        .db
        .create_token(&token, &request.label, &request.roles, &ceiling, actor, expires_at)
        .await?;
    state
        .db
        .audit(actor, "token.create", &info.id, serde_json::json!({ "label": info.label, "roles": info.roles, "ceiling": info.ceiling, "expiresAt": expires_at }))
        .await?;
    Ok(IssuedToken { token, id: info.id, expires_at })
}

/// `DELETE /api/v1/tokens/{id}`: revokes a token not yet redeemed (`id` is its public id, the
/// SHA-256 `GET /api/v1/tokens` lists). A redeemed one is 409: decommission the node instead.
pub async fn revoke_token(
    State(state): State<Arc<AppState>>,
    Operator(actor): Operator,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    revoke_enrolment_token(&state, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes enrolment token `id` for `actor`.
pub(crate) async fn revoke_enrolment_token(
    state: &AppState,
    actor: &str,
    id: &str,
) -> Result<(), AppError> {
    match state.db.revoke_token(id, actor).await? {
        Revoke::Ok => {}
        Revoke::Unknown => return Err(AppError::NotFound(format!("no enrolment token {id}"))),
        Revoke::Used => {
            return Err(AppError::Conflict(format!(
                "enrolment token {id} was redeemed already; its node is enrolled"
            )));
        }
        Revoke::AlreadyRevoked => {
            return Err(AppError::Conflict(format!("enrolment token {id} is revoked already")));
        }
    }
    state.db.audit(actor, "token.revoke", id, serde_json::json!({})).await?;
    Ok(())
}

/// `GET /api/v1/tokens`.
pub async fn tokens(
    State(state): State<Arc<AppState>>,
    _caller: Operator,
) -> Result<Json<serde_json::Value>, AppError> {
    Ok(Json(serde_json::json!({ "tokens": state.db.tokens().await? })))
}
