//! Who may use a REST port. nwaku's REST API has no authentication and can publish, subscribe
//! and (with `peerAddr`) make the node dial anywhere, so:
//! - an optional bearer token (`rest-token-file`), **required** before the port listens on a
//!   non-loopback address; `GET /health` stays open so health checks need no secret;
//! - a Host allow-list, so a web page cannot reach a loopback-only API through DNS rebinding
//!   (its requests name the attacker's host): without a token only localhost, loopback
//!   addresses, the bound address and `rest-allowed-host` names pass; with a token, Host is
//!   checked only when names were listed (`*` accepts any).

use std::{
    collections::HashSet,
    net::{IpAddr, SocketAddr},
    path::Path,
    sync::Arc,
};

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderMap, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

/// Why a REST port cannot be served as configured.
#[derive(Debug, thiserror::Error)]
pub enum RestAccessError {
    /// Listening off loopback without a token.
    #[error(
        "REST on {0} would be reachable from other hosts without authentication: set \
         rest-token-file (a bearer token) or listen on 127.0.0.1"
    )]
    NeedsToken(SocketAddr),
    /// The token file cannot be read, or is empty.
    #[error("rest-token-file {path}: {cause}")]
    Token {
        /// The file.
        path: String,
        /// What is wrong.
        cause: String,
    },
}

/// The rules of one REST port.
#[derive(Debug, Clone)]
pub struct RestAccess {
    /// SHA-256 of the token: compared in constant time, never kept in the clear.
    token: Option<[u8; 32]>,
    /// `None`: any Host.
    hosts: Option<HashSet<String>>,
}

impl RestAccess {
    /// The rules for a port bound to `bind`, with `token` and the operator's extra Host
    /// names.
    pub fn new(
        bind: SocketAddr,
        token: Option<&str>,
        allowed_hosts: &[String],
    ) -> Result<Self, RestAccessError> {
        if token.is_none() && !bind.ip().is_loopback() {
            return Err(RestAccessError::NeedsToken(bind));
        }
        let listed: HashSet<String> =
            allowed_hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
        let hosts = if listed.contains("*") || (token.is_some() && listed.is_empty()) {
            None
        } else {
            let mut hosts = listed;
            hosts.insert("localhost".into());
            if !bind.ip().is_unspecified() {
                hosts.insert(bind.ip().to_string());
            }
            Some(hosts)
        };
        let token = token.map(|t| Sha256::digest(t.as_bytes()).into());
        Ok(Self { token, hosts })
    }

    /// As [`RestAccess::new`], the token read from `token_file` (its first line).
    pub fn from_file(
        bind: SocketAddr,
        token_file: Option<&Path>,
        allowed_hosts: &[String],
    ) -> Result<Self, RestAccessError> {
        let token = token_file
            .map(|path| {
                let fail = |cause: String| RestAccessError::Token {
                    path: path.display().to_string(),
                    cause,
                };
                let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
                let token = text.lines().next().unwrap_or("").trim().to_owned();
                if token.is_empty() { Err(fail("the file is empty".into())) } else { Ok(token) }
            })
            .transpose()?;
        Self::new(bind, token.as_deref(), allowed_hosts)
    }

    /// `router` behind these rules.
    pub fn guard(self, router: Router) -> Router {
        router.layer(middleware::from_fn_with_state(Arc::new(self), check))
    }

    fn host_allowed(&self, request: &Request) -> bool {
        let Some(hosts) = &self.hosts else { return true };
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| request.uri().authority().map(|a| a.to_string()));
        // Browsers always send Host; a client that sends none is not a rebinding page.
        let Some(host) = host else { return true };
        let name = host_name(&host).to_ascii_lowercase();
        hosts.contains(&name) || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    fn token_ok(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.token else { return true };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(|t| <[u8; 32]>::from(Sha256::digest(t.trim().as_bytes())));
        given.is_some_and(|given| {
            given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
        })
    }
}

/// The name part of a Host header: without the port, IPv6 brackets removed.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
}

async fn check(State(access): State<Arc<RestAccess>>, request: Request, next: Next) -> Response {
    if !access.host_allowed(&request) {
        return (StatusCode::FORBIDDEN, "Host not allowed (see rest-allowed-host)").into_response();
    }
    let open = request.method() == Method::GET && request.uri().path() == "/health";
    if !open && !access.token_ok(request.headers()) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a bearer token is required (Authorization: Bearer …)",
        )
            .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host: Option<&str>, token: Option<&str>) -> Request {
        let mut builder = Request::builder().uri("/debug/v1/info");
        if let Some(host) = host {
            builder = builder.header(header::HOST, host);
        }
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        builder.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn off_loopback_needs_a_token() {
        let public: SocketAddr = "0.0.0.0:8645".parse().unwrap();
        assert!(matches!(RestAccess::new(public, None, &[]), Err(RestAccessError::NeedsToken(_))));
        assert!(RestAccess::new(public, Some("s3cret"), &[]).is_ok());
        assert!(RestAccess::new("127.0.0.1:8645".parse().unwrap(), None, &[]).is_ok());
    }

    #[test]
    fn without_a_token_only_local_names_pass() {
        let access =
            RestAccess::new("127.0.0.1:8645".parse().unwrap(), None, &["node1.lan".into()])
                .unwrap();
        for good in
            ["127.0.0.1:8645", "localhost:8645", "[::1]:8645", "127.0.0.5", "NODE1.lan:8645"]
        {
            assert!(access.host_allowed(&request(Some(good), None)), "{good}");
        }
        for bad in ["evil.example:8645", "127.0.0.1.evil.example", "localhost.evil.example:80"] {
            assert!(!access.host_allowed(&request(Some(bad), None)), "{bad}");
        }
    }

    #[test]
    fn the_token_is_checked_in_full() {
        let access = RestAccess::new("0.0.0.0:8645".parse().unwrap(), Some("s3cret"), &[]).unwrap();
        let req = request(Some("203.0.113.9:8645"), Some("s3cret"));
        assert!(access.host_allowed(&req) && access.token_ok(req.headers()));
        for wrong in [Some("s3cre"), Some("s3cret2"), None] {
            assert!(!access.token_ok(request(None, wrong).headers()), "{wrong:?}");
        }
    }
}
