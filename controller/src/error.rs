//! The one error type of the HTTP API: every failure becomes a status code and a JSON body
//! `{"error": "…"}` an operator or agent can act on.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};

use crate::db::DbError;

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Malformed or invalid input (400).
    #[error("{0}")]
    BadRequest(String),
    /// Missing or wrong credentials or signature (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials, not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such thing (404).
    #[error("{0}")]
    NotFound(String),
    /// Conflicts with the current state: a replayed report, a used token, a signature for
    /// another version (409).
    #[error("{0}")]
    Conflict(String),
    /// Would produce something clients cannot use (422).
    #[error("{0}")]
    Unprocessable(String),
    /// A body over the limit (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A body of a type the route does not take (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Not now: stopping, or the database failed for a whole batch (503: try again).
    #[error("{0}")]
    Unavailable(String),
    /// The database failed (503: try again). The cause is logged, never sent: it may name
    /// tables, hosts or SQL.
    #[error("database unavailable: {0}")]
    Database(#[from] DbError),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(error) => {
                tracing::warn!(target: "ctl::api", %error, "database error");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        let message = match &self {
            Self::Database(_) => "database unavailable; try again".to_owned(),
            other => other.to_string(),
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

/// Parses a JSON body with a message naming what is wrong and where.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    serde_json::from_slice(body)
        .map_err(|e| AppError::BadRequest(format!("invalid JSON body: {e}")))
}
