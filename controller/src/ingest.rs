//! Group commit for agents' reports.
//!
//! A report handler does what needs no database on its own task (signature, JSON, clock,
//! record) and queues the report; one writer takes whatever is queued (up to [`MAX_BATCH`]),
//! reads the batch's nodes in one statement, checks each report against its node (key, record
//! seq, the operator's ceiling, record size), writes the accepted ones in one transaction
//! ([`crate::db::Db::accept_reports`]) and answers each. While a batch is being written the
//! next one queues, so the batch grows with the load and the cost per report falls: seven
//! statements and a commit per report before, about six per batch now.
//!
//! The queue is bounded ([`QUEUE`]): past it, handlers wait (and the HTTP server's request
//! timeout answers 408), so memory stays bounded under any load.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use contract::report::{Report, ReportAnswer};

use node::enrtree::NodeRecord;
use tokio::sync::{mpsc, oneshot, watch};

use crate::{
    api::agents::report_error,
    app::AppState,
    db::nodes::{NodeRow, ReportUpdate},
    error::AppError,
};

/// Most reports written in one transaction.
pub const MAX_BATCH: usize = 256;
/// Most reports waiting for the writer.
pub const QUEUE: usize = 4_096;

/// A verified report waiting for its node's checks and the commit.
struct Queued {
    /// The key that signed it (hex, as stored).
    key: String,
    report: Report,
    /// The sequence number of the report's record (known once checked).
    enr_seq: u64,
    /// What the report says the node runs, of the services trees know.
    services: Vec<String>,
    /// The report as stored.
    body: String,
    reply: oneshot::Sender<Result<Written, AppError>>,
}

/// What the writer did with a report: whether it was accepted (`false`: a replay), with its
/// node as it was before, and the report back.
struct Written {
    accepted: bool,
    node: NodeRow,
    report: Report,
    services: Vec<String>,
}

/// Where report handlers hand reports to the writer.
pub struct ReportQueue {
    sender: mpsc::Sender<Queued>,
}

/// The writers' end, taken by [`run`].
pub struct ReportReceiver(mpsc::Receiver<Queued>);

/// Writers at once on Postgres: while one batch commits the next is read and checked (rows
/// are locked in node-id order, so two batches never deadlock). SQLite has one writer.
pub const POSTGRES_WRITERS: usize = 2;

/// A queue and its writer's end.
pub fn queue() -> (ReportQueue, ReportReceiver) {
    let (sender, receiver) = mpsc::channel(QUEUE);
    (ReportQueue { sender }, ReportReceiver(receiver))
}

impl ReportQueue {
    /// Queues a report signed by `key` (hex), waits for the commit, and answers it. What does
    /// not need the node's row or the database runs here, on the handler's task (every core),
    /// not on the one writer: serialising the report, the fleet hint, the health check that
    /// decides whether to wake the reconcile loop.
    pub(crate) async fn submit(
        &self,
        state: &AppState,
        key: String,
        report: Report,
    ) -> Result<ReportAnswer, AppError> {
        let services = report.known_services();
        let body = report.to_stored().map_err(report_error)?;
        let (reply, answer) = oneshot::channel();
        let queued = Queued { key, report, enr_seq: 0, services, body, reply };
        self.sender.send(queued).await.map_err(|_| stopping())?;
        let Written { accepted, node, report, services } =
            answer.await.map_err(|_| stopping())??;
        if !accepted {
            return Err(AppError::Conflict(format!(
                "replayed report: counter {} is not above {}",
                report.counter, node.last_counter
            )));
        }
        if may_change_membership(state, &node, &report, &services) {
            state.wake.notify_one();
        }
        let fleet = state.fleet().hint_for(
            &node.node_id,
            report.cluster_id,
            report.fleet_version.as_deref(),
        );
        Ok(ReportAnswer { counter: Some(report.counter), desired: node.desired_config, fleet })
    }
}

/// The writers: batch until the controller stops, then what is still queued.
pub async fn run(
    state: Arc<AppState>,
    ReportReceiver(queue): ReportReceiver,
    stop: watch::Receiver<bool>,
) {
    let writers = match state.db.backend() {
        node::sql::Backend::Postgres => POSTGRES_WRITERS,
        node::sql::Backend::Sqlite => 1,
    };
    let queue = Arc::new(tokio::sync::Mutex::new(queue));
    let tasks: Vec<_> = (0..writers)
        .map(|_| tokio::spawn(writer(state.clone(), queue.clone(), stop.clone())))
        .collect();
    // Stopping: the HTTP server no longer takes reports; answer those the writers held back
    // and those still queued.
    let mut deferred = Vec::new();
    for task in tasks {
        deferred.extend(task.await.unwrap_or_default());
    }
    let mut queue = queue.lock().await;
    queue.close();
    while let Some(item) = queue.recv().await {
        deferred.push(item);
        if deferred.len() >= MAX_BATCH {
            deferred = write(&state, deferred).await;
        }
    }
    while !deferred.is_empty() {
        deferred = write(&state, deferred).await;
    }
}

