//! The HTTP API (JSON). Agents' endpoints are authenticated by their signatures
//! ([`contract::signing`]); operators' endpoints by a bearer token. Bodies are limited to
//! [`MAX_BODY`] bytes (413 beyond).
//!
//! - [`agents`] — `POST /api/v1/enrol`, `POST /api/v1/reports`.
//! - Operators', one file per resource: [`tokens`], [`nodes`], [`rollouts`], [`trees`] (with
//!   offline signing), [`audit`]; each handler takes the [`extract::Operator`] extractor, so
//!   none is reachable without the admin token.
//! - [`extract`] — [`extract::Operator`] and [`extract::JsonBody`].
//! - [`openapi`] — `GET /openapi.json`.
//! - [`fleets`] — `GET /fleets.json`, the published nodes in fleets.status.im's shape.

pub mod agents;
pub mod audit;
pub mod extract;
pub mod fleets;
pub mod nodes;
pub mod openapi;
pub mod rollouts;
pub mod tokens;
pub mod trees;

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::DefaultBodyLimit,
    http::HeaderMap,
    routing::{get, post, put},
};

use crate::{app::AppState, error::AppError};

/// Largest request body.
pub const MAX_BODY: usize = 256 * 1024;

/// The API's routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(openapi::document))
        .route("/fleets.json", get(fleets::fleets))
        .route("/metrics", get(crate::metrics::scrape))
        .route("/api/v1/enrol", post(agents::enrol))
        .route("/api/v1/reports", post(agents::report))
        .route("/api/v1/tokens", post(tokens::create_token).get(tokens::tokens))
        .route("/api/v1/nodes", get(nodes::nodes))
        .route("/api/v1/nodes/{id}", get(nodes::node))
        .route("/api/v1/nodes/{id}/config", put(nodes::put_node_config))
        .route("/api/v1/nodes/{id}/membership", put(nodes::put_membership))
        .route(
            "/api/v1/nodes/{id}/maintenance",
            put(nodes::start_maintenance).delete(nodes::end_maintenance),
        )
        .route("/api/v1/rollouts", post(rollouts::create_rollout).get(rollouts::rollouts))
        .route("/api/v1/rollouts/{id}", get(rollouts::rollout).delete(rollouts::cancel_rollout))
        .route("/api/v1/trees", get(trees::trees))
        .route("/api/v1/trees/{name}", put(trees::put_tree).get(trees::tree))
        .route("/api/v1/trees/{name}/sign-request", get(trees::sign_request))
        .route("/api/v1/trees/{name}/signature", post(trees::upload_signature))
        .route(
            "/api/v1/trees/{name}/retire",
            post(trees::retire_tree).delete(trees::cancel_retirement),
        )
        .route("/api/v1/audit", get(audit::audit))
        .merge(crate::dashboard::router(state.clone()))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::metrics::count_requests))
        .with_state(state)
}

/// How long `/health` waits for the database.
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /health`: 200 while the database answers, 503 when it does not, so a load balancer
/// takes a controller that lost its database out of rotation. Also says whether this instance
/// is the publisher.
async fn health(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> (axum::http::StatusCode, Json<serde_json::Value>) {
    let publisher = state.is_publisher();
    let why = match tokio::time::timeout(HEALTH_TIMEOUT, state.db.ping()).await {
        Ok(Ok(())) => {
            let body =
                serde_json::json!({ "status": "ok", "database": "ok", "publisher": publisher });
            return (axum::http::StatusCode::OK, Json(body));
        }
        Ok(Err(error)) => {
            tracing::warn!(target: "ctl::api", %error, "health check: database failed");
            "database unavailable".to_owned()
        }
        Err(_) => format!("database did not answer within {} s", HEALTH_TIMEOUT.as_secs()),
    };
    let body =
        serde_json::json!({ "status": "unavailable", "database": why, "publisher": publisher });
    (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(body))
}

/// The operator behind a request: `operator:admin` when the bearer token matches.
pub fn operator(state: &AppState, headers: &HeaderMap) -> Result<String, AppError> {
    let Some(expected) = &state.admin_token else {
        return Err(AppError::Unauthorized(
            "no admin token is configured (admin_token_file or $WAKUFLEET_ADMIN_TOKEN)".into(),
        ));
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| AppError::Unauthorized("missing Authorization: Bearer <token>".into()))?;
    if !is_admin_token(expected, given.as_bytes()) {
        return Err(AppError::Unauthorized("wrong admin token".into()));
    }
    Ok("operator:admin".into())
}

/// Whether `given` is the admin token. Digests are compared, so the time taken says
/// nothing about how much of the token matched.
pub(crate) fn is_admin_token(expected: &str, given: &[u8]) -> bool {
    node::crypto::keccak256(given) == node::crypto::keccak256(expected.as_bytes())
}
