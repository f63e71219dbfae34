//! The HTTP API (JSON). Agents' endpoints are authenticated by their signatures
//! ([`contract::signing`]); people's endpoints by a bearer token whose account's role
//! ([`crate::access::Role`]) must grant what the route needs. Bodies are limited to
//! [`MAX_BODY`] bytes (413 beyond).
//!
//! - [`agents`] — `POST /api/v1/enrol`, `POST /api/v1/reports`.
//! - People's, one file per resource: [`tokens`], [`nodes`], [`rollouts`], [`trees`] (with
//!   offline signing), [`audit`], [`access`] (accounts); each handler takes one of the
//!   extractors in [`extract`] (`Viewer`, `Operator`, `KeyHolder`, `Admin`), so none is
//!   reachable without a token whose role allows it.
//! - [`extract`] — the role extractors and [`extract::JsonBody`].
//! - [`openapi`] — `GET /openapi.json`.
//! - [`fleets`] — `GET /fleets.json`, the published nodes in fleets.status.im's shape.

pub mod access;
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
    routing::{delete, get, post, put},
};

use crate::{
    access::{BOOTSTRAP_ADMIN, Caller, Role},
    app::AppState,
    error::AppError,
};

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
        .route("/api/v1/tokens/{id}", delete(tokens::revoke_token))
        .route("/api/v1/nodes", get(nodes::nodes))
        .route("/api/v1/nodes/{id}", get(nodes::node).delete(nodes::decommission))
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
        .route("/api/v1/access-tokens", post(access::create).get(access::list))
        .route("/api/v1/access-tokens/{name}", delete(access::revoke))
        .merge(crate::dashboard::router(state.clone()))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(crate::http_server::RateLimiter::new(state.config.http.clone())),
            crate::http_server::guard,
        ))
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

/// The person behind a request's bearer token: the bootstrap admin (`admin_token_file`) or an
/// active access token's account. Unknown and revoked tokens get the same answer.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Caller, AppError> {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| AppError::Unauthorized("missing Authorization: Bearer <token>".into()))?;
    token_caller(state, given.trim())
        .await?
        .ok_or_else(|| AppError::Unauthorized("unknown or revoked token".into()))
}

/// Who `token` belongs to, if anyone.
pub(crate) async fn token_caller(
    state: &AppState,
    token: &str,
) -> Result<Option<Caller>, AppError> {
    if let Some(expected) = &state.admin_token
        && is_admin_token(expected, token.as_bytes())
    {
        return Ok(Some(Caller { name: BOOTSTRAP_ADMIN.into(), role: Role::Admin }));
    }
    // Only tokens of our shape reach the database: a guess costs no query.
    if !token.starts_with("wfa_") || token.len() > 64 {
        return Ok(None);
    }
    Ok(state.db.authenticate_access_token(token).await?)
}

/// Whether `given` is the admin token. Digests are compared, so the time taken says
/// nothing about how much of the token matched.
pub(crate) fn is_admin_token(expected: &str, given: &[u8]) -> bool {
    node::crypto::keccak256(given) == node::crypto::keccak256(expected.as_bytes())
}
