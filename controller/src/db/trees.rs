//! Tree definitions and the versions built from them.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{Db, DbError, from_json, to_json};
use crate::policy::TreePolicy;

/// A tree definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeRow {
    /// The operator's name for it.
    pub name: String,
    /// Where it is published.
    pub domain: String,
    /// Who is listed.
    pub policy: TreePolicy,
    /// Who signs: `key:<name>` (a keystore the controller holds) or `offline`.
    pub signer: crate::tree_definition::Signer,
    /// The public key its URL carries, once known (base32 compressed key).
    pub public_key: Option<String>,
    /// Why the last build failed, if it did.
    pub last_error: Option<String>,
    /// Being replaced: published until then (Unix ms), then removed. Set by the API only.
    #[serde(default)]
    pub retire_at: Option<i64>,
}

/// Life of a tree version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionState {
    /// Built, waiting for an offline signature.
    Pending,
    /// Signed, not yet published.
    Signed,
    /// The version clients get.
    Published,
    /// Replaced by a newer one; its leaves stay served until `retire_after`.
    Superseded,
    /// No longer served.
    Retired,
    /// A pending version overtaken by a newer build before anyone signed it.
    Abandoned,
}

impl VersionState {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Signed => "signed",
            Self::Published => "published",
            Self::Superseded => "superseded",
            Self::Retired => "retired",
            Self::Abandoned => "abandoned",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "signed" => Self::Signed,
            "published" => Self::Published,
            "superseded" => Self::Superseded,
            "retired" => Self::Retired,
            "abandoned" => Self::Abandoned,
            _ => return None,
        })
    }
}

/// One built version of a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionRow {
    /// The tree.
    pub tree: String,
    /// Its sequence number.
    pub seq: u64,
    /// Where it is in its life.
    pub state: VersionState,
    /// The records, `enr:…`.
    pub enrs: Vec<String>,
    /// The links, `enrtree://…`.
    pub links: Vec<String>,
    /// The unsigned root content.
    pub root: String,
    /// The root signature (base64url), once signed.
    pub signature: Option<String>,
    /// Built, Unix ms.
    pub created_at: i64,
    /// Signed.
    pub signed_at: Option<i64>,
    /// Published.
    pub published_at: Option<i64>,
    /// Superseded versions: when their leaves may be deleted.
    pub retire_after: Option<i64>,
}

const VERSION_COLUMNS: &str = "tree, seq, state, enrs, links, root, signature, created_at, signed_at, published_at, retire_after";

