//! The message archive: every relayed non-ephemeral message stored once under its
//! deterministic hash, and store queries answered from it. One implementation over sqlx's `Any`
//! driver serves both backends — SQLite (a file; the embedded default) and Postgres — since the
//! SQL is the same and only the migrations differ in types.

use sqlx::{AnyPool, AssertSqlSafe, Row};

use crate::message::{MessageHash, WakuMessage};

/// Default page size (nwaku).
pub const DEFAULT_PAGE_SIZE: usize = 20;
/// Largest page (nwaku).
pub const MAX_PAGE_SIZE: usize = 100;
/// Most content topics in one query.
pub const MAX_CONTENT_TOPICS: usize = 100;

pub use crate::sql::{Backend, create_postgres_database};

/// Archive failures.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The URL names no supported database.
    #[error("unsupported database URL {0:?}: use sqlite://… or postgres://…")]
    Url(String),
    /// The database failed (connection lost, disk full…).
    #[error("database: {0}")]
    Database(String),
    /// The query is malformed (the store protocol answers 400).
    #[error("bad query: {0}")]
    BadQuery(String),
    /// The cursor names no stored message.
    #[error("cursor not found")]
    CursorNotFound,
}

impl From<crate::sql::SqlError> for ArchiveError {
    fn from(error: crate::sql::SqlError) -> Self {
        match error {
            crate::sql::SqlError::Url(url) => Self::Url(url),
            crate::sql::SqlError::Database(error) => Self::Database(error.to_string()),
        }
    }
}

impl From<sqlx::Error> for ArchiveError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error.to_string())
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    /// Its deterministic hash.
    pub hash: MessageHash,
    /// Its pubsub topic.
    pub pubsub_topic: String,
    /// The message (`None` when the query did not ask for data).
    pub message: Option<WakuMessage>,
}

/// A store query, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreQuery {
    /// Pubsub topic.
    pub pubsub_topic: Option<String>,
    /// Content topics (any of).
    pub content_topics: Vec<String>,
    /// Inclusive start, ns.
    pub time_start: Option<i64>,
    /// Exclusive end, ns.
    pub time_end: Option<i64>,
    /// Hash lookup instead of a content filter.
    pub hashes: Vec<MessageHash>,
    /// Continue after this hash.
    pub cursor: Option<MessageHash>,
    /// Forward (oldest first) or backward (newest first) paging.
    pub forward: bool,
    /// Page size; 0 means the default, larger than the maximum is capped.
    pub limit: usize,
    /// Return messages, not only hashes.
    pub include_data: bool,
}

impl StoreQuery {
    /// Checks the rules of the store protocol.
    pub fn validate(&self) -> Result<(), ArchiveError> {
        let bad = |m: &str| Err(ArchiveError::BadQuery(m.to_owned()));
        if !self.hashes.is_empty()
            && (self.pubsub_topic.is_some()
                || !self.content_topics.is_empty()
                || self.time_start.is_some()
                || self.time_end.is_some())
        {
            return bad("hash lookups cannot be combined with a content filter");
        }
        if !self.content_topics.is_empty() && self.pubsub_topic.is_none() {
            return bad("content topics need a pubsub topic");
        }
        if self.content_topics.len() > MAX_CONTENT_TOPICS {
            return bad(&format!(
                "{} content topics, at most {MAX_CONTENT_TOPICS}",
                self.content_topics.len()
            ));
        }
        if let (Some(start), Some(end)) = (self.time_start, self.time_end)
            && start > end
        {
            return bad("time range is inverted (start after end)");
        }
        Ok(())
    }

    fn page_size(&self) -> usize {
        match self.limit {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        }
    }
}

/// A page of results, in forward order, and the cursor for the next page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StorePage {
    /// The messages, oldest first.
    pub messages: Vec<StoredMessage>,
    /// Where the next page starts, if there is one.
    pub cursor: Option<MessageHash>,
}

/// The archive.
#[derive(Debug, Clone)]
pub struct Archive {
    pool: AnyPool,
    backend: Backend,
}

const SQLITE_MIGRATIONS: &[(i64, &str)] =
    &[(1, include_str!("../../../migrations/store/sqlite/0001_messages.sql"))];