/// One writer: takes what is queued (up to [`MAX_BATCH`]), writes it, again. Once the
/// controller stops, returns the reports it held back for a later batch.
async fn writer(
    state: Arc<AppState>,
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Queued>>>,
    mut stop: watch::Receiver<bool>,
) -> Vec<Queued> {
    let mut deferred: Vec<Queued> = Vec::new();
    loop {
        let mut batch = std::mem::take(&mut deferred);
        {
            let mut queue = queue.lock().await;
            if batch.is_empty() {
                tokio::select! {
                    biased;
                    next = queue.recv() => match next {
                        Some(item) => batch.push(item),
                        None => return batch,
                    },
                    _ = stop.changed() => return batch,
                }
            }
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
        }
        deferred = write(&state, batch).await;
        if *stop.borrow() {
            return deferred;
        }
    }
}

/// A report that passed its node's checks, ready to write.
struct Checked {
    queued: Queued,
    node: NodeRow,
}

/// Checks and writes one batch, answering each report. A node's second report in the batch is
/// returned, for the next one (its counter is checked against the first's).
async fn write(state: &AppState, batch: Vec<Queued>) -> Vec<Queued> {
    let mut seen = HashSet::new();
    let (batch, later): (Vec<Queued>, Vec<Queued>) =
        batch.into_iter().partition(|q| seen.insert(q.report.node_id.clone()));
    let batch_len = batch.len();
    let ids: Vec<&str> = batch.iter().map(|q| q.report.node_id.as_str()).collect();
    let mut nodes: HashMap<String, NodeRow> = match state.db.nodes_by_id(&ids).await {
        Ok(nodes) => nodes.into_iter().map(|n| (n.node_id.clone(), n)).collect(),
        Err(error) => {
            tracing::warn!(target: "ctl::api", %error, reports = batch_len, "report batch: database error");
            for queued in batch {
                let _ = queued.reply.send(Err(batch_failed()));
            }
            return later;
        }
    };
    let mut checked = Vec::new();
    for queued in batch {
        // Each node once per batch (`later` has the rest): its row moves to its report.
        let node = nodes.remove(&queued.report.node_id);
        match check(state, node, queued).await {
            Ok(ready) => checked.push(ready),
            Err((queued, error)) => {
                let _ = queued.reply.send(Err(error));
            }
        }
    }
    let updates: Vec<(&str, ReportUpdate<'_>)> = checked
        .iter()
        .map(|c| {
            let report = &c.queued.report;
            let update = ReportUpdate {
                counter: report.counter,
                sent_at: report.sent_at,
                measured_at: report.measured_at,
                enr: &report.enr,
                enr_seq: c.queued.enr_seq,
                services: &c.queued.services,
                shards: &report.shards,
                cluster_id: report.cluster_id,
                body: &c.queued.body,
            };
            (c.node.node_id.as_str(), update)
        })
        .collect();
    let written = state.db.accept_reports(&updates, state.config.reports_kept).await;
    drop(updates);
    state.metrics.observe_report_batch(checked.len());
    match written {
        Ok(accepted) => {
            for (ready, accepted) in checked.into_iter().zip(accepted) {
                let Queued { report, services, reply, .. } = ready.queued;
                let node = ready.node;
                let _ = reply.send(Ok(Written { accepted, node, report, services }));
            }
        }
        Err(error) => {
            tracing::warn!(target: "ctl::api", %error, reports = batch_len, "report batch: database error");
            for ready in checked {
                let _ = ready.queued.reply.send(Err(batch_failed()));
            }
        }
    }
    later
}

/// Every report's answer when its batch's database work failed (logged once for the batch).
fn batch_failed() -> AppError {
    AppError::Unavailable("database unavailable; try again".into())
}

/// A report's answer when the controller stops before its batch is written.
fn stopping() -> AppError {
    AppError::Unavailable("the controller is stopping; send it again".into())
}

/// The answer to a report from a node not enrolled under the key that signed it.
pub(crate) fn not_enrolled() -> AppError {
    AppError::Unauthorized(
        "no node enrolled under the key that signed this report: enrol first".into(),
    )
}

/// Audits a refusal, then gives the report back with `error(reason)`.
async fn refused(
    state: &AppState,
    queued: Queued,
    node: &NodeRow,
    reason: String,
    error: fn(String) -> AppError,
) -> Result<Checked, (Queued, AppError)> {
    if let Err(failed) = refuse(state, node, &reason, queued.report.counter).await {
        return Err((queued, failed));
    }
    Err((queued, error(reason)))
}

/// A report against its node's row: the key it is enrolled under, the record's seq, the
/// operator's ceiling, the size its record needs in the node's trees. Refusals of an
/// authenticated node are audited.
async fn check(
    state: &AppState,
    node: Option<NodeRow>,
    mut queued: Queued,
) -> Result<Checked, (Queued, AppError)> {
    // An unknown node and a key not enrolled for this node id get the same answer, so that
    // nobody learns which node ids are enrolled.
    let node = match node {
        Some(node) if node.public_key == queued.key => node,
        _ => return Err((queued, not_enrolled())),
    };
    // The same text as stored (nearly every report): verified when it was stored, nothing
    // to check again (a record's signature check is the costliest step of a report).
    queued.enr_seq = node.enr_seq;
    if queued.report.enr != node.enr {
        let record: NodeRecord = match queued.report.enr.parse() {
            Ok(record) => record,
            Err(error) => {
                return Err((queued, AppError::BadRequest(format!("invalid ENR: {error}"))));
            }
        };
        if record.node_id_hex() != node.node_id {
            let error = AppError::BadRequest("the report's ENR belongs to another node".into());
            return Err((queued, error));
        }
        queued.enr_seq = record.seq();
        // A record's content changes only with a higher seq: clients keep the highest seq
        // they saw, so a same-seq change would be a record nobody can tell from a forgery.
        let stored: Option<NodeRecord> = node.enr.parse().ok();
        if let Some(reason) = enr_seq_refusal(&node, stored.as_ref(), &record) {
            return refused(state, queued, &node, reason, AppError::Conflict).await;
        }
        // The same record signed again (a restarted node signs its unchanged record anew):
        // keep the stored text, so trees do not change for a new signature over the same
        // content.
        if stored.as_ref().is_some_and(|s| s.same_content(&record)) {
            queued.report.enr = node.enr.clone();
            match queued.report.to_stored() {
                Ok(body) => queued.body = body,
                Err(error) => return Err((queued, report_error(error))),
            }
        }
    }
    // The operator's ceiling: a report may say the node runs less, never more.
    if let Some(reason) = node.ceiling.exceeded_by(&queued.report.shards, queued.report.cluster_id)
    {
        return refused(state, queued, &node, reason, AppError::Forbidden).await;
    }
    // A new record too large for a tree the node belongs to could never be listed there. (A
    // stored record that stops fitting, because a tree's domain grew, is left out at build
    // time and its node is a warning: refusing its reports would only make it look dead.)
    if queued.report.enr != node.enr {
        let after = NodeRow {
            enr: queued.report.enr.clone(),
            services: queued.services.clone(),
            shards: queued.report.shards.clone(),
            cluster_id: queued.report.cluster_id,
            ..node.clone()
        };
        if let Some(reason) = state.expectations().oversized(&after) {
            return refused(state, queued, &node, reason, AppError::BadRequest).await;
        }
    }
    Ok(Checked { queued, node })
}

/// Whether an accepted report may change what trees list: its node's health would move, or its
/// record, roles, shards or cluster changed. Only then is the reconcile loop woken early; a
/// report that refreshes a passing node's figures waits for the next interval (waking a full
/// pass per report starved ingest at a thousand agents).
///
/// `node` is the row before the report, as the writer read it (without its last report).
pub(crate) fn may_change_membership(
    state: &AppState,
    node: &crate::db::nodes::NodeRow,
    report: &Report,
    services: &[String],
) -> bool {
    if node.enr != report.enr
        || node.services != services
        || node.shards != report.shards
        || node.cluster_id != report.cluster_id
    {
        return true;
    }
    // A late report (measured before the stored one) does not replace it: nothing it says
    // moves the node's health. Time alone moving it is the reconcile pass's to see.
    if report.measured_at < node.last_measured_at.unwrap_or(0) {
        return false;
    }
    let after = crate::db::nodes::NodeRow {
        last_measured_at: Some(report.measured_at),
        last_report: None,
        ..node.clone()
    };
    let expected = state.expectations();
    let now = state.db.now_ms();
    crate::health::evaluate_with(&after, &report.figures, &state.config.health, &expected, now).0
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
