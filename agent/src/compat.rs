//! The compatibility ports, so existing Consul checks, Ansible roles and Prometheus scrapes
//! keep working when an agent replaces nwaku: nwaku's REST API (`GET /health`,
//! `/debug/v1/info`, `/debug/v1/version`, `/admin/v1/peers`, and the rest of
//! [`node::rest::router`]) and `/metrics` ([`node::metrics`] under nwaku's names, then the
//! agent's own from [`crate::metrics`]).
//!
//! The ports stay bound across node restarts: each request goes to the node running now. While
//! it restarts, `/health` answers 503 with `nodeHealth: INITIALIZING` (what nwaku says while
//! starting), other REST paths 503, and `/metrics` still serves the agent's metrics.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    body::Body,
    extract::{Request, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tower::ServiceExt;

use crate::{error::AgentError, metrics::AgentMetrics, supervisor::SupervisorHandle};

#[derive(Clone)]
struct CompatState {
    supervisor: SupervisorHandle,
    metrics: Arc<AgentMetrics>,
}

/// The REST router: every request to the running node's [`node::rest::router`].
pub fn rest_router(supervisor: SupervisorHandle, metrics: Arc<AgentMetrics>) -> Router {
    Router::new().fallback(forward).with_state(CompatState { supervisor, metrics })
}

/// The metrics router: `/metrics`.
pub fn metrics_router(supervisor: SupervisorHandle, metrics: Arc<AgentMetrics>) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .with_state(CompatState { supervisor, metrics })
}

async fn forward(State(state): State<CompatState>, request: Request) -> Response {
    let Some(instance) = state.supervisor.current() else {
        if request.uri().path() == "/health" {
            let body = serde_json::json!({
                "nodeHealth": "INITIALIZING",
                "connectionStatus": "Disconnected",
                "protocolsHealth": [{ "Relay": "NOT_READY", "desc": "the node is restarting" }],
            });
            return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        }
        return (StatusCode::SERVICE_UNAVAILABLE, "the node is restarting").into_response();
    };
    match instance.rest.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

async fn render_metrics(State(state): State<CompatState>) -> Response {
    let instance = state.supervisor.current();
    let mut text = String::new();
    if let Some(instance) = &instance
        && let Ok(stats) = instance.handle.stats().await
    {
        match node::metrics::render(&stats, concat!("v", env!("CARGO_PKG_VERSION"))) {
            Ok(node_text) => text = node_text,
            Err(error) => tracing::warn!(target: "agent::compat", %error, "node metrics failed"),
        }
    }
    match state.metrics.render(state.supervisor.stats(), instance.is_some()) {
        Ok(agent_text) => text.push_str(&agent_text),
        Err(error) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response();
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], Body::from(text)).into_response()
}

/// Binds `addr` and serves `router` until `stop`; returns the bound address and the task.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    mut stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, JoinHandle<()>), AgentError> {
    let listener =
        TcpListener::bind(addr).await.map_err(|source| AgentError::Listen { addr, source })?;
    let bound = listener.local_addr().map_err(|source| AgentError::Listen { addr, source })?;
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(error) = axum::serve(listener, router).with_graceful_shutdown(shutdown).await {
            tracing::error!(target: "agent::compat", %error, %bound, "compatibility port failed");
        }
    });
    Ok((bound, task))
}
