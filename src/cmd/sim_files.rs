//! Open files for a simulated network: every node holds a listener, a discv5 socket and a
//! socket per connection (both ends of a link between two nodes of one process are that
//! process's), and a thousand of them outgrow the usual limits: at 20,000 and the node's default of 150 connections, a
//! 1,000-node run failed at node 998 with "Too many open files", its agents' report queues
//! with it. The sim asks for what it needs before any node starts.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Sockets a node holds besides its connections: its listener and discv5's.
const FILES_PER_NODE: u64 = 2;
/// Connections a node holds on average when its limit allows: measured at 200 nodes with the
/// default limit, 17 (the relay target, the diversity dials, the peers that dialled it;
/// fleet nodes hold more). The longer a network grows, the more: at 5 new nodes a second
/// 1,000 ran out of 20,000 files at node 998, at 20 a second they fitted. Since nodes with a
/// thin mesh dial up to twice the relay target, 1,000 nodes at 20 a second no longer fit
/// 20,000 either (relay peers p50 14 in the 1,000-node run with workers): 20.
const CONNECTIONS_PER_NODE: u64 = 20;
/// The controller, the agents' queues and databases, the sim's own.
const FILES_BESIDES: u64 = 512;

/// Open files `nodes` nodes with `max_connections` each need.
pub(crate) fn needed(nodes: usize, max_connections: usize) -> u64 {
    let connections = CONNECTIONS_PER_NODE.min(max_connections as u64);
    nodes as u64 * (FILES_PER_NODE + connections) + FILES_BESIDES
}

/// Raises this process's open-files limit to what `nodes` nodes need (the hard limit too,
/// where the process may: CAP_SYS_RESOURCE), or says what to do.
pub(crate) fn ensure_open_files(nodes: usize, max_connections: usize) -> anyhow::Result<()> {
    let need = needed(nodes, max_connections);
    let limit = getrlimit(Resource::Nofile);
    // None is "unlimited".
    if limit.current.is_none_or(|current| current >= need) {
        return Ok(());
    }
    let maximum = limit.maximum.map(|max| max.max(need));
    let raised = setrlimit(Resource::Nofile, Rlimit { current: Some(need), maximum }).or_else(
        |_| match limit.maximum {
            // The hard limit stays: as much as it allows.
            Some(max) if max > limit.current.unwrap_or(0) => setrlimit(
                Resource::Nofile,
                Rlimit { current: Some(max.min(need)), maximum: Some(max) },
            ),
            _ => Err(rustix::io::Errno::PERM),
        },
    );
    let now = getrlimit(Resource::Nofile).current;
    if raised.is_ok() && now.is_none_or(|current| current >= need) {
        return Ok(());
    }
    anyhow::bail!(
        "{nodes} nodes need about {need} open files and this process may have {} (ulimit -n): \
         run the clients in worker processes (--workers N: each has a limit of its own), \
         raise the limit (ulimit -n {need}), lower each client's --max-connections or run \
         fewer nodes",
        now.map_or("unlimited".to_owned(), |n| n.to_string())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_network_needs_no_more_than_it_has_and_the_limit_covers_it_after() {
        assert_eq!(needed(1000, 150), 22_512);
        assert_eq!(needed(1000, 12), 14_512);
        ensure_open_files(10, 150).unwrap();
        let current = getrlimit(Resource::Nofile).current;
        assert!(current.is_none_or(|c| c >= needed(10, 150)), "{current:?}");
    }
}
