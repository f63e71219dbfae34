//! TXT lookups behind a small trait, so the tree client runs against real DNS or a map.

use std::{collections::HashMap, future::Future, net::SocketAddr, sync::Mutex, time::Duration};

use hickory_proto::rr::{RData, RecordType};
use hickory_resolver::{
    Resolver, TokioResolver,
    config::{ConnectionConfig, NameServerConfig, ResolverConfig},
    net::runtime::TokioRuntimeProvider,
};

/// Why a TXT lookup gave no records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The name does not exist or has no TXT records.
    #[error("no TXT record")]
    NotFound,
    /// No answer in time.
    #[error("lookup timed out")]
    Timeout,
    /// Any other failure (server failure, network error).
    #[error("lookup failed: {0}")]
    Failed(String),
}

/// Looks up TXT records.
pub trait TxtResolver: Send + Sync {
    /// Every TXT record at `name`, each with its character-strings concatenated without a
    /// separator (as EIP-1459 requires).
    fn lookup_txt(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Vec<String>, LookupError>> + Send;
}

/// A resolver using hickory: the system's configuration, or one given server.
#[derive(Clone)]
pub struct HickoryTxtResolver {
    inner: TokioResolver,
}

impl std::fmt::Debug for HickoryTxtResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HickoryTxtResolver").finish_non_exhaustive()
    }
}

/// Per-query timeout. geth and reth use 5 s.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

impl HickoryTxtResolver {
    /// Uses the system's resolver configuration (`/etc/resolv.conf`).
    pub fn system() -> Result<Self, LookupError> {
        let mut builder =
            Resolver::builder_tokio().map_err(|e| LookupError::Failed(e.to_string()))?;
        builder.options_mut().timeout = LOOKUP_TIMEOUT;
        let inner = builder.build().map_err(|e| LookupError::Failed(e.to_string()))?;
        Ok(Self { inner })
    }

    /// Asks only `server`, on any port: over UDP, and over TCP when the UDP answer comes back
    /// truncated.
    pub fn with_server(server: SocketAddr) -> Result<Self, LookupError> {
        let mut udp = ConnectionConfig::udp();
        udp.port = server.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = server.port();
        let name_server = NameServerConfig::new(server.ip(), true, vec![udp, tcp]);
        let config = ResolverConfig::from_name_servers(vec![name_server]);
        let mut builder = Resolver::builder_with_config(config, TokioRuntimeProvider::default());
        let options = builder.options_mut();
        options.timeout = LOOKUP_TIMEOUT;
        options.attempts = 2;
        // Trees change by publishing a new root; a short cache keeps re-resolution honest.
        options.positive_max_ttl = Some(Duration::from_secs(60));
        let inner = builder.build().map_err(|e| LookupError::Failed(e.to_string()))?;
        Ok(Self { inner })
    }
}

impl TxtResolver for HickoryTxtResolver {
    async fn lookup_txt(&self, name: &str) -> Result<Vec<String>, LookupError> {
        // A trailing dot makes the name absolute: no search-domain guessing.
        let fqdn = if name.ends_with('.') { name.to_owned() } else { format!("{name}.") };
        let lookup = self.inner.lookup(fqdn.as_str(), RecordType::TXT).await.map_err(|e| {
            if e.is_no_records_found() || e.is_nx_domain() {
                LookupError::NotFound
            } else if e.to_string().contains("timed out") {
                LookupError::Timeout
            } else {
                LookupError::Failed(e.to_string())
            }
        })?;
        let texts: Vec<String> = lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::TXT(txt) => {
                    Some(String::from_utf8_lossy(&txt.txt_data.concat()).into_owned())
                }
                _ => None,
            })
            .collect();
        if texts.is_empty() { Err(LookupError::NotFound) } else { Ok(texts) }
    }
}

/// An in-memory resolver for tests of code above the DNS layer; names are case-insensitive.
#[derive(Debug, Default)]
pub struct MapResolver {
    records: Mutex<HashMap<String, Vec<String>>>,
}

impl MapResolver {
    /// Adds a TXT record at `name`.
    pub fn insert(&self, name: &str, text: impl Into<String>) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.entry(normalize(name)).or_default().push(text.into());
    }

    /// Adds every `(name, text)` pair, e.g. a tree's `to_txt`.
    pub fn extend<'a>(&self, records: impl IntoIterator<Item = (&'a String, &'a String)>) {
        for (name, text) in records {
            self.insert(name, text.clone());
        }
    }
}

impl TxtResolver for MapResolver {
    async fn lookup_txt(&self, name: &str) -> Result<Vec<String>, LookupError> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.get(&normalize(name)).cloned().ok_or(LookupError::NotFound)
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}
