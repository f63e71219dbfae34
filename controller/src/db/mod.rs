//! The controller's database: one [`Db`] over sqlx `Any`, Postgres for fleets and a SQLite file
//! as the embedded default, with the same SQL on both (only the migrations differ in syntax).
//!
//! One file per table group: [`tokens`], [`access`], [`nodes`], [`trees`], [`rollouts`],
//! [`audit`], [`leases`].

pub mod access;
pub mod audit;
pub mod leases;
pub mod nodes;
pub mod rollouts;
pub mod tokens;
pub mod trees;

use std::sync::Arc;

use node::clock::{Clock, SystemClock};
use node::sql::{Backend, Migration, SqlError};
use sqlx::AnyPool;

/// The tables both backends share; the audit log's trigger syntax differs.
const TABLES: &str = include_str!("../../../migrations/controller/0001_tables.sql");
const TREE_RETIREMENT: &str =
    include_str!("../../../migrations/controller/0003_tree_retirement.sql");
const DESIRED_CONFIG: &str = include_str!("../../../migrations/controller/0004_desired_config.sql");
const MAINTENANCE: &str = include_str!("../../../migrations/controller/0005_maintenance.sql");
const ROLLOUTS: &str = include_str!("../../../migrations/controller/0006_rollouts.sql");
const MEMBERSHIP: &str = include_str!("../../../migrations/controller/0007_membership.sql");
const ACCESS_TOKENS: &str = include_str!("../../../migrations/controller/0008_access_tokens.sql");
const TOKEN_REVOCATION: &str =
    include_str!("../../../migrations/controller/0009_token_revocation.sql");
const SHARD_SAMPLES: &str = include_str!("../../../migrations/controller/0010_shard_samples.sql");
const SQLITE_MIGRATIONS: &[Migration] = &[
    (1, TABLES),
    (2, include_str!("../../../migrations/controller/sqlite/0002_audit_log.sql")),
    (3, TREE_RETIREMENT),
    (4, DESIRED_CONFIG),
    (5, MAINTENANCE),
    (6, ROLLOUTS),
    (7, MEMBERSHIP),
    (8, ACCESS_TOKENS),
    (9, TOKEN_REVOCATION),
    (10, SHARD_SAMPLES),
];
const POSTGRES_MIGRATIONS: &[Migration] = &[
    (1, TABLES),
    (2, include_str!("../../../migrations/controller/postgres/0002_audit_log.sql")),
    (3, TREE_RETIREMENT),
    (4, DESIRED_CONFIG),
    (5, MAINTENANCE),
    (6, ROLLOUTS),
    (7, MEMBERSHIP),
    (8, ACCESS_TOKENS),
    (9, TOKEN_REVOCATION),
    (10, SHARD_SAMPLES),
];

/// Database failures.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Connecting or migrating failed, or the URL is not supported.
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// A query failed.
    #[error("database: {0}")]
    Query(#[from] sqlx::Error),
    /// A stored value does not decode (a JSON column, say).
    #[error("corrupt stored value in {column}: {message}")]
    Corrupt {
        /// Which column.
        column: &'static str,
        /// Why.
        message: String,
    },
}

/// The controller's database.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// Every time the controller stores or decides on comes from here.
    clock: Arc<dyn Clock>,
}

impl Db {
    /// Connects to `url` (`sqlite://…` or `postgres://…`) and applies the migrations.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        let (pool, backend) = node::sql::connect(url, 16).await?;
        let migrations = match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        node::sql::migrate(&pool, "controller", migrations).await?;
        Ok(Self { pool, backend, clock: Arc::new(SystemClock) })
    }

    /// The same database read and written on `clock`'s time (tests move it forward).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self { clock, ..self }
    }

    /// The controller's time in Unix milliseconds, the unit of every time column.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// One round trip to the database.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    column: &'static str,
    text: &str,
) -> Result<T, DbError> {
    serde_json::from_str(text).map_err(|e| DbError::Corrupt { column, message: e.to_string() })
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Serialising plain data structures (strings, numbers, lists) cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}
