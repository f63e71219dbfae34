//! `/api/v1/access-tokens`: people's accounts, one named token and role each (admins only).
//! A token is shown once, when it is made; only its digest is kept.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::Deserialize;

use super::extract::{Admin, JsonBody};
use crate::{
    access::{Role, check_name, new_token},
    app::AppState,
    db::access::CreateAccessError,
    error::AppError,
};

/// `POST /api/v1/access-tokens` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccessToken {
    /// The account's name (the audit log and the dashboard login use it).
    pub name: String,
    /// `viewer`, `operator`, `key-holder` or `admin`.
    pub role: Role,
}

/// `POST /api/v1/access-tokens`: a named token with a role, shown once.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Admin(actor): Admin,
    JsonBody(request): JsonBody<NewAccessToken>,
) -> Result<(StatusCode, Json<serde_json::Value>), AppError> {
    let token = create_account(&state, &actor, &request).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "name": request.name, "role": request.role, "token": token })),
    ))
}

/// Makes an account for `actor`; its access token, shown once.
pub(crate) async fn create_account(
    state: &AppState,
    actor: &str,
    request: &NewAccessToken,
) -> Result<String, AppError> {
    check_name(&request.name).map_err(AppError::BadRequest)?;
    let token = new_token();
    let info =
        state.db.create_access_token(&request.name, request.role, &token, actor).await.map_err(
            |error| match error {
                CreateAccessError::Exists(_) => AppError::Conflict(error.to_string()),
                CreateAccessError::Db(error) => AppError::Database(error),
            },
        )?;
    let detail = serde_json::json!({ "role": info.role });
    state.db.audit(actor, "access.create", &info.name, detail).await?;
    Ok(token)
}

/// `GET /api/v1/access-tokens`: every account (never a secret).
pub async fn list(
    State(state): State<Arc<AppState>>,
    _caller: Admin,
) -> Result<Json<serde_json::Value>, AppError> {
    Ok(Json(serde_json::json!({ "accessTokens": state.db.access_tokens().await? })))
}

/// `DELETE /api/v1/access-tokens/{name}`: revokes the token at once (its next request is 401).
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    Admin(actor): Admin,
    Path(name): Path<String>,
) -> Result<StatusCode, AppError> {
    revoke_account(&state, &actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes account `name`'s access token for `actor`.
pub(crate) async fn revoke_account(
    state: &AppState,
    actor: &str,
    name: &str,
) -> Result<(), AppError> {
    if !state.db.revoke_access_token(name, actor).await? {
        return Err(AppError::NotFound(format!("no active access token named {name:?}")));
    }
    state.db.audit(actor, "access.revoke", name, serde_json::json!({})).await?;
    Ok(())
}
