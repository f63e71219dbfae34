//! The fleet registry: enrolled nodes, their newest report, ENR history, health and
//! reachability.

use serde::Serialize;
use sqlx::Row;

use super::{Db, DbError, from_json, to_json};
use crate::health::Health;

/// A registered node.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRow {
    /// ENR node id, hex.
    pub node_id: String,
    /// Compressed secp256k1 public key, hex: what reports must be signed with.
    pub public_key: String,
    /// Operator's label.
    pub label: String,
    /// Roles operators gave it (boot, store, relay, …): from its enrolment token or the API,
    /// never from a report.
    pub roles: Vec<String>,
    /// Services its newest report says it runs (relay, store, filter, lightpush,
    /// peer-exchange).
    pub services: Vec<String>,
    /// The shards and cluster it may serve at most (from its enrolment token).
    pub ceiling: crate::membership::Ceiling,
    /// Relay shards.
    pub shards: Vec<u16>,
    /// Cluster id.
    pub cluster_id: Option<u16>,
    /// Its newest ENR.
    pub enr: String,
    /// That ENR's sequence number.
    pub enr_seq: u64,
    /// Enrolled, Unix ms.
    pub enrolled_at: i64,
    /// Highest report counter accepted.
    pub last_counter: u64,
    /// Sending time of the newest report.
    pub last_sent_at: Option<i64>,
    /// Measurement time of the newest report.
    pub last_measured_at: Option<i64>,
    /// The newest report's body.
    pub last_report: Option<serde_json::Value>,
    /// Health as last evaluated.
    pub health: Health,
    /// Why.
    pub health_reason: String,
    /// Passing without a break since, Unix ms.
    pub passing_since: Option<i64>,
    /// Whether the controller could dial the advertised address (`None`: not checked yet).
    pub reachable: Option<bool>,
    /// When that was checked.
    pub reachable_at: Option<i64>,
    /// The configuration operators want it to run.
    pub desired_config: Option<contract::desired::DesiredConfig>,
    /// Set while an operator works on it: never listed in a tree, no alerts.
    pub maintenance: Option<Maintenance>,
}

impl NodeRow {
    /// A row with nothing reported yet, for unit tests.
    #[cfg(test)]
    pub(crate) fn example(node_id: &str) -> Self {
        Self {
            node_id: node_id.into(),
            public_key: String::new(),
            label: "n".into(),
            roles: Vec::new(),
            services: Vec::new(),
            ceiling: crate::membership::Ceiling::default(),
            shards: Vec::new(),
            cluster_id: None,
            enr: String::new(),
            enr_seq: 1,
            enrolled_at: 0,
            last_counter: 0,
            last_sent_at: None,
            last_measured_at: None,
            last_report: None,
            health: Health::Passing,
            health_reason: String::new(),
            passing_since: None,
            reachable: None,
            reachable_at: None,
            desired_config: None,
            maintenance: None,
        }
    }

    /// The figures of the newest report (`None` before the first report, or if the stored
    /// body no longer parses).
    pub fn figures(&self) -> Option<contract::report::Figures> {
        let figures = self.last_report.as_ref()?.get("figures")?;
        serde_json::from_value(figures.clone()).ok()
    }
}

/// A new health state for a node.
#[derive(Debug, Clone, Copy)]
pub struct HealthChange<'a> {
    /// The node.
    pub node_id: &'a str,
    /// Its health.
    pub health: Health,
    /// Why.
    pub reason: &'a str,
    /// Passing without a break since.
    pub passing_since: Option<i64>,
}

/// A node's maintenance: who put it there, why and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Maintenance {
    /// Why (shown on the dashboard and in the audit log).
    pub reason: String,
    /// Who.
    pub by: String,
    /// Since, Unix ms.
    pub since: i64,
}

