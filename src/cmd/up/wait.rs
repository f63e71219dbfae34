//! The waits between steps, each bounded by [`STEP_LIMIT`]: the nodes passing in the
//! registry, the tree published with exactly the running nodes, the DNS server serving it.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::Context;
use node::{
    dnsdisc::{ClientConfig, HickoryTxtResolver, TreeClient},
    enrtree::LinkEntry,
};

use super::{TREE, api::Api, fleet::STEP_LIMIT};

/// Waits until the registry has every node in `ids` passing, for at most `limit`.
pub(crate) async fn passing(api: &Api, ids: &[String], limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let registry = api.nodes().await?;
        let state = |id: &String| {
            registry.iter().find(|n| n["nodeId"].as_str() == Some(id.as_str())).map(|n| {
                (
                    n["health"].as_str().unwrap_or("?").to_owned(),
                    n["healthReason"].as_str().unwrap_or("").to_owned(),
                )
            })
        };
        let failing: Vec<String> = ids
            .iter()
            .filter_map(|id| match state(id) {
                Some((health, _)) if health == "passing" => None,
                Some((health, reason)) => Some(format!("{}… {health} ({reason})", &id[..8])),
                None => Some(format!("{}… not enrolled", &id[..8])),
            })
            .collect();
        if failing.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("after {limit:?}: {}", failing.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the published version lists exactly the running nodes' current records (or
/// `max_entries` of them); returns the tree URL, the seq and the records.
pub(crate) async fn published(
    api: &Api,
    records: &BTreeSet<String>,
    max_entries: usize,
) -> anyhow::Result<(String, u64, BTreeSet<String>)> {
    let deadline = Instant::now() + STEP_LIMIT;
    let want = records.len().min(max_entries);
    loop {
        let tree = api.tree(TREE).await?;
        let published = tree["versions"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["state"] == "published"))
            .cloned();
        let url = tree["url"].as_str().map(str::to_owned);
        if let (Some(version), Some(url)) = (&published, url) {
            let listed: BTreeSet<String> = version["enrs"]
                .as_array()
                .map(|e| e.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            if listed.len() == want && listed.is_subset(records) {
                return Ok((url, version["seq"].as_u64().unwrap_or(0), listed));
            }
        }
        if Instant::now() > deadline {
            let seq = published.as_ref().and_then(|v| v["seq"].as_u64());
            let error = tree["tree"]["lastError"].as_str().unwrap_or("none");
            anyhow::bail!(
                "after {STEP_LIMIT:?} the published version (seq {seq:?}) does not list the {want} running nodes; last build error: {error}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the DNS server at `dns` serves the tree at `url` with exactly `listed` (the
/// server is brought up to date at the end of a reconcile pass, just after the database).
pub(crate) async fn resolved(
    dns: SocketAddr,
    url: &str,
    listed: &BTreeSet<String>,
) -> anyhow::Result<()> {
    let link: LinkEntry = url.parse().with_context(|| format!("tree url {url}"))?;
    let deadline = Instant::now() + STEP_LIMIT;
    loop {
        // A fresh resolver each time: no answer cached from the previous attempt.
        let resolver = HickoryTxtResolver::with_server(dns)?;
        let resolution = TreeClient::new(resolver, ClientConfig::default()).resolve(&link).await;
        let resolved: BTreeSet<String> =
            resolution.records().iter().map(ToString::to_string).collect();
        let bad = resolution.errors().count();
        if bad == 0 && resolved == *listed {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "{url} at {dns} resolved to {} of the {} published records, {bad} bad entries",
                resolved.intersection(listed).count(),
                listed.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