const POSTGRES_MIGRATIONS: &[(i64, &str)] =
    &[(1, include_str!("../../../migrations/store/postgres/0001_messages.sql"))];

impl Archive {
    /// Connects to `url` (`sqlite://path` — created if missing — or `postgres://…`) and applies
    /// the migrations.
    pub async fn connect(url: &str) -> Result<Self, ArchiveError> {
        let (pool, backend) = crate::sql::connect(url, 8).await?;
        let migrations = match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        crate::sql::migrate(&pool, "store", migrations).await?;
        Ok(Self { pool, backend })
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Stores `message` under its hash on `pubsub_topic`. Returns whether it was new.
    pub async fn insert(
        &self,
        pubsub_topic: &str,
        message: &WakuMessage,
    ) -> Result<bool, ArchiveError> {
        let result = insert_statement(pubsub_topic, message).execute(&self.pool).await?;
        Ok(result.rows_affected() == 1)
    }

    /// Stores several messages in one transaction (one commit, so one sync, for the batch).
    /// Returns how many were new.
    pub async fn insert_batch(&self, batch: &[(String, WakuMessage)]) -> Result<u64, ArchiveError> {
        let mut tx = self.pool.begin().await?;
        let mut new = 0;
        for (topic, message) in batch {
            new += insert_statement(topic, message).execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(new)
    }

    /// Answers a store query.
    pub async fn query(&self, query: &StoreQuery) -> Result<StorePage, ArchiveError> {
        query.validate()?;
        let page = query.page_size();
        let mut sql = Sql::new(
            "SELECT message_hash, pubsub_topic, content_topic, timestamp, payload, version, meta FROM messages WHERE 1 = 1",
        );
        if !query.hashes.is_empty() {
            sql.any_of("message_hash", query.hashes.iter().map(|h| Arg::Blob(h.0.to_vec())));
        }
        if let Some(topic) = &query.pubsub_topic {
            sql.push(" AND pubsub_topic = ").bind(Arg::Text(topic.clone()));
        }
        if !query.content_topics.is_empty() {
            sql.any_of("content_topic", query.content_topics.iter().map(|t| Arg::Text(t.clone())));
        }
        if let Some(start) = query.time_start {
            sql.push(" AND timestamp >= ").bind(Arg::Int(start));
        }
        if let Some(end) = query.time_end {
            sql.push(" AND timestamp < ").bind(Arg::Int(end));
        }
        if let Some(cursor) = &query.cursor {
            let row = sqlx::query("SELECT timestamp FROM messages WHERE message_hash = $1")
                .bind(cursor.0.to_vec())
                .fetch_optional(&self.pool)
                .await?
                .ok_or(ArchiveError::CursorNotFound)?;
            let stamp: i64 = row.try_get(0)?;
            // A row-value comparison, not `t > x OR (t = x AND h > y)`: Postgres turns the OR
            // into a bitmap scan of everything after the cursor (232 ms at 1M messages), while
            // the row value is an index condition on (…, timestamp, message_hash) (0.2 ms).
            let cmp = if query.forward { ">" } else { "<" };
            sql.push(&format!(" AND (timestamp, message_hash) {cmp} ("))
                .bind(Arg::Int(stamp))
                .push(", ")
                .bind(Arg::Blob(cursor.0.to_vec()))
                .push(")");
        }
        let direction = if query.forward { "ASC" } else { "DESC" };
        sql.push(&format!(
            " ORDER BY timestamp {direction}, message_hash {direction} LIMIT {}",
            page + 1
        ));
        let mut statement = sqlx::query(AssertSqlSafe(sql.text));
        for arg in sql.args {
            statement = match arg {
                Arg::Text(t) => statement.bind(t),
                Arg::Int(i) => statement.bind(i),
                Arg::Blob(b) => statement.bind(b),
            };
        }
        let rows = statement.fetch_all(&self.pool).await?;
        let more = rows.len() > page;
        let mut messages = Vec::with_capacity(page);
        for row in rows.into_iter().take(page) {
            messages.push(decode_row(&row, query.include_data)?);
        }
        // The cursor is the last message in paging direction; the page itself is always
        // returned oldest first.
        let cursor = if more { messages.last().map(|m| m.hash) } else { None };
        if !query.forward {
            messages.reverse();
        }
        Ok(StorePage { messages, cursor })
    }

    /// Number of stored messages.
    pub async fn count(&self) -> Result<i64, ArchiveError> {
        Ok(sqlx::query("SELECT COUNT(*) FROM messages").fetch_one(&self.pool).await?.try_get(0)?)
    }

    /// Deletes messages older than `cutoff_ns`. Returns how many.
    pub async fn delete_older_than(&self, cutoff_ns: i64) -> Result<u64, ArchiveError> {
        let result = sqlx::query("DELETE FROM messages WHERE timestamp < $1")
            .bind(cutoff_ns)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }

    /// Deletes the oldest messages until the stored messages take at most `max_bytes` (as
    /// encoded messages). Returns how many were deleted.
    pub async fn shrink_to(&self, max_bytes: i64) -> Result<u64, ArchiveError> {
        let mut deleted = 0;
        loop {
            let total: i64 =
                sqlx::query("SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM messages")
                    .fetch_one(&self.pool)
                    .await?
                    .try_get(0)?;
            if total <= max_bytes {
                return Ok(deleted);
            }
            // Delete in batches of a tenth of the rows (at least one), oldest first.
            let count = self.count().await?;
            let batch = (count / 10).max(1);
            let result = sqlx::query(
                "DELETE FROM messages WHERE message_hash IN (SELECT message_hash FROM messages ORDER BY timestamp, message_hash LIMIT $1)",
            )
            .bind(batch)
            .execute(&self.pool)
            .await?;
            deleted += result.rows_affected();
            if result.rows_affected() == 0 {
                return Ok(deleted);
            }
        }
    }
}

fn insert_statement<'q>(
    pubsub_topic: &str,
    message: &WakuMessage,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let hash = message.hash(pubsub_topic);
    let size = i64::try_from(prost::Message::encoded_len(message)).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO messages (message_hash, pubsub_topic, content_topic, timestamp, payload, version, meta, stored_at, size) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (message_hash) DO NOTHING",
    )
    .bind(hash.0.to_vec())
    .bind(pubsub_topic.to_owned())
    .bind(message.content_topic.clone())
    .bind(message.timestamp.unwrap_or(0))
    .bind(message.payload.clone())
    .bind(i64::from(message.version.unwrap_or(0)))
    .bind(message.meta.clone())
    .bind(crate::message::now_ns())
    .bind(size)
}

