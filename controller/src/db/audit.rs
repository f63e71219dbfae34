//! The append-only audit log: who created tokens, enrolled, signed, published, rotated keys.

use serde::Serialize;
use sqlx::Row;

use super::{Db, DbError};

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Position in the log.
    pub id: i64,
    /// When, Unix ms.
    pub at: i64,
    /// Who: `person:<account name>`, `agent:<node id>`, `controller`.
    pub actor: String,
    /// What, e.g. `token.create`, `tree.sign`.
    pub action: String,
    /// On what: a tree name, a node id.
    pub subject: String,
    /// Details (JSON object).
    pub detail: serde_json::Value,
}

impl Db {
    /// Appends an entry.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        detail: serde_json::Value,
    ) -> Result<(), DbError> {
        // Every audited action is a lifecycle event operators want in the log too (enrolments,
        // tokens, accounts, signatures, maintenance…); details never hold secrets.
        tracing::info!(target: "ctl::audit", %actor, %action, %subject, %detail, "audited");
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(self.now_ms())
        .bind(actor)
        .bind(action)
        .bind(subject)
        .bind(detail.to_string())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Entries after `after_id`, oldest first, at most `limit`.
    pub async fn audit_entries(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, DbError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, subject, detail FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        audit_rows(&rows)
    }

    /// The newest `limit` entries, newest first.
    pub async fn recent_audit_entries(&self, limit: i64) -> Result<Vec<AuditEntry>, DbError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, subject, detail FROM audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        audit_rows(&rows)
    }
}

fn audit_rows(rows: &[sqlx::any::AnyRow]) -> Result<Vec<AuditEntry>, DbError> {
    rows.iter()
        .map(|row| {
            let detail: String = row.try_get(5)?;
            Ok(AuditEntry {
                id: row.try_get(0)?,
                at: row.try_get(1)?,
                actor: row.try_get(2)?,
                action: row.try_get(3)?,
                subject: row.try_get(4)?,
                detail: super::from_json("audit_log.detail", &detail)?,
            })
        })
        .collect()
}
