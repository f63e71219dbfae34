//! `controller --check` (the systemd units' `ExecStartPre`): everything a start would need,
//! checked without serving anything, so a configuration that passes also starts. Each failure
//! is one line naming the configuration key at fault.

use std::time::Duration;

use crate::{
    config::ControllerConfig, db::Db, keyring::Keyring, publish::Publisher, tree_definition,
};

/// How long the database may take to answer.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(10);

/// What was checked, for the one-line summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Keys unlocked.
    pub keys: usize,
    /// Trees whose definitions, signers and publication were checked.
    pub trees: usize,
    /// Publishers built.
    pub publishers: usize,
    /// The database backend reached.
    pub database: &'static str,
}

/// A check that failed: the configuration key and why.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct PreflightError {
    /// The configuration key (`database-url`, `trees.boot`, `dns.listen`…).
    pub key: String,
    /// Why.
    pub message: String,
}

fn fail(key: impl Into<String>, message: impl std::fmt::Display) -> PreflightError {
    PreflightError { key: key.into(), message: message.to_string() }
}

/// Whether the listening ports are part of the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ports {
    /// Before a start: every port must be free.
    MustBeFree,
    /// A controller with an earlier version of this configuration is running and holds its
    /// ports (a changed configuration checked before the restart): the ports are left out.
    HeldByRunningController,
}

/// Checks `config` with its unlocked `keyring` and built `publishers`: values, the admin
/// token, TLS files, every tree (name, domain inside a zone something publishes, signer key
/// unlocked, policy), that the API and DNS ports can be bound (unless `ports` says a running
/// controller holds them), and that the database answers and is migrated (migrating it if
/// needed, as a start would).
pub async fn check(
    config: &ControllerConfig,
    keyring: &Keyring,
    publishers: &[Box<dyn Publisher>],
    ports: Ports,
) -> Result<Checked, PreflightError> {
    config.validate().map_err(|e| fail("configuration", e))?;
    if config.admin_token_file.is_some() {
        config.admin_token().map_err(|e| fail("admin-token-file", e))?;
    }
    if let Some(tls) = &config.tls {
        tls.load().map_err(|e| fail("tls", e))?;
    }
    for tree in &config.trees {
        let key = format!("trees.{}", tree.name);
        let domain = tree_definition::check(config, keyring, tree).map_err(|e| fail(&key, e))?;
        if config.dns.is_none() && !publishers.iter().any(|p| p.covers(&domain)) {
            return Err(fail(
                key,
                format!("nothing publishes {domain}: no [dns] and no publisher's zone holds it"),
            ));
        }
    }
    // Bound and let go: a port another process holds fails here, not after the database.
    if ports == Ports::MustBeFree {
        std::net::TcpListener::bind(config.listen)
            .map_err(|e| fail("listen", format!("{}: {e}", config.listen)))?;
        if let Some(dns) = &config.dns {
            let at = |e: std::io::Error| fail("dns.listen", format!("{}: {e}", dns.listen));
            std::net::UdpSocket::bind(dns.listen).map_err(at)?;
            std::net::TcpListener::bind(dns.listen).map_err(at)?;
        }
    }
    let db = tokio::time::timeout(DATABASE_TIMEOUT, Db::connect(&config.database_url))
        .await
        .map_err(|_| {
            fail("database-url", format!("no answer within {} s", DATABASE_TIMEOUT.as_secs()))
        })?
        .map_err(|e| fail("database-url", e))?;
    db.ping().await.map_err(|e| fail("database-url", e))?;
    let database = match db.backend() {
        node::sql::Backend::Sqlite => "sqlite",
        node::sql::Backend::Postgres => "postgres",
    };
    Ok(Checked {
        keys: config.keys.len(),
        trees: config.trees.len(),
        publishers: publishers.len(),
        database,
    })
}
