//! `GET /api/v1/audit`: the append-only audit log.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Query, State},
};
use serde::Deserialize;

use super::extract::Viewer;
use crate::{app::AppState, error::AppError};

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
    _caller: Viewer,
    Query(query): Query<AuditQuery>,
) -> Result<Json<serde_json::Value>, AppError> {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(serde_json::json!({ "entries": state.db.audit_entries(query.after, limit).await? })))
}
