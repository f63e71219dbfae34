//! What the archive and the controller share about SQL databases: one code path over sqlx's
//! `Any` driver for SQLite (a file; the embedded default) and Postgres, per-backend migrations
//! tracked in a `schema_versions` table, and fresh throwaway Postgres databases for tests and
//! benchmarks.

use std::time::Duration;

use sqlx::{AnyPool, AssertSqlSafe, Row, any::AnyPoolOptions};

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A Postgres server.
    Postgres,
}

/// Database failures.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The URL names no supported database.
    #[error("unsupported database URL {0:?}: use sqlite://… or postgres://…")]
    Url(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// One migration: a version and the SQL, statements ending with `;` at the end of a line (a
/// trigger body written on one line stays one statement).
pub type Migration = (i64, &'static str);

/// Connects to `url` (`sqlite://path`, created if missing, or `postgres://…`) with at most
/// `max_connections` (SQLite always gets one: it has one writer at a time anyway, and a single
/// connection avoids lock contention). Acquiring a connection fails after 5 s, so callers fail
/// fast while the database is gone instead of hanging.
pub async fn connect(url: &str, max_connections: u32) -> Result<(AnyPool, Backend), SqlError> {
    sqlx::any::install_default_drivers();
    let backend = if url.starts_with("sqlite:") {
        Backend::Sqlite
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Backend::Postgres
    } else {
        return Err(SqlError::Url(url.to_owned()));
    };
    let (url, max) = match backend {
        Backend::Sqlite if url.contains('?') => (url.to_owned(), 1),
        Backend::Sqlite => (format!("{url}?mode=rwc"), 1),
        Backend::Postgres => (url.to_owned(), max_connections),
    };
    let pool = AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&url)
        .await?;
    if backend == Backend::Sqlite {
        sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
    }
    Ok((pool, backend))
}

/// Applies the `migrations` of `component` not applied yet, each in its own transaction.
pub async fn migrate(
    pool: &AnyPool,
    component: &str,
    migrations: &[Migration],
) -> Result<(), SqlError> {
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_versions (component TEXT NOT NULL, version BIGINT NOT NULL, PRIMARY KEY (component, version))")
        .execute(pool)
        .await?;
    for (version, sql) in migrations {
        let applied = sqlx::query(
            "SELECT COUNT(*) FROM schema_versions WHERE component = $1 AND version = $2",
        )
        .bind(component)
        .bind(*version)
        .fetch_one(pool)
        .await?
        .try_get::<i64, _>(0)?;
        if applied > 0 {
            continue;
        }
        let mut tx = pool.begin().await?;
        for statement in statements(sql) {
            sqlx::query(AssertSqlSafe(statement)).execute(&mut *tx).await?;
        }
        sqlx::query("INSERT INTO schema_versions (component, version) VALUES ($1, $2)")
            .bind(component)
            .bind(*version)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Splits a migration into statements: each ends with `;` at the end of a line. Comment-only
/// chunks are skipped.
fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        if line.trim_start().starts_with("--") {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if line.trim_end().ends_with(';') {
            let statement = current.trim().trim_end_matches(';').trim().to_owned();
            if !statement.is_empty() {
                out.push(statement);
            }
            current.clear();
        }
    }
    let rest = current.trim();
    if !rest.is_empty() {
        out.push(rest.to_owned());
    }
    out
}

/// The Postgres server (a URL without a database) tests and benchmarks create their databases
/// on: `$WAKUFLEET_TEST_POSTGRES`, else the machine's server on 127.0.0.1:5432 with trust auth,
/// which `bash tests/run.sh` starts.
pub fn test_server() -> String {
    std::env::var("WAKUFLEET_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Drops a database made by [`create_postgres_database`] (its URL), closing other sessions.
pub async fn drop_postgres_database(url: &str) -> Result<(), SqlError> {
    use sqlx::{Connection, Executor};
    let (server, name) = url.rsplit_once('/').ok_or_else(|| SqlError::Url(url.to_owned()))?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(SqlError::Url(url.to_owned()));
    }
    let mut admin = sqlx::AnyConnection::connect(&format!("{server}/postgres")).await?;
    admin.execute(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).await?;
    Ok(())
}

/// Creates an empty database named `<prefix>_<random hex>` on the Postgres server at
/// `server` (a URL without a database, e.g. `postgres://postgres@127.0.0.1:5432`) and returns
/// its URL: a fresh database per test or benchmark run.
pub async fn create_postgres_database(server: &str, prefix: &str) -> Result<String, SqlError> {
    use sqlx::{Connection, Executor};
    sqlx::any::install_default_drivers();
    let mut suffix = [0u8; 8];
    crate::crypto::random_bytes(&mut suffix);
    let name = format!("{prefix}_{}", data_encoding::HEXLOWER.encode(&suffix));
    let mut admin = sqlx::AnyConnection::connect(&format!("{server}/postgres")).await?;
    admin.execute(AssertSqlSafe(format!("CREATE DATABASE {name}"))).await?;
    Ok(format!("{server}/{name}"))
}

/// The prefix of every database [`TestDatabase`] makes; `tests/run.sh` drops leftovers of
/// killed runs by it.
pub const TEST_DATABASE_PREFIX: &str = "wakufleet_test";

/// A fresh Postgres database on [`test_server`] for one test or benchmark run, dropped when the
/// guard goes out of scope (other sessions are closed first), so a run leaves none behind.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
}

impl TestDatabase {
    /// Creates `wakufleet_test_<random hex>`.
    pub async fn create() -> Result<Self, SqlError> {
        let url = create_postgres_database(&test_server(), TEST_DATABASE_PREFIX).await?;
        Ok(Self { url })
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside a runtime (a test's) that cannot be blocked on: the drop gets a
        // thread and a runtime of its own, and is waited for so the database is gone after.
        let url = std::mem::take(&mut self.url);
        let dropped = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(drop_postgres_database(&url)).err()
        })
        .join();
        if let Ok(Some(error)) = dropped {
            tracing::warn!(target: "node::sql", %error, "test database not dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_at_line_ends_and_keep_one_line_triggers_whole() {
        let sql = "-- a comment; with a semicolon\nCREATE TABLE a (x BIGINT);\nCREATE TRIGGER t BEFORE UPDATE ON a BEGIN SELECT RAISE(ABORT, 'no'); END;\n\nCREATE INDEX i\n  ON a (x);\n";
        assert_eq!(
            statements(sql),
            [
                "CREATE TABLE a (x BIGINT)",
                "CREATE TRIGGER t BEFORE UPDATE ON a BEGIN SELECT RAISE(ABORT, 'no'); END",
                "CREATE INDEX i\n  ON a (x)",
            ]
        );
    }
}
