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

/// Why a report's record cannot replace the stored one, if it cannot.
fn enr_seq_refusal(
    node: &crate::db::nodes::NodeRow,
    stored: Option<&NodeRecord>,
    record: &NodeRecord,
) -> Option<String> {
    let (seq, stored_seq) = (record.seq(), node.enr_seq);
    if seq < stored_seq {
        Some(format!("the report's ENR has seq {seq}, below the stored record's {stored_seq}"))
    } else if seq == stored_seq && !stored.is_some_and(|s| s.same_content(record)) {
        Some(format!(
            "the report's ENR differs from the stored record at the same seq {seq}: a changed record needs a higher seq"
        ))
    } else {
        None
    }
}

/// Audits a refused report of an authenticated node.
async fn refuse(
    state: &AppState,
    node: &crate::db::nodes::NodeRow,
    reason: &str,
    counter: u64,
) -> Result<(), AppError> {
    state
        .db
        .audit(
            &format!("node:{}", node.node_id),
            "report.refused",
            &node.node_id,
            serde_json::json!({ "reason": reason, "counter": counter }),
        )
        .await?;
    Ok(())
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
    let key = signer(&headers, &body)?;
    let mut report: Report = parse_json(&body)?;
    let config = &state.config;
    report
        .check(state.db.now_ms(), config.max_skew_secs, config.max_future_skew_secs)
        .map_err(report_error)?;
    // An unknown node and a key not enrolled for this node id get the same answer, so that
    // nobody learns which node ids are enrolled.
    let not_enrolled = || {
        AppError::Unauthorized(
            "no node enrolled under the key that signed this report: enrol first".into(),
        )
    };
    let node = state.db.node(&report.node_id).await?.ok_or_else(not_enrolled)?;
    if key_hex(&key) != node.public_key {
        return Err(not_enrolled());
    }
    let record = parse_enr(&report.enr)?;
    if record.node_id_hex() != report.node_id {
        return Err(AppError::BadRequest("the report's ENR belongs to another node".into()));
    }
    // A record's content changes only with a higher seq: clients keep the highest seq they
    // saw, so a same-seq change would be a record nobody can tell from a forgery.
    let stored: Option<NodeRecord> = node.enr.parse().ok();
    if let Some(reason) = enr_seq_refusal(&node, stored.as_ref(), &record) {
        refuse(&state, &node, &reason, report.counter).await?;
        return Err(AppError::Conflict(reason));
    }
    // The same record signed again (a restarted node signs its unchanged record anew): keep
    // the stored text, so trees do not change for a new signature over the same content.
    if stored.as_ref().is_some_and(|s| s.same_content(&record)) {
        report.enr = node.enr.clone();
    }
    // The operator's ceiling: a report may say the node runs less, never more.
    if let Some(reason) = node.ceiling.exceeded_by(&report.shards, report.cluster_id) {
        refuse(&state, &node, &reason, report.counter).await?;
        return Err(AppError::Forbidden(reason));
    }
    let services = report.known_services();
    // A new record too large for a tree the node belongs to could never be listed there. (A
    // stored record that stops fitting, because a tree's domain grew, is left out at build
    // time and its node is a warning: refusing its reports would only make it look dead.)
    let after = crate::db::nodes::NodeRow {
        enr: report.enr.clone(),
        services: services.clone(),
        shards: report.shards.clone(),
        cluster_id: report.cluster_id,
        ..node.clone()
    };
    if report.enr != node.enr
        && let Some(reason) = state.expectations().oversized(&after)
    {
        refuse(&state, &node, &reason, report.counter).await?;
        return Err(AppError::BadRequest(reason));
    }
    let body_text = report.to_stored().map_err(report_error)?;
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
    if may_change_membership(&state, &node, &report, &services, body_text.as_bytes()) {
        state.wake.notify_one();
    }
    let fleet = state.fleet().hint_for(&node.node_id, report.cluster_id);
    let answer =
        ReportAnswer { counter: Some(report.counter), desired: node.desired_config, fleet };
    Ok((StatusCode::ACCEPTED, Json(answer)))
}
