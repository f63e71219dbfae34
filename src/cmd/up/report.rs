//! What `wakufleet up` prints once the fleet is up: every address, each node's health and
//! bootstrap latency, and commands to try.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use libp2p::Multiaddr;

/// One node's line.
pub(super) struct NodeLine {
    pub(super) name: String,
    pub(super) listen: Option<Multiaddr>,
    /// The WebSocket listen address (web clients).
    pub(super) websocket: Option<Multiaddr>,
    pub(super) rest: Option<SocketAddr>,
    pub(super) metrics: Option<SocketAddr>,
    /// Health in the registry, or how the node joined.
    pub(super) health: String,
    /// Start to the relay-peer target, as measured by `up`.
    pub(super) seconds: Option<Duration>,
    /// `bootstrapSeconds` from the agent's newest report (time to 6 relay peers).
    pub(super) reported: Option<f64>,
}

/// Everything printed.
pub(super) struct Summary {
    pub(super) dir: PathBuf,
    pub(super) api: SocketAddr,
    pub(super) dns: SocketAddr,
    pub(super) zone: String,
    pub(super) domain: String,
    pub(super) url: String,
    pub(super) seq: u64,
    pub(super) listed: usize,
    pub(super) keyfile: PathBuf,
    pub(super) token_file: PathBuf,
    /// Relay peers each agent's node is timed to (6, or every other agent when fewer).
    pub(super) agent_target: usize,
    /// Relay peers the joining node is timed to.
    pub(super) joiner_target: usize,
    pub(super) nodes: Vec<NodeLine>,
}

impl Summary {
    pub(super) fn print(&self) {
        let agents = self.nodes.len().saturating_sub(1);
        println!("wakufleet local fleet in {}", self.dir.display());
        if self.api.ip().is_loopback() {
            println!("  dashboard:      http://{}/dashboard", self.api);
        } else {
            println!(
                "  dashboard:      http://{}/dashboard (log in: any user, the admin token)",
                self.api
            );
        }
        println!("  controller API: http://{}/api/v1 (OpenAPI at /openapi.json)", self.api);
        println!("  admin token: {} (Authorization: Bearer …)", self.token_file.display());
        println!("  metrics:        http://{}/metrics", self.api);
        println!("  fleets.json:    http://{}/fleets.json (fleets.status.im's shape)", self.api);
        println!("  DNS server:     {} (UDP and TCP), zone {}", self.dns, self.zone);
        println!(
            "  zone file:      {}",
            self.dir.join("zone").join(format!("{}.zone", self.zone)).display()
        );
        println!(
            "  signing key:    {} (development key, password beside it)",
            self.keyfile.display()
        );
        println!(
            "  tree:           {TREE_NAME} at {}, seq {}, {} records",
            self.domain, self.seq, self.listed
        );
        println!("  tree url:       {}", self.url);
        println!("  nodes ({agents} agents + 1 joining from the tree):");
        for node in &self.nodes {
            let listen = node.listen.as_ref().map_or("-".into(), ToString::to_string);
            let port = |a: Option<SocketAddr>| a.map_or("-".into(), |a| a.port().to_string());
            let ws = node
                .websocket
                .as_ref()
                .and_then(|a| {
                    a.iter().find_map(|p| match p {
                        libp2p::multiaddr::Protocol::Tcp(port) => Some(port.to_string()),
                        _ => None,
                    })
                })
                .unwrap_or_else(|| "-".into());
            println!(
                "    {:<8} {listen}  ws {ws}  rest {}  metrics {}  bootstrap {}  {}",
                node.name,
                port(node.rest),
                port(node.metrics),
                node.seconds.map_or("-".into(), |s| format!("{:.2} s", s.as_secs_f64())),
                node.health,
            );
        }
        println!("  bootstrap latency: {}", self.latency_line());
        println!(
            "  reported bootstrapSeconds (agents, start to 6 relay peers): {}",
            self.reported_line()
        );
        println!(
            "  try:            dig @{} -p {} TXT {}",
            self.dns.ip(),
            self.dns.port(),
            self.domain
        );
        println!("                  wakufleet tree resolve {} --server {}", self.url, self.dns);
        println!("                  (web clients: every record announces its node's /ws address)");
        println!(
            "                  curl -H \"Authorization: Bearer $(cat {})\" http://{}/api/v1/nodes",
            self.token_file.display(),
            self.api
        );
    }

    fn latency_line(&self) -> String {
        let mut seconds: Vec<f64> =
            self.nodes.iter().filter_map(|n| n.seconds.map(|s| s.as_secs_f64())).collect();
        let stats = min_median_max(&mut seconds).map_or("none measured".into(), |(lo, mid, hi)| {
            format!("min {lo:.2} s, median {mid:.2} s, max {hi:.2} s over {} nodes", seconds.len())
        });
        let (agents, joiner) = (self.agent_target, self.joiner_target);
        if agents == node::running::TARGET_RELAY_PEERS {
            format!("{stats} (start to {agents} relay peers)")
        } else {
            format!(
                "{stats} (start to all available relay peers, the fleet being smaller than 7: \
                 {agents} for agents, {joiner} for the joiner)"
            )
        }
    }

    fn reported_line(&self) -> String {
        let mut reported: Vec<f64> = self.nodes.iter().filter_map(|n| n.reported).collect();
        match min_median_max(&mut reported) {
            Some((lo, mid, hi)) => {
                format!("min {lo:.2} s, median {mid:.2} s, max {hi:.2} s over {}", reported.len())
            }
            None => "none yet (no node has reached 6 relay peers)".into(),
        }
    }
}

const TREE_NAME: &str = super::TREE;

/// Minimum, median and maximum of `values` (sorted in place); `None` when empty.
fn min_median_max(values: &mut [f64]) -> Option<(f64, f64, f64)> {
    values.sort_by(f64::total_cmp);
    let (first, last) = (values.first()?, values.last()?);
    let n = values.len();
    let median = if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
    Some((*first, median, *last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_median_max_of_odd_even_and_empty() {
        assert_eq!(min_median_max(&mut [3.0, 1.0, 2.0]), Some((1.0, 2.0, 3.0)));
        assert_eq!(min_median_max(&mut [4.0, 1.0, 2.0, 3.0]), Some((1.0, 2.5, 4.0)));
        assert_eq!(min_median_max(&mut []), None);
    }
}
