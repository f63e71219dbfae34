//! Agent endpoints: enrolment and reports, both signed with the node's key.

use std::sync::Arc;

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use node::enrtree::NodeRecord;

use crate::{
    app::AppState,
    db::tokens::Redeem,
    error::{AppError, parse_json},
};
use contract::{
    enrolment::{Enrolled, Enrolment},
    report::{Report, ReportAnswer, ReportError, check_fresh},
    signing::{self, SIGNATURE_HEADER, key_hex},
};

fn signer(headers: &HeaderMap, body: &[u8]) -> Result<k256::ecdsa::VerifyingKey, AppError> {
    let header = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    signing::recover(body, header).map_err(|e| AppError::Unauthorized(e.to_string()))
}

pub(crate) fn report_error(error: ReportError) -> AppError {
    match error {
        ReportError::Skew { .. } | ReportError::Future { .. } => {
            AppError::Unauthorized(error.to_string())
        }
        _ => AppError::BadRequest(error.to_string()),
    }
}

fn parse_enr(text: &str) -> Result<NodeRecord, AppError> {
    text.parse().map_err(|e| AppError::BadRequest(format!("invalid ENR: {e}")))
}

/// `POST /api/v1/enrol`: redeem a one-time token and bind the node's key.
pub async fn enrol(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Enrolled>), AppError> {
    let key = signer(&headers, &body)?;
    let enrolment: Enrolment = parse_json(&body)?;
    let config = &state.config;
    check_fresh(
        enrolment.sent_at,
        state.db.now_ms(),
        config.max_skew_secs,
        config.max_future_skew_secs,
    )
    .map_err(report_error)?;
    let record = parse_enr(&enrolment.enr)?;
    if key_hex(&record.enr().public_key()) != key_hex(&key) {
        return Err(AppError::Unauthorized("enrolment not signed by the ENR's key".into()));
    }
    let node_id = record.node_id_hex();
    let token = match state.db.redeem_token(&enrolment.token, &node_id).await? {
        Redeem::Ok(token) => token,
        Redeem::Unknown => return Err(AppError::Unauthorized("unknown enrolment token".into())),
        Redeem::Used => return Err(AppError::Conflict("enrolment token already used".into())),
        Redeem::Expired => return Err(AppError::Unauthorized("enrolment token expired".into())),
        Redeem::Revoked => return Err(AppError::Unauthorized("enrolment token revoked".into())),
    };
    // Labels are the operators' (the token's): an agent-chosen one could impersonate another
    // node on the dashboard and in alerts.
    if enrolment.label.as_ref().is_some_and(|l| *l != token.label) {
        tracing::info!(target: "ctl::api", token = %token.id, "enrolment label ignored: labels come from the token");
    }
    let label = token.label.clone();
    state
        .db
        .enrol_node(
            &node_id,
            &key_hex(&key),
            &crate::db::nodes::Membership {
                label: &label,
                roles: &token.roles,
                ceiling: &token.ceiling,
            },
            &enrolment.enr,
            record.seq(),
        )
        .await?;
    state
        .db
        .audit(
            &format!("agent:{node_id}"),
            "node.enrol",
            &node_id,
            serde_json::json!({ "label": label, "token": token.id, "roles": token.roles }),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(Enrolled { node_id })))
}

/// `POST /api/v1/reports`: a signed health report.
pub async fn report(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<ReportAnswer>), AppError> {
    // What needs no database runs here, on every core at once: the signature, the JSON, the
    // clock. The rest waits for the next group commit.
    let key = signer(&headers, &body)?;
    let report: Report = parse_json(&body)?;
    let config = &state.config;
    report
        .check(state.db.now_ms(), config.max_skew_secs, config.max_future_skew_secs)
        .map_err(report_error)?;
    // A node id is the keccak256 of its public key: a report for another node id than the
    // signer's cannot be from a node enrolled under that key. Answered as the writer answers
    // an unknown node, so nobody learns which node ids are enrolled.
    if data_encoding::HEXLOWER.encode(&node::crypto::node_id(&key)) != report.node_id {
        return Err(crate::ingest::not_enrolled());
    }
    // The record is checked against the stored one by the writer, and verified only when it
    // differs from it.
    let answer = state.reports.submit(&state, key_hex(&key), report).await?;
    Ok((StatusCode::ACCEPTED, Json(answer)))
}