enum Arg {
    Text(String),
    Int(i64),
    Blob(Vec<u8>),
}

/// SQL text and its arguments, `$n` standing for `args[n - 1]`.
struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    fn new(text: &str) -> Self {
        Self { text: text.to_owned(), args: Vec::new() }
    }

    fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    fn bind(&mut self, arg: Arg) -> &mut Self {
        self.args.push(arg);
        self.text.push_str(&format!("${}", self.args.len()));
        self
    }

    /// ` AND column IN ($i, $j, …)`.
    fn any_of(&mut self, column: &str, items: impl Iterator<Item = Arg>) {
        self.push(&format!(" AND {column} IN ("));
        for (i, item) in items.enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(item);
        }
        self.push(")");
    }
}

fn decode_row(row: &sqlx::any::AnyRow, include_data: bool) -> Result<StoredMessage, ArchiveError> {
    let hash: Vec<u8> = row.try_get(0)?;
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| ArchiveError::Database("stored hash is not 32 bytes".into()))?;
    let pubsub_topic: String = row.try_get(1)?;
    let message = if include_data {
        let version: i64 = row.try_get(5)?;
        Some(WakuMessage {
            payload: row.try_get(4)?,
            content_topic: row.try_get(2)?,
            version: Some(u32::try_from(version).unwrap_or(0)).filter(|&v| v != 0),
            timestamp: Some(row.try_get(3)?),
            meta: row.try_get(6)?,
            rate_limit_proof: None,
            ephemeral: None,
        })
    } else {
        None
    };
    Ok(StoredMessage { hash: MessageHash(hash), pubsub_topic, message })
}
