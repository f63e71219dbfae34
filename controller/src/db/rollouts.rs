//! Rollouts as stored: the configuration, the pacing, and each node's step.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{Db, DbError, from_json, to_json};
use contract::desired::DesiredConfig;

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RolloutState {
    /// Nodes are still being taken through it.
    Running,
    /// Every node applied it and passed.
    Done,
    /// A node failed to apply it or did not pass in time; the nodes after it were left alone.
    Halted,
    /// An operator stopped it.
    Cancelled,
}

impl RolloutState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Halted => "halted",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => Self::Running,
            "done" => Self::Done,
            "halted" => Self::Halted,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// Where one node is in a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepState {
    /// Not started.
    Waiting,
    /// Its desired configuration is set; waiting for the agent to apply it and the node to pass.
    Applying,
    /// Applied and passing.
    Done,
    /// Refused by the agent, or not applied and passing before the deadline.
    Failed,
}

impl StepState {
    /// How pages print it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Applying => "applying",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

/// One node's step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// The node.
    pub node_id: String,
    /// Where it is.
    pub state: StepState,
    /// The desired-configuration version set for it.
    pub version: Option<u64>,
    /// When its configuration was set, Unix ms.
    pub started_at: Option<i64>,
    /// When its agent first reported the version applied.
    pub applied_at: Option<i64>,
}

/// A rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// Its id.
    pub id: String,
    /// Created, Unix ms.
    pub created_at: i64,
    /// By whom.
    pub created_by: String,
    /// What each node gets (its `version` is unused: every node numbers its own).
    pub config: DesiredConfig,
    /// Nodes applying at once.
    pub max_parallel: u32,
    /// How long a node must pass after applying before the next one starts.
    pub healthy_secs: u64,
    /// How long a node may take to apply and pass.
    pub deadline_secs: u64,
    /// Where it is.
    pub state: RolloutState,
    /// Why it halted.
    pub reason: Option<String>,
    /// One per node, in order.
    pub steps: Vec<Step>,
    /// Last change, Unix ms.
    pub updated_at: i64,
}

const COLUMNS: &str = "id, created_at, created_by, config, max_parallel, healthy_secs, deadline_secs, state, reason, steps, updated_at";

impl Db {
    /// Stores a new rollout.
    pub async fn insert_rollout(&self, rollout: &Rollout) -> Result<(), DbError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO rollouts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        )))
        .bind(&rollout.id)
        .bind(rollout.created_at)
        .bind(&rollout.created_by)
        .bind(to_json(&rollout.config))
        .bind(i64::from(rollout.max_parallel))
        .bind(rollout.healthy_secs as i64)
        .bind(rollout.deadline_secs as i64)
        .bind(rollout.state.as_str())
        .bind(&rollout.reason)
        .bind(to_json(&rollout.steps))
        .bind(rollout.updated_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Saves a rollout's state, reason and steps.
    pub async fn update_rollout(&self, rollout: &Rollout) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE rollouts SET state = $2, reason = $3, steps = $4, updated_at = $5 WHERE id = $1",
        )
        .bind(&rollout.id)
        .bind(rollout.state.as_str())
        .bind(&rollout.reason)
        .bind(to_json(&rollout.steps))
        .bind(rollout.updated_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// One rollout.
    pub async fn rollout(&self, id: &str) -> Result<Option<Rollout>, DbError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM rollouts WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(rollout_from_row).transpose()
    }

    /// The newest `limit` rollouts, newest first (`running_only`: those still running).
    pub async fn rollouts(&self, running_only: bool, limit: i64) -> Result<Vec<Rollout>, DbError> {
        let filter = if running_only { "WHERE state = 'running'" } else { "" };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM rollouts {filter} ORDER BY created_at DESC, id LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(rollout_from_row).collect()
    }
}

fn rollout_from_row(row: &sqlx::any::AnyRow) -> Result<Rollout, DbError> {
    let config: String = row.try_get(3)?;
    let state: String = row.try_get(7)?;
    let steps: String = row.try_get(9)?;
    Ok(Rollout {
        id: row.try_get(0)?,
        created_at: row.try_get(1)?,
        created_by: row.try_get(2)?,
        config: from_json("rollouts.config", &config)?,
        max_parallel: u32::try_from(row.try_get::<i64, _>(4)?).unwrap_or(1),
        healthy_secs: row.try_get::<i64, _>(5)?.max(0) as u64,
        deadline_secs: row.try_get::<i64, _>(6)?.max(0) as u64,
        state: RolloutState::parse(&state).ok_or_else(|| DbError::Corrupt {
            column: "rollouts.state",
            message: format!("unknown state {state:?}"),
        })?,
        reason: row.try_get(8)?,
        steps: from_json("rollouts.steps", &steps)?,
        updated_at: row.try_get(10)?,
    })
}