/// `$first, …`: `count` placeholders numbered from `first`.
fn numbered(first: usize, count: usize) -> String {
    (first..first + count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// `($1, $2, …), (…)`: `rows` rows of `columns` placeholders, numbered from 1.
fn placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| format!("({})", numbered(row * columns + 1, columns)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a report changes in the registry.
#[derive(Debug, Clone)]
pub struct ReportUpdate<'a> {
    /// Its counter.
    pub counter: u64,
    /// When it was sent.
    pub sent_at: i64,
    /// When it was measured.
    pub measured_at: i64,
    /// The ENR it carries, and its seq.
    pub enr: &'a str,
    /// The ENR's sequence number.
    pub enr_seq: u64,
    /// Services it runs.
    pub services: &'a [String],
    /// Shards.
    pub shards: &'a [u16],
    /// Cluster.
    pub cluster_id: Option<u16>,
    /// The report as received.
    pub body: &'a str,
}

/// What operators decide about a node at enrolment: its token's label, roles and ceiling.
#[derive(Debug, Clone, Copy)]
pub struct Membership<'a> {
    /// Label.
    pub label: &'a str,
    /// Roles.
    pub roles: &'a [String],
    /// Shards and cluster at most.
    pub ceiling: &'a crate::membership::Ceiling,
}

const NODE_COLUMNS: &str = "node_id, public_key, label, roles, shards, cluster_id, enr, enr_seq, enrolled_at, last_counter, last_sent_at, last_measured_at, last_report, health, health_reason, passing_since, reachable, reachable_at, desired_config, maintenance, services, ceiling";

impl Db {
    /// Registers (or re-enrols) a node under its key.
    pub async fn enrol_node(
        &self,
        node_id: &str,
        public_key: &str,
        membership: &Membership<'_>,
        enr: &str,
        enr_seq: u64,
    ) -> Result<(), DbError> {
        let Membership { label, roles, ceiling } = *membership;
        let now = self.now_ms();
        sqlx::query(
            "INSERT INTO nodes (node_id, public_key, label, roles, shards, enr, enr_seq, enrolled_at, last_counter, health, health_reason, ceiling) \
             VALUES ($1, $2, $3, $4, '[]', $5, $6, $7, 0, 'critical', 'no report yet', $8) \
             ON CONFLICT (node_id) DO UPDATE SET label = excluded.label, roles = excluded.roles, enrolled_at = excluded.enrolled_at, ceiling = excluded.ceiling",
        )
        .bind(node_id)
        .bind(public_key)
        .bind(label)
        .bind(to_json(&roles))
        .bind(enr)
        .bind(enr_seq as i64)
        .bind(now)
        .bind(to_json(ceiling))
        .execute(self.pool())
        .await?;
        self.remember_enr(node_id, enr_seq, enr, now).await
    }

    async fn remember_enr(
        &self,
        node_id: &str,
        seq: u64,
        enr: &str,
        now: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO enr_history (node_id, enr_seq, enr, first_seen) VALUES ($1, $2, $3, $4) ON CONFLICT (node_id, enr_seq) DO NOTHING",
        )
        .bind(node_id)
        .bind(seq as i64)
        .bind(enr)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records verified reports, many nodes' in one transaction (group commit): one statement
    /// each to update the nodes, add the reports, trim each node's kept reports to `keep` and
    /// note new records, whatever the batch's size. A node appears at most once per batch.
    /// Returns, per report, whether it was accepted: `false` (and nothing changed for it) when
    /// its counter is not above the last accepted one, a replay. A newer record (higher seq)
    /// makes the node's reachability unknown again until the new addresses are probed. The
    /// newest report by measurement time stays the node's current state, so a backlog
    /// delivered late does not overwrite fresher data.
    pub async fn accept_reports(
        &self,
        batch: &[(&str, ReportUpdate<'_>)],
        keep: i64,
    ) -> Result<Vec<bool>, DbError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.now_ms();
        let mut tx = self.pool().begin().await?;
        if self.backend() == node::sql::Backend::Postgres {
            // The batch's rows locked in node-id order before any is written, as the reconcile
            // pass's health updates lock them: concurrent writers wait, never deadlock. (SQLite
            // has one writer at a time.)
            let sql = format!(
                "SELECT node_id FROM nodes WHERE node_id IN ({}) ORDER BY node_id FOR UPDATE",
                numbered(1, batch.len())
            );
            let mut lock = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (node_id, _) in batch {
                lock = lock.bind(*node_id);
            }
            lock.fetch_all(&mut *tx).await?;
        }
        // The batch as a table both backends read the same way: a CTE over VALUES, its
        // columns prefixed so nothing is ambiguous beside the nodes table's own.
        let rows: Vec<String> = (0..batch.len())
            .map(|i| {
                let p = |k: usize| format!("${}", i * 10 + k);
                format!(
                    "({}, CAST({} AS BIGINT), CAST({} AS BIGINT), CAST({} AS BIGINT), {}, {}, CAST({} AS BIGINT), {}, {}, CAST({} AS BIGINT))",
                    p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(8), p(9), p(10)
                )
            })
            .collect();
        let newer = "v_measured >= COALESCE(last_measured_at, 0)";
        let sql = format!(
            "WITH v (v_node, v_counter, v_sent, v_measured, v_body, v_enr, v_seq, v_services, v_shards, v_cluster) AS (VALUES {}) \
             UPDATE nodes SET last_counter = v_counter, last_sent_at = v_sent, \
             last_measured_at = CASE WHEN {newer} THEN v_measured ELSE last_measured_at END, \
             last_report = CASE WHEN {newer} THEN v_body ELSE last_report END, \
             enr = CASE WHEN {newer} AND v_seq >= enr_seq THEN v_enr ELSE enr END, \
             reachable = CASE WHEN {newer} AND v_seq > enr_seq THEN NULL ELSE reachable END, \
             reachable_at = CASE WHEN {newer} AND v_seq > enr_seq THEN NULL ELSE reachable_at END, \
             enr_seq = CASE WHEN {newer} AND v_seq >= enr_seq THEN v_seq ELSE enr_seq END, \
             services = CASE WHEN {newer} THEN v_services ELSE services END, \
             shards = CASE WHEN {newer} THEN v_shards ELSE shards END, \
             cluster_id = CASE WHEN {newer} THEN v_cluster ELSE cluster_id END \
             FROM v WHERE node_id = v_node AND last_counter < v_counter RETURNING node_id",
            rows.join(", ")
        );
        let mut update = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (node_id, report) in batch {
            update = update
                .bind(*node_id)
                .bind(report.counter as i64)
                .bind(report.sent_at)
                .bind(report.measured_at)
                .bind(report.body)
                .bind(report.enr)
                .bind(report.enr_seq as i64)
                .bind(to_json(&report.services))
                .bind(to_json(&report.shards))
                .bind(report.cluster_id.map(i64::from));
        }
        let updated: std::collections::HashSet<String> = update
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
        let accepted: Vec<bool> = batch.iter().map(|(id, _)| updated.contains(*id)).collect();
        let kept: Vec<&(&str, ReportUpdate<'_>)> =
            batch.iter().zip(&accepted).filter(|(_, ok)| **ok).map(|(item, _)| item).collect();
        if kept.is_empty() {
            tx.commit().await?;
            return Ok(accepted);
        }
        let values = placeholders(kept.len(), 6);
        let sql = format!(
            "INSERT INTO reports (node_id, counter, sent_at, measured_at, received_at, body) VALUES {values}"
        );
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (node_id, report) in &kept {
            insert = insert
                .bind(*node_id)
                .bind(report.counter as i64)
                .bind(report.sent_at)
                .bind(report.measured_at)
                .bind(now)
                .bind(report.body);
        }
        insert.execute(&mut *tx).await?;
        // Each node keeps its `keep` newest reports: the older ones of the batch's nodes go.
        let sql = format!(
            "DELETE FROM reports WHERE (node_id, counter) IN (SELECT node_id, counter FROM (SELECT node_id, counter, ROW_NUMBER() OVER (PARTITION BY node_id ORDER BY counter DESC) AS newer FROM reports WHERE node_id IN ({})) ranked WHERE newer > ${})",
            numbered(1, kept.len()),
            kept.len() + 1
        );
        let mut trim = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (node_id, _) in &kept {
            trim = trim.bind(*node_id);
        }
        trim.bind(keep).execute(&mut *tx).await?;
        // Every record a node announced, once per seq.
        let values = placeholders(kept.len(), 4);
        let sql = format!(
            "INSERT INTO enr_history (node_id, enr_seq, enr, first_seen) VALUES {values} ON CONFLICT (node_id, enr_seq) DO NOTHING"
        );
        let mut history = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (node_id, report) in &kept {
            history = history.bind(*node_id).bind(report.enr_seq as i64).bind(report.enr).bind(now);
        }
        history.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(accepted)
    }

    /// One node.
    pub async fn node(&self, node_id: &str) -> Result<Option<NodeRow>, DbError> {
        let sql = format!("SELECT {NODE_COLUMNS} FROM nodes WHERE node_id = $1");
        let row =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(node_id).fetch_optional(self.pool()).await?;
        row.as_ref().map(node_from_row).transpose()
    }

    /// The nodes among `ids` (one statement, any order), without their last report
    /// (`last_report` is `None`): what the report writer needs of each, without reading and
    /// parsing a stored report per node that the new report replaces anyway.
    pub async fn nodes_by_id(&self, ids: &[&str]) -> Result<Vec<NodeRow>, DbError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let columns = NODE_COLUMNS.replace(" last_report,", " CAST(NULL AS TEXT) AS last_report,");
        let sql =
            format!("SELECT {columns} FROM nodes WHERE node_id IN ({})", numbered(1, ids.len()));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter().map(node_from_row).collect()
    }

    /// Every node, by node id.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>, DbError> {
        let sql = format!("SELECT {NODE_COLUMNS} FROM nodes ORDER BY node_id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(self.pool()).await?;
        rows.iter().map(node_from_row).collect()
    }

    /// The ENRs a node has announced, oldest first: `(seq, enr, first seen)`.
    pub async fn enr_history(&self, node_id: &str) -> Result<Vec<(u64, String, i64)>, DbError> {
        let rows = sqlx::query(
            "SELECT enr_seq, enr, first_seen FROM enr_history WHERE node_id = $1 ORDER BY enr_seq",
        )
        .bind(node_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<i64, _>(0)? as u64, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// The node's kept reports, oldest first: when each was measured and received, and its
    /// figures (a body that no longer parses is skipped).
    pub async fn report_history(&self, node_id: &str) -> Result<Vec<ReportPoint>, DbError> {
        let rows = sqlx::query(
            "SELECT measured_at, received_at, body FROM reports WHERE node_id = $1 ORDER BY counter",
        )
        .bind(node_id)
        .fetch_all(self.pool())
        .await?;
        let mut points = Vec::with_capacity(rows.len());
        for row in &rows {
            let body: String = row.try_get(2)?;
            let Ok(report) = serde_json::from_str::<contract::report::Report>(&body) else {
                continue;
            };
            points.push(ReportPoint {
                measured_at: row.try_get(0)?,
                received_at: row.try_get(1)?,
                figures: report.figures,
            });
        }
        Ok(points)
    }

    /// Stores one sample of passing nodes per `(cluster, shard)` at `now`, unless the newest
    /// sample is younger than `every_ms`; drops samples older than `keep_ms`. Whether it stored.
    pub async fn sample_shards(
        &self,
        now: i64,
        samples: &[ShardSample],
        every_ms: i64,
        keep_ms: i64,
    ) -> Result<bool, DbError> {
        let mut tx = self.pool().begin().await?;
        let newest: Option<i64> = sqlx::query("SELECT MAX(taken_at) FROM shard_samples")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if newest.is_some_and(|at| now - at < every_ms) {
            return Ok(false);
        }
        for sample in samples {
            sqlx::query(
                "INSERT INTO shard_samples (taken_at, cluster_id, shard, passing) VALUES ($1, $2, $3, $4)",
            )
            .bind(now)
            .bind(sample.cluster_id.map_or(-1, i64::from))
            .bind(i64::from(sample.shard))
            .bind(sample.passing as i64)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM shard_samples WHERE taken_at < $1")
            .bind(now - keep_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Shard samples taken at or after `since`, oldest first.
    pub async fn shard_samples(&self, since: i64) -> Result<Vec<(i64, ShardSample)>, DbError> {
        let rows = sqlx::query(
            "SELECT taken_at, cluster_id, shard, passing FROM shard_samples WHERE taken_at >= $1 ORDER BY taken_at, cluster_id, shard",
        )
        .bind(since)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let cluster: i64 = row.try_get(1)?;
                Ok((
                    row.try_get(0)?,
                    ShardSample {
                        cluster_id: u16::try_from(cluster).ok(),
                        shard: u16::try_from(row.try_get::<i64, _>(2)?).unwrap_or(u16::MAX),
                        passing: usize::try_from(row.try_get::<i64, _>(3)?).unwrap_or(0),
                    },
                ))
            })
            .collect()
    }

    /// Stores several health changes in one transaction (a pass after a restart may change
    /// every node: one commit, not one per node).
    pub async fn set_health_of(&self, changes: &[HealthChange<'_>]) -> Result<(), DbError> {
        // Rows locked in node-id order, as the report writer locks them: never a deadlock.
        let mut changes: Vec<&HealthChange<'_>> = changes.iter().collect();
        changes.sort_by(|a, b| a.node_id.cmp(b.node_id));
        let mut tx = self.pool().begin().await?;
        for change in changes {
            sqlx::query(
                "UPDATE nodes SET health = $2, health_reason = $3, passing_since = $4 WHERE node_id = $1",
            )
            .bind(change.node_id)
            .bind(change.health.as_str())
            .bind(change.reason)
            .bind(change.passing_since)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets the configuration a node should run; its version is one above the previous
    /// one's. Returns the stored configuration, `None` for an unknown node.
    pub async fn set_desired_config(
        &self,
        node_id: &str,
        mut config: contract::desired::DesiredConfig,
    ) -> Result<Option<contract::desired::DesiredConfig>, DbError> {
        let mut tx = self.pool().begin().await?;
        let current: Option<Option<String>> =
            sqlx::query_scalar("SELECT desired_config FROM nodes WHERE node_id = $1")
                .bind(node_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(current) = current else { return Ok(None) };
        let previous: Option<contract::desired::DesiredConfig> =
            current.map(|c| from_json("nodes.desired_config", &c)).transpose()?;
        config.version = previous.map_or(1, |p| p.version + 1);
        sqlx::query("UPDATE nodes SET desired_config = $2 WHERE node_id = $1")
            .bind(node_id)
            .bind(to_json(&config))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(config))
    }

    /// Starts (`Some`) or ends (`None`) a node's maintenance; `false` when the node is unknown.
    pub async fn set_maintenance(
        &self,
        node_id: &str,
        maintenance: Option<&Maintenance>,
    ) -> Result<bool, DbError> {
        let done = sqlx::query("UPDATE nodes SET maintenance = $2 WHERE node_id = $1")
            .bind(node_id)
            .bind(maintenance.map(to_json))
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Sets what operators decide: roles and label. `false` when there is no such node.
    pub async fn set_membership(
        &self,
        node_id: &str,
        roles: &[String],
        label: &str,
    ) -> Result<bool, DbError> {
        let done = sqlx::query("UPDATE nodes SET roles = $2, label = $3 WHERE node_id = $1")
            .bind(node_id)
            .bind(to_json(&roles))
            .bind(label)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes a node with its reports and record history, in one transaction.
    pub async fn delete_node(&self, node_id: &str) -> Result<(), DbError> {
        let mut tx = self.pool().begin().await?;
        for sql in [
            "DELETE FROM reports WHERE node_id = $1",
            "DELETE FROM enr_history WHERE node_id = $1",
            "DELETE FROM nodes WHERE node_id = $1",
        ] {
            sqlx::query(sql).bind(node_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores the outcome of a reachability check of the record with `enr_seq`; a newer
    /// record that arrived while the probe ran stays unknown (it was not what was probed).
    pub async fn set_reachable(
        &self,
        node_id: &str,
        enr_seq: u64,
        reachable: bool,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE nodes SET reachable = $2, reachable_at = $3 WHERE node_id = $1 AND enr_seq = $4",
        )
        .bind(node_id)
        .bind(i64::from(reachable))
        .bind(self.now_ms())
        .bind(enr_seq as i64)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

fn node_from_row(row: &sqlx::any::AnyRow) -> Result<NodeRow, DbError> {
    let roles: String = row.try_get(3)?;
    let shards: String = row.try_get(4)?;
    let cluster: Option<i64> = row.try_get(5)?;
    let report: Option<String> = row.try_get(12)?;
    let health: String = row.try_get(13)?;
    let reachable: Option<i64> = row.try_get(16)?;
    let desired: Option<String> = row.try_get(18)?;
    let maintenance: Option<String> = row.try_get(19)?;
    let services: String = row.try_get(20)?;
    let ceiling: String = row.try_get(21)?;
    Ok(NodeRow {
        services: from_json("nodes.services", &services)?,
        ceiling: from_json("nodes.ceiling", &ceiling)?,
        node_id: row.try_get(0)?,
        public_key: row.try_get(1)?,
        label: row.try_get(2)?,
        roles: from_json("nodes.roles", &roles)?,
        shards: from_json("nodes.shards", &shards)?,
        cluster_id: cluster.and_then(|c| u16::try_from(c).ok()),
        enr: row.try_get(6)?,
        enr_seq: row.try_get::<i64, _>(7)? as u64,
        enrolled_at: row.try_get(8)?,
        last_counter: row.try_get::<i64, _>(9)? as u64,
        last_sent_at: row.try_get(10)?,
        last_measured_at: row.try_get(11)?,
        last_report: report.map(|r| from_json("nodes.last_report", &r)).transpose()?,
        health: health.parse().map_err(|_| DbError::Corrupt {
            column: "nodes.health",
            message: format!("unknown state {health:?}"),
        })?,
        health_reason: row.try_get(14)?,
        passing_since: row.try_get(15)?,
        reachable: reachable.map(|r| r != 0),
        reachable_at: row.try_get(17)?,
        desired_config: desired.map(|d| from_json("nodes.desired_config", &d)).transpose()?,
        maintenance: maintenance.map(|m| from_json("nodes.maintenance", &m)).transpose()?,
    })
}

/// One kept report, for the dashboard's pictures.
#[derive(Debug, Clone)]
pub struct ReportPoint {
    /// When the agent measured it, Unix ms.
    pub measured_at: i64,
    /// When the controller accepted it, Unix ms.
    pub received_at: i64,
    /// Its figures.
    pub figures: contract::report::Figures,
}

/// Passing nodes on one shard at one time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSample {
    /// The cluster, when the nodes said.
    pub cluster_id: Option<u16>,
    /// The shard.
    pub shard: u16,
    /// Passing nodes serving it.
    pub passing: usize,
}

impl ShardSample {
    /// One sample per `(cluster, shard)` any node serves, counting its passing nodes (a shard
    /// served only by failing nodes counts 0: that is the point of the picture).
    pub fn of(nodes: &[NodeRow]) -> Vec<Self> {
        let mut counts: std::collections::BTreeMap<(Option<u16>, u16), usize> =
            std::collections::BTreeMap::new();
        for node in nodes {
            for shard in &node.shards {
                *counts.entry((node.cluster_id, *shard)).or_default() +=
                    usize::from(node.health == Health::Passing);
            }
        }
        counts
            .into_iter()
            .map(|((cluster_id, shard), passing)| Self { cluster_id, shard, passing })
            .collect()
    }
}
