//! `GET /fleets.json`: the nodes the published trees list, in the shape of fleets.status.im,
//! so scripts and clients that read that file to find fleet nodes work unchanged. One fleet
//! per tree (its name); per node its ENR (`enr/p2p/waku`), TCP multiaddr (`tcp/p2p/waku`) and
//! secure WebSocket multiaddr (`wss/p2p/waku`) when its record announces one, each also under
//! the `…/boot` and `…/store` keys for nodes with those roles.
//!
//! Public like the DNS tree it mirrors: it shows only what clients already get from DNS.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use axum::{Json, extract::State};
use libp2p::multiaddr::Protocol;
use node::{enrtree::NodeRecord, waku_enr::WakuEnr};
use serde_json::{Map, Value, json};

use crate::{app::AppState, db::trees::VersionState, error::AppError};

/// One fleet's maps: key ("enr/p2p/waku", …) → host → value.
type Fleet = BTreeMap<String, BTreeMap<String, String>>;

/// `GET /fleets.json`.
pub async fn fleets(State(state): State<Arc<AppState>>) -> Result<Json<Value>, AppError> {
    let nodes = state.db.nodes().await?;
    let by_id: HashMap<&str, &crate::db::nodes::NodeRow> =
        nodes.iter().map(|n| (n.node_id.as_str(), n)).collect();
    let mut fleets = Map::new();
    for tree in state.db.trees().await? {
        let Some(published) =
            state.db.versions_in(&tree.name, VersionState::Published).await?.into_iter().next()
        else {
            continue;
        };
        let mut fleet = Fleet::new();
        let mut hosts_taken: HashMap<String, usize> = HashMap::new();
        for enr in &published.enrs {
            let Ok(record) = enr.parse::<NodeRecord>() else { continue };
            let Ok(waku) = WakuEnr::decode(record.enr()) else { continue };
            let id = record.node_id_hex();
            let node = by_id.get(id.as_str());
            let host = host_name(node.map(|n| n.label.as_str()), &id, &mut hosts_taken);
            let roles: Vec<&str> =
                node.map(|n| n.roles.iter().map(String::as_str).collect()).unwrap_or_default();
            let tcp = waku.dial_addresses().into_iter().find(|a| {
                !a.iter().any(|p| matches!(p, Protocol::Ws(_) | Protocol::Wss(_) | Protocol::Tls))
            });
            let wss = waku.multiaddrs.iter().find(|a| {
                a.iter().any(|p| matches!(p, Protocol::Wss(_)))
                    || (a.iter().any(|p| matches!(p, Protocol::Tls))
                        && a.iter().any(|p| matches!(p, Protocol::Ws(_))))
            });
            let with_peer = |a: &libp2p::Multiaddr| {
                let plain: libp2p::Multiaddr =
                    a.iter().filter(|p| !matches!(p, Protocol::P2p(_))).collect();
                plain.with(Protocol::P2p(waku.peer_id)).to_string()
            };
            let mut entries = vec![("enr/p2p/waku", record.to_string())];
            if let Some(tcp) = &tcp {
                entries.push(("tcp/p2p/waku", with_peer(tcp)));
            }
            if let Some(wss) = wss {
                entries.push(("wss/p2p/waku", with_peer(wss)));
            }
            for (key, value) in entries {
                fleet.entry(key.to_owned()).or_default().insert(host.clone(), value.clone());
                for role in ["boot", "store"] {
                    if roles.contains(&role) {
                        fleet
                            .entry(format!("{key}/{role}"))
                            .or_default()
                            .insert(host.clone(), value.clone());
                    }
                }
            }
        }
        fleets.insert(tree.name.clone(), json!(fleet));
    }
    let timestamp = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(state.db.now_ms().max(0) as u64),
    );
    Ok(Json(json!({
        "fleets": fleets,
        "meta": { "hostname": state.instance, "timestamp": timestamp.to_string() },
    })))
}

/// The host name a node is listed under: its label made name-like, or its node id's first
/// 12 hex digits; a name already taken in this fleet gets `-2`, `-3`, ….
fn host_name(label: Option<&str>, node_id: &str, taken: &mut HashMap<String, usize>) -> String {
    let cleaned: String = label
        .unwrap_or("")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' })
        .take(63)
        .collect();
    let cleaned = cleaned.trim_matches('-');
    let base =
        if cleaned.is_empty() { node_id.chars().take(12).collect() } else { cleaned.to_owned() };
    let count = taken.entry(base.clone()).or_default();
    *count += 1;
    if *count == 1 { base } else { format!("{base}-{count}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_name_like_and_unique() {
        let mut taken = HashMap::new();
        assert_eq!(host_name(Some("boot-01.ams3"), "aa", &mut taken), "boot-01.ams3");
        assert_eq!(host_name(Some("boot-01.ams3"), "bb", &mut taken), "boot-01.ams3-2");
        assert_eq!(host_name(Some("up node-1 <b>"), "cc", &mut taken), "up-node-1--b");
        assert_eq!(host_name(None, "0123456789abcdef", &mut taken), "0123456789ab");
    }
}
