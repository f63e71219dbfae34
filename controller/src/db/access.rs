//! People's access tokens ([`crate::access`]): created by an admin, shown once, kept as their
//! SHA-256, revocable.

use serde::Serialize;
use sqlx::Row;

use super::{Db, DbError, tokens::token_id};
use crate::access::{Caller, Role};

/// How often a token's `lastUsedAt` is written at most: a dashboard refreshing every 15 s
/// should not write to the database each time.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

/// An access token as listed (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessTokenInfo {
    /// The account's name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Created, Unix ms.
    pub created_at: i64,
    /// By whom (audit actor).
    pub created_by: String,
    /// Last authenticated request, Unix ms (to the minute).
    pub last_used_at: Option<i64>,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// By whom.
    pub revoked_by: Option<String>,
}

/// Why a token could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateAccessError {
    /// An active token has the name.
    #[error("an access token named {0:?} exists; revoke it first")]
    Exists(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The columns [`from_row`] reads, as a literal for `concat!` (queries stay static strings).
macro_rules! columns {
    () => {
        "name, role, created_at, created_by, last_used_at, revoked_at, revoked_by, token_hash"
    };
}

impl Db {
    /// Stores `token` for `name` with `role`. A revoked token's name may be given out again;
    /// an active one's may not.
    pub async fn create_access_token(
        &self,
        name: &str,
        role: Role,
        token: &str,
        created_by: &str,
    ) -> Result<AccessTokenInfo, CreateAccessError> {
        let now = self.now_ms();
        let result = sqlx::query(
            "INSERT INTO access_tokens (name, role, token_hash, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name) DO UPDATE SET role = $2, token_hash = $3, created_at = $4, \
             created_by = $5, last_used_at = NULL, revoked_at = NULL, revoked_by = NULL \
             WHERE access_tokens.revoked_at IS NOT NULL",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(token_id(token))
        .bind(now)
        .bind(created_by)
        .execute(self.pool())
        .await
        .map_err(DbError::from)?;
        if result.rows_affected() == 0 {
            return Err(CreateAccessError::Exists(name.to_owned()));
        }
        Ok(AccessTokenInfo {
            name: name.to_owned(),
            role,
            created_at: now,
            created_by: created_by.to_owned(),
            last_used_at: None,
            revoked_at: None,
            revoked_by: None,
        })
    }

    /// Every access token, by name.
    pub async fn access_tokens(&self) -> Result<Vec<AccessTokenInfo>, DbError> {
        let rows = sqlx::query(concat!("SELECT ", columns!(), " FROM access_tokens ORDER BY name"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|row| from_row(row).map(|(info, _)| info)).collect()
    }

    /// Revokes `name`'s token; false when there is no active one.
    pub async fn revoke_access_token(&self, name: &str, by: &str) -> Result<bool, DbError> {
        let result = sqlx::query(
            "UPDATE access_tokens SET revoked_at = $1, revoked_by = $2 \
             WHERE name = $3 AND revoked_at IS NULL",
        )
        .bind(self.now_ms())
        .bind(by)
        .bind(name)
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// The account an active `token` belongs to, noting the use (to the minute).
    pub async fn authenticate_access_token(&self, token: &str) -> Result<Option<Caller>, DbError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM access_tokens WHERE token_hash = $1 AND revoked_at IS NULL"
        ))
        .bind(token_id(token))
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let (info, hash) = from_row(&row)?;
        let now = self.now_ms();
        if info.last_used_at.is_none_or(|at| now - at >= LAST_USED_RESOLUTION_MS) {
            sqlx::query("UPDATE access_tokens SET last_used_at = $1 WHERE token_hash = $2")
                .bind(now)
                .bind(hash)
                .execute(self.pool())
                .await?;
        }
        Ok(Some(Caller { name: info.name, role: info.role }))
    }
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<(AccessTokenInfo, String), DbError> {
    let role: String = row.try_get(1)?;
    let role = role.parse().map_err(|e: crate::access::UnknownRole| DbError::Corrupt {
        column: "access_tokens.role",
        message: e.to_string(),
    })?;
    Ok((
        AccessTokenInfo {
            name: row.try_get(0)?,
            role,
            created_at: row.try_get(2)?,
            created_by: row.try_get(3)?,
            last_used_at: row.try_get(4)?,
            revoked_at: row.try_get(5)?,
            revoked_by: row.try_get(6)?,
        },
        row.try_get(7)?,
    ))
}
