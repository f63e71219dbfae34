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
    db::{nodes::ReportUpdate, tokens::Redeem},
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

fn report_error(error: ReportError) -> AppError {
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

/// Whether an accepted report may change what trees list: its node's health would move, or its
/// record, roles, shards or cluster changed. Only then is the reconcile loop woken early; a
/// report that refreshes a passing node's figures waits for the next interval (waking a full
/// pass per report starved ingest at a thousand agents).
fn may_change_membership(
    state: &AppState,
    node: &crate::db::nodes::NodeRow,
    report: &Report,
    services: &[String],
    body: &[u8],
) -> bool {
    if node.enr != report.enr
        || node.services != services
        || node.shards != report.shards
        || node.cluster_id != report.cluster_id
    {
        return true;
    }
    let mut after = node.clone();
    if report.measured_at >= node.last_measured_at.unwrap_or(0) {
        after.last_measured_at = Some(report.measured_at);
        after.last_report = serde_json::from_slice(body).ok();
    }
    let expected = state.expectations();
    crate::health::evaluate(&after, &state.config.health, &expected, state.db.now_ms()).0
        != node.health
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
    let key = signer(&headers, &body)?;
    let report: Report = parse_json(&body)?;
    let config = &state.config;
    report
        .check(state.db.now_ms(), config.max_skew_secs, config.max_future_skew_secs)
        .map_err(report_error)?;
    let node = state.db.node(&report.node_id).await?.ok_or_else(|| {
        AppError::NotFound(format!("unknown node {}: enrol first", report.node_id))
    })?;
    if key_hex(&key) != node.public_key {
        return Err(AppError::Unauthorized("report not signed by the node's enrolled key".into()));
    }
    let record = parse_enr(&report.enr)?;
    if record.node_id_hex() != report.node_id {
        return Err(AppError::BadRequest("the report's ENR belongs to another node".into()));
    }
    // The operator's ceiling: a report may say the node runs less, never more.
    if let Some(reason) = node.ceiling.exceeded_by(&report.shards, report.cluster_id) {
        state
            .db
            .audit(
                &format!("node:{}", node.node_id),
                "report.refused",
                &node.node_id,
                serde_json::json!({ "reason": reason, "counter": report.counter }),
            )
            .await?;
        return Err(AppError::Forbidden(reason));
    }
    let services = report.known_services();
    let body_text = String::from_utf8_lossy(&body);
    let update = ReportUpdate {
        counter: report.counter,
        sent_at: report.sent_at,
        measured_at: report.measured_at,
        enr: &report.enr,
        enr_seq: record.seq(),
        services: &services,
        shards: &report.shards,
        cluster_id: report.cluster_id,
        body: &body_text,
    };
    if !state.db.accept_report(&node.node_id, &update, state.config.reports_kept).await? {
        return Err(AppError::Conflict(format!(
            "replayed report: counter {} is not above {}",
            report.counter, node.last_counter
        )));
    }
    if may_change_membership(&state, &node, &report, &services, &body) {
        state.wake.notify_one();
    }
    let answer = ReportAnswer { counter: Some(report.counter), desired: node.desired_config };
    Ok((StatusCode::ACCEPTED, Json(answer)))
}