impl Db {
    /// Creates or redefines a tree.
    pub async fn put_tree(&self, tree: &TreeRow) -> Result<(), DbError> {
        let now = self.now_ms();
        sqlx::query(
            "INSERT INTO trees (name, domain, policy, signer, public_key, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (name) DO UPDATE SET domain = excluded.domain, policy = excluded.policy, signer = excluded.signer, public_key = excluded.public_key, updated_at = excluded.updated_at, retire_at = NULL",
        )
        .bind(&tree.name)
        .bind(&tree.domain)
        .bind(to_json(&tree.policy))
        .bind(tree.signer.to_string())
        .bind(&tree.public_key)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// One tree.
    pub async fn tree(&self, name: &str) -> Result<Option<TreeRow>, DbError> {
        let row = sqlx::query(
            "SELECT name, domain, policy, signer, public_key, last_error, retire_at FROM trees WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(tree_from_row).transpose()
    }

    /// Every tree, by name.
    pub async fn trees(&self) -> Result<Vec<TreeRow>, DbError> {
        let rows = sqlx::query(
            "SELECT name, domain, policy, signer, public_key, last_error, retire_at FROM trees ORDER BY name",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(tree_from_row).collect()
    }

    /// Records why the last build failed (or clears it).
    pub async fn set_tree_error(&self, name: &str, error: Option<&str>) -> Result<(), DbError> {
        sqlx::query("UPDATE trees SET last_error = $2 WHERE name = $1")
            .bind(name)
            .bind(error)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Schedules (or with `None` cancels) the removal of a tree.
    pub async fn set_tree_retire_at(&self, name: &str, at: Option<i64>) -> Result<(), DbError> {
        sqlx::query("UPDATE trees SET retire_at = $2 WHERE name = $1")
            .bind(name)
            .bind(at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Marks every live version of a removed tree retired: nothing of it is served any more.
    pub async fn retire_all_versions(&self, tree: &str) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE tree_versions SET state = 'retired' WHERE tree = $1 AND state IN ('pending', 'signed', 'published', 'superseded')",
        )
        .bind(tree)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Sets the public key of a tree's URL (first signature of an offline tree).
    pub async fn set_tree_public_key(&self, name: &str, key: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE trees SET public_key = $2 WHERE name = $1")
            .bind(name)
            .bind(key)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Versions of a tree, newest first, at most `limit`.
    pub async fn versions(&self, tree: &str, limit: i64) -> Result<Vec<VersionRow>, DbError> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM tree_versions WHERE tree = $1 ORDER BY seq DESC LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tree)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(version_from_row).collect()
    }

    /// Versions of a tree in `state`, newest first.
    pub async fn versions_in(
        &self,
        tree: &str,
        state: VersionState,
    ) -> Result<Vec<VersionRow>, DbError> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM tree_versions WHERE tree = $1 AND state = $2 ORDER BY seq DESC"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tree)
            .bind(state.as_str())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(version_from_row).collect()
    }

    /// Stores a newly built version; any older pending version is abandoned.
    pub async fn insert_version(&self, version: &VersionRow) -> Result<(), DbError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE tree_versions SET state = 'abandoned' WHERE tree = $1 AND state = 'pending'",
        )
        .bind(&version.tree)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO tree_versions (tree, seq, state, enrs, links, root, signature, created_at, signed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&version.tree)
        .bind(version.seq as i64)
        .bind(version.state.as_str())
        .bind(to_json(&version.enrs))
        .bind(to_json(&version.links))
        .bind(&version.root)
        .bind(&version.signature)
        .bind(version.created_at)
        .bind(version.signed_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Abandons `seq` if it is still pending (nobody need sign it any more). Returns whether it
    /// was.
    pub async fn abandon_pending(&self, tree: &str, seq: u64) -> Result<bool, DbError> {
        let result = sqlx::query(
            "UPDATE tree_versions SET state = 'abandoned' WHERE tree = $1 AND seq = $2 AND state = 'pending'",
        )
        .bind(tree)
        .bind(seq as i64)
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Attaches a verified signature to a pending version. Returns whether it was pending.
    pub async fn sign_version(
        &self,
        tree: &str,
        seq: u64,
        signature: &str,
    ) -> Result<bool, DbError> {
        let result = sqlx::query(
            "UPDATE tree_versions SET state = 'signed', signature = $3, signed_at = $4 WHERE tree = $1 AND seq = $2 AND state = 'pending'",
        )
        .bind(tree)
        .bind(seq as i64)
        .bind(signature)
        .bind(self.now_ms())
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Makes `seq` the published version; the one it replaces is superseded, its leaves kept
    /// until `retire_after`.
    pub async fn mark_published(
        &self,
        tree: &str,
        seq: u64,
        retire_after: i64,
    ) -> Result<(), DbError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE tree_versions SET state = 'superseded', retire_after = $3 WHERE tree = $1 AND state = 'published' AND seq <> $2",
        )
        .bind(tree)
        .bind(seq as i64)
        .bind(retire_after)
        .execute(&mut *tx)
        .await?;
        // Signed versions older than this one will never be published.
        sqlx::query(
            "UPDATE tree_versions SET state = 'abandoned' WHERE tree = $1 AND state = 'signed' AND seq < $2",
        )
        .bind(tree)
        .bind(seq as i64)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE tree_versions SET state = 'published', published_at = $3 WHERE tree = $1 AND seq = $2",
        )
        .bind(tree)
        .bind(seq as i64)
        .bind(self.now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks a superseded version retired: its leaves are gone.
    pub async fn mark_retired(&self, tree: &str, seq: u64) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE tree_versions SET state = 'retired' WHERE tree = $1 AND seq = $2 AND state = 'superseded'",
        )
        .bind(tree)
        .bind(seq as i64)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

fn tree_from_row(row: &sqlx::any::AnyRow) -> Result<TreeRow, DbError> {
    let policy: String = row.try_get(2)?;
    Ok(TreeRow {
        name: row.try_get(0)?,
        domain: row.try_get(1)?,
        policy: from_json("trees.policy", &policy)?,
        signer: {
            let text: String = row.try_get(3)?;
            text.parse().map_err(|message| DbError::Corrupt { column: "trees.signer", message })?
        },
        public_key: row.try_get(4)?,
        last_error: row.try_get(5)?,
        retire_at: row.try_get(6)?,
    })
}

fn version_from_row(row: &sqlx::any::AnyRow) -> Result<VersionRow, DbError> {
    let state: String = row.try_get(2)?;
    let enrs: String = row.try_get(3)?;
    let links: String = row.try_get(4)?;
    Ok(VersionRow {
        tree: row.try_get(0)?,
        seq: row.try_get::<i64, _>(1)? as u64,
        state: VersionState::parse(&state).ok_or_else(|| DbError::Corrupt {
            column: "tree_versions.state",
            message: format!("unknown state {state:?}"),
        })?,
        enrs: from_json("tree_versions.enrs", &enrs)?,
        links: from_json("tree_versions.links", &links)?,
        root: row.try_get(5)?,
        signature: row.try_get(6)?,
        created_at: row.try_get(7)?,
        signed_at: row.try_get(8)?,
        published_at: row.try_get(9)?,
        retire_after: row.try_get(10)?,
    })
}
