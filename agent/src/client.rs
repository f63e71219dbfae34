//! The controller's agent API, signed: `POST /api/v1/enrol` and `POST /api/v1/reports`
//! (bodies signed as [`contract::signing`] describes). Every answer is sorted into what the
//! agent can do about it: wait (unreachable, 5xx, garbage), fix the clock (stale), move the
//! counter on (replay), enrol again (unknown node), or give up on this one request.

use std::time::Duration;

use contract::{
    ENROL_PATH, REPORTS_PATH,
    enrolment::{Enrolled, Enrolment},
    report::{Report, ReportAnswer},
    signing,
};
use k256::ecdsa::SigningKey;
use serde::Deserialize;

/// Longest controller answer read.
const MAX_ANSWER: usize = 64 * 1024;
/// Longest piece of an answer quoted in an error.
const QUOTE: usize = 200;

/// What went wrong with a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// No answer: connection refused, reset or timed out.
    #[error("controller unreachable: {0}")]
    Unreachable(String),
    /// The controller failed (5xx), or answered something that is not its API.
    #[error("controller failed ({status}): {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// Its message.
        message: String,
    },
    /// The controller finds `sentAt` too far from its clock (401).
    #[error("controller refuses the request as stale ({0}): check this host's clock (NTP)")]
    Stale(String),
    /// The counter is not above the last one the controller accepted (409).
    #[error("controller has seen counter {last:?} or higher: {message}")]
    Replay {
        /// The controller's last counter, when its message names it.
        last: Option<u64>,
        /// Its message.
        message: String,
    },
    /// The controller does not know this node (404): enrol again.
    #[error("controller does not know this node ({0}): enrol it with a new token")]
    UnknownNode(String),
    /// The enrolment token is unknown, used or expired.
    #[error("enrolment refused ({status}): {message}")]
    Enrolment {
        /// HTTP status.
        status: u16,
        /// The controller's reason.
        message: String,
    },
    /// Refused for another reason (4xx): this request will never be accepted.
    #[error("controller refused the request ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Its message.
        message: String,
    },
}

impl ClientError {
    /// Whether the controller may take the same request later (an outage or a bad day).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::Server { .. })
    }
}

/// A client bound to one controller and one node key.
#[derive(Clone)]
pub struct ControllerClient {
    http: reqwest::Client,
    base: String,
    key: SigningKey,
}

impl std::fmt::Debug for ControllerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("ControllerClient").field("base", &self.base).finish_non_exhaustive()
    }
}

impl ControllerClient {
    /// A client for the controller at `base` (`http://host:port` or `https://…`); HTTPS trusts
    /// the web PKI roots plus the PEM certificates in `trust_pem`.
    pub fn new(
        base: &str,
        key: SigningKey,
        timeout: Duration,
        trust_pem: &[u8],
    ) -> Result<Self, ClientError> {
        let tls = node::tls::client_config(trust_pem)
            .map_err(|e| ClientError::Unreachable(format!("controller TLS trust: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .use_preconfigured_tls(tls)
            .build()
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        Ok(Self { http, base: base.trim_end_matches('/').to_owned(), key })
    }

    /// The controller's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Redeems `token` for this node's key; returns the node id the controller enrolled.
    pub async fn enrol(&self, enrolment: &Enrolment) -> Result<String, ClientError> {
        let (status, body) = self.post(ENROL_PATH, enrolment).await?;
        match status {
            200..=299 => {
                serde_json::from_slice::<Enrolled>(&body).map(|e| e.node_id).map_err(|_| {
                    ClientError::Server {
                        status,
                        message: format!("unreadable answer: {}", quote(&body)),
                    }
                })
            }
            401 if message(&body).contains("sentAt") => Err(ClientError::Stale(message(&body))),
            401 | 409 => Err(ClientError::Enrolment { status, message: message(&body) }),
            _ => Err(classify(status, &body)),
        }
    }

    /// Sends `report`.
    pub async fn report(&self, report: &Report) -> Result<ReportAnswer, ClientError> {
        let (status, body) = self.post(REPORTS_PATH, report).await?;
        match status {
            // Accepted whatever the body says; an unreadable body only loses the desired
            // configuration, which the next answer carries again.
            200..=299 => Ok(serde_json::from_slice(&body).unwrap_or_else(|error| {
                tracing::warn!(target: "agent::report", %error, body = %quote(&body), "report accepted with an unreadable answer");
                ReportAnswer::default()
            })),
            _ => Err(classify(status, &body)),
        }
    }

    async fn post(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Refused {
            status: 0,
            message: format!("cannot encode the request: {e}"),
        })?;
        let signature = signing::sign(&self.key, &body);
        let mut response = self
            .http
            .post(format!("{}{path}", self.base))
            .header(signing::SIGNATURE_HEADER, signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| ClientError::Unreachable(error_chain(&e)))?;
        let status = response.status().as_u16();
        let mut answer = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_ANSWER.saturating_sub(answer.len());
                    answer.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if room <= chunk.len() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(ClientError::Server {
                        status,
                        message: format!("answer cut off: {}", error_chain(&e)),
                    });
                }
            }
        }
        Ok((status, answer))
    }
}

/// The words of the controller's answer to a report from a node it has not enrolled.
const NOT_ENROLLED: &str = "no node enrolled";

fn classify(status: u16, body: &[u8]) -> ClientError {
    let message = message(body);
    match status {
        401 if message.contains("sentAt") => ClientError::Stale(message),
        // The controller answers an unknown node and a key it did not enrol alike (401, so
        // that nobody learns which node ids are enrolled); older controllers said 404.
        401 if message.contains(NOT_ENROLLED) => ClientError::UnknownNode(message),
        404 => ClientError::UnknownNode(message),
        409 => ClientError::Replay { last: last_counter(&message), message },
        400..=499 => ClientError::Refused { status, message },
        _ => ClientError::Server { status, message },
    }
}

/// The controller's `{"error": …}` message, or the start of whatever it sent.
fn message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: String,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => e.error.chars().take(QUOTE).collect(),
        Err(_) => format!("unreadable answer: {}", quote(body)),
    }
}

fn quote(body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .take(QUOTE)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("{text:?}")
}

/// The counter in the controller's replay message ("… is not above N").
fn last_counter(message: &str) -> Option<u64> {
    message.rsplit_once("not above ")?.1.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_sorted_by_what_the_agent_can_do() {
        let replay = classify(409, br#"{"error":"replayed report: counter 3 is not above 7"}"#);
        assert_eq!(
            replay,
            ClientError::Replay {
                last: Some(7),
                message: "replayed report: counter 3 is not above 7".into()
            }
        );
        assert!(matches!(
            classify(401, br#"{"error":"sentAt is 400 s from the controller's clock"}"#),
            ClientError::Stale(_)
        ));
        assert!(matches!(classify(404, b"{}"), ClientError::UnknownNode(_)));
        assert!(matches!(
            classify(401, br#"{"error":"no node enrolled under the key that signed this report: enrol first"}"#),
            ClientError::UnknownNode(_)
        ));
        assert!(matches!(classify(400, b"{}"), ClientError::Refused { status: 400, .. }));
        let garbage = classify(500, b"\x00\x01<html>oops");
        assert!(garbage.is_transient());
        assert!(garbage.to_string().contains("unreadable answer"), "{garbage}");
        assert!(!classify(401, br#"{"error":"bad signature"}"#).is_transient());
    }
}
