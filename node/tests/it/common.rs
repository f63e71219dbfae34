//! What several node test files share.

#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use node::{
    config::NodeConfig,
    running::{NodeHandle, start},
};

/// A fresh Postgres database for one test (see `node::sql::test_server`), dropped with the
/// guard.
pub(crate) async fn postgres_database() -> node::sql::TestDatabase {
    node::sql::TestDatabase::create()
        .await
        .expect("Postgres on 127.0.0.1:5432 (bash tests/run.sh starts it)")
}

/// A store node archiving to `url`, a relay peer publishing to it, and a light client
/// (no relay) connected to it for store queries.
pub(crate) async fn store_network(url: String) -> (NodeHandle, NodeHandle, NodeHandle) {
    let (store, _) =
        start(NodeConfig { store_url: Some(url), ..NodeConfig::loopback() }).await.unwrap();
    let (relayer, _) = start(NodeConfig::loopback()).await.unwrap();
    relayer.dial(store.listen_addrs()[0].clone()).await.unwrap();
    relayer.wait_for_relay_peers(1, Duration::from_secs(20)).await.unwrap();
    let (client, _) = start(NodeConfig { relay: false, ..NodeConfig::loopback() }).await.unwrap();
    client.dial(store.listen_addrs()[0].clone()).await.unwrap();
    (store, relayer, client)
}
