//! One-time enrolment tokens. The token itself is shown once, to the operator who creates it;
//! only its SHA-256 is stored.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{Db, DbError, from_json, to_json};

/// A token as listed (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    /// SHA-256 of the token, hex: its public identifier.
    pub id: String,
    /// What it is for.
    pub label: String,
    /// Roles the enrolled node gets.
    pub roles: Vec<String>,
    /// Shards and cluster it may serve at most.
    pub ceiling: crate::membership::Ceiling,
    /// Created, Unix ms.
    pub created_at: i64,
    /// By whom.
    pub created_by: String,
    /// Expiry, Unix ms.
    pub expires_at: i64,
    /// When it was redeemed.
    pub used_at: Option<i64>,
    /// By which node.
    pub node_id: Option<String>,
    /// When it was revoked (never redeemable after).
    pub revoked_at: Option<i64>,
    /// By whom.
    pub revoked_by: Option<String>,
}

/// The outcome of redeeming a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeem {
    /// Redeemed now, by this call.
    Ok(Box<TokenInfo>),
    /// No such token.
    Unknown,
    /// Used before.
    Used,
    /// Past its expiry.
    Expired,
    /// Revoked by an operator.
    Revoked,
}

/// The outcome of revoking a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoke {
    /// Revoked now.
    Ok,
    /// No such token.
    Unknown,
    /// Redeemed already: revoke the node instead.
    Used,
    /// Revoked before.
    AlreadyRevoked,
}

/// The public identifier of a token.
pub fn token_id(token: &str) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(token.as_bytes()))
}

impl Db {
    /// Stores a new token (by hash).
    pub async fn create_token(
        &self,
        token: &str,
        label: &str,
        roles: &[String],
        ceiling: &crate::membership::Ceiling,
        created_by: &str,
        expires_at: i64,
    ) -> Result<TokenInfo, DbError> {
        let info = TokenInfo {
            id: token_id(token),
            label: label.to_owned(),
            roles: roles.to_vec(),
            ceiling: ceiling.clone(),
            created_at: self.now_ms(),
            created_by: created_by.to_owned(),
            expires_at,
            used_at: None,
            node_id: None,
            revoked_at: None,
            revoked_by: None,
        };
        sqlx::query(
            "INSERT INTO enrolment_tokens (token_hash, label, roles, created_at, created_by, expires_at, ceiling) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&info.id)
        .bind(&info.label)
        .bind(to_json(&info.roles))
        .bind(info.created_at)
        .bind(&info.created_by)
        .bind(info.expires_at)
        .bind(to_json(&info.ceiling))
        .execute(self.pool())
        .await?;
        Ok(info)
    }

    /// Every token, newest first.
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, DbError> {
        let rows = sqlx::query(
            "SELECT token_hash, label, roles, created_at, created_by, expires_at, used_at, node_id, ceiling, revoked_at, revoked_by FROM enrolment_tokens ORDER BY created_at DESC",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// The token with this secret, if any.
    pub async fn token(&self, token: &str) -> Result<Option<TokenInfo>, DbError> {
        self.token_by_id(&token_id(token)).await
    }

    /// The token with this public id, if any.
    pub async fn token_by_id(&self, id: &str) -> Result<Option<TokenInfo>, DbError> {
        let row = sqlx::query(
            "SELECT token_hash, label, roles, created_at, created_by, expires_at, used_at, node_id, ceiling, revoked_at, revoked_by FROM enrolment_tokens WHERE token_hash = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    /// Marks the token used by `node_id`, once: of two agents racing with the same token only
    /// one wins.
    pub async fn redeem_token(&self, token: &str, node_id: &str) -> Result<Redeem, DbError> {
        let now = self.now_ms();
        let result = sqlx::query(
            "UPDATE enrolment_tokens SET used_at = $1, node_id = $2 WHERE token_hash = $3 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(node_id)
        .bind(token_id(token))
        .execute(self.pool())
        .await?;
        Ok(match self.token(token).await? {
            Some(info) if result.rows_affected() == 1 => Redeem::Ok(Box::new(info)),
            None => Redeem::Unknown,
            Some(info) if info.used_at.is_some() => Redeem::Used,
            Some(info) if info.revoked_at.is_some() => Redeem::Revoked,
            Some(_) => Redeem::Expired,
        })
    }

    /// Revokes the unredeemed token `id` (its public id).
    pub async fn revoke_token(&self, id: &str, by: &str) -> Result<Revoke, DbError> {
        let result = sqlx::query(
            "UPDATE enrolment_tokens SET revoked_at = $1, revoked_by = $2 WHERE token_hash = $3 AND used_at IS NULL AND revoked_at IS NULL",
        )
        .bind(self.now_ms())
        .bind(by)
        .bind(id)
        .execute(self.pool())
        .await?;
        if result.rows_affected() == 1 {
            return Ok(Revoke::Ok);
        }
        Ok(match self.token_by_id(id).await? {
            None => Revoke::Unknown,
            Some(info) if info.used_at.is_some() => Revoke::Used,
            Some(_) => Revoke::AlreadyRevoked,
        })
    }
}

fn token_from_row(row: &sqlx::any::AnyRow) -> Result<TokenInfo, DbError> {
    let roles: String = row.try_get(2)?;
    let ceiling: String = row.try_get(8)?;
    Ok(TokenInfo {
        ceiling: from_json("enrolment_tokens.ceiling", &ceiling)?,
        id: row.try_get(0)?,
        label: row.try_get(1)?,
        roles: from_json("enrolment_tokens.roles", &roles)?,
        created_at: row.try_get(3)?,
        created_by: row.try_get(4)?,
        expires_at: row.try_get(5)?,
        used_at: row.try_get(6)?,
        node_id: row.try_get(7)?,
        revoked_at: row.try_get(9)?,
        revoked_by: row.try_get(10)?,
    })
}
