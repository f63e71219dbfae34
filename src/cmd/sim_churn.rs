//! The `churn` scenario's schedule and its run: while messages flow, `--churn` percent of the
//! nodes that are not the fleet's leave per minute and as many new ones join, each joiner a
//! new identity on a host of its own that bootstraps from the tree as every client does.
//! Every other leaver crashes (its links cut first: its peers hear nothing and must notice);
//! the rest leave cleanly. Nodes that stay are the ones whose deliveries are counted: does the
//! mesh keep carrying everything while a tenth of it turns over?

use std::{
    hash::{Hash, Hasher},
    time::{Duration, Instant},
};

use serde::Serialize;

use super::{
    sim::{Spread, spread},
    sim_hosts::{Hosts, SimNode},
};

/// One node leaving and one joining.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChurnEvent {
    /// From the start of the messages.
    pub at: Duration,
    /// Index of the node that leaves.
    pub leaving: usize,
    /// Host index of the node that joins (a host no node used before).
    pub joining: usize,
    /// Whether the leaver crashes (else it closes its connections).
    pub crash: bool,
}

/// How many of `population` nodes leave over `duration` at `percent_per_minute`.
pub(crate) fn leaving_count(
    population: usize,
    percent_per_minute: f64,
    duration: Duration,
) -> usize {
    let wanted = population as f64 * percent_per_minute / 100.0 * duration.as_secs_f64() / 60.0;
    wanted.round() as usize
}

/// `count` events of `candidates` leaving over `duration` (as many as there are, at most),
/// evenly spaced, each candidate at most once, in an order drawn from `seed`; joiners on hosts
/// from `first_new_host` on.
pub(crate) fn schedule(
    candidates: &[usize],
    count: usize,
    duration: Duration,
    seed: u64,
    first_new_host: usize,
) -> Vec<ChurnEvent> {
    let count = count.min(candidates.len());
    let mut order: Vec<usize> = candidates.to_vec();
    order.sort_by_key(|index| {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (seed, index).hash(&mut hasher);
        hasher.finish()
    });
    order
        .into_iter()
        .take(count)
        .enumerate()
        .map(|(k, leaving)| ChurnEvent {
            at: duration.mul_f64((k as f64 + 0.5) / count as f64),
            leaving,
            joining: first_new_host + k,
            crash: k % 2 == 0,
        })
        .collect()
}

/// Checks `--churn`.
pub(crate) fn check(percent_per_minute: f64) -> anyhow::Result<()> {
    anyhow::ensure!(
        percent_per_minute.is_finite() && percent_per_minute > 0.0 && percent_per_minute <= 100.0,
        "--churn {percent_per_minute}: percent of the nodes per minute, above 0 and at most 100"
    );
    Ok(())
}

/// What the churn did.
pub(crate) struct Churned {
    /// The joiners, running.
    pub joined: Vec<SimNode>,
    /// When each joiner started.
    pub join_started: Vec<Instant>,
}

/// Runs `events` from `started`: each leaver stops (crashing when the event says so), then
/// `join` starts a node on the joining host.
pub(crate) async fn run<F, Fut>(
    events: &[ChurnEvent],
    nodes: &[SimNode],
    hosts: &Hosts,
    started: Instant,
    join: F,
) -> anyhow::Result<Churned>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<SimNode>>,
{
    let mut churned = Churned { joined: Vec::new(), join_started: Vec::new() };
    for event in events {
        tokio::time::sleep_until((started + event.at).into()).await;
        if event.crash {
            hosts.crash(event.leaving).await?;
        }
        if let Some(node) = nodes.get(event.leaving) {
            node.shutdown().await;
        }
        churned.join_started.push(Instant::now());
        churned.joined.push(join(event.joining).await?);
    }
    Ok(churned)
}

/// `results.json`'s `churn`.
#[derive(Debug, Serialize)]
pub(crate) struct ChurnFigures {
    pub percent_per_minute: f64,
    /// Nodes that left (as many joined).
    pub left: usize,
    pub crashed: usize,
    /// Nodes there throughout, fleet included: `delivery_ratio` and `propagation_ms` are theirs.
    pub stayed: usize,
    /// Joiners at the relay target by the end (they had up to `--limit`).
    pub joined_reached_target: usize,
    /// From each joiner's start to its relay target.
    pub joined_bootstrap_seconds: Spread,
}

/// Waits until every joiner has its relay target or `limit` from its start; their times.
pub(crate) async fn joiners_bootstrap(churned: &Churned, limit: Duration) -> Vec<Option<Duration>> {
    let waits =
        churned.joined.iter().zip(&churned.join_started).map(|(node, started)| async move {
            let deadline = *started + limit;
            loop {
                let stats = node.stats().await.ok()?;
                if stats.time_to_target.is_some() || Instant::now() >= deadline {
                    return stats.time_to_target;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    futures::future::join_all(waits).await
}

/// The figures from the schedule and the joiners' times.
pub(crate) fn figures(
    events: &[ChurnEvent],
    percent_per_minute: f64,
    stayed: usize,
    joined: &[Option<Duration>],
) -> ChurnFigures {
    let mut times: Vec<Duration> = joined.iter().flatten().copied().collect();
    times.sort_unstable();
    ChurnFigures {
        percent_per_minute,
        left: events.len(),
        crashed: events.iter().filter(|e| e.crash).count(),
        stayed,
        joined_reached_target: times.len(),
        joined_bootstrap_seconds: spread(&times),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_takes_the_share_evenly_once_each_on_new_hosts() {
        let candidates: Vec<usize> = (50..1000).collect();
        let minute = Duration::from_secs(60);
        assert_eq!(leaving_count(950, 10.0, minute), 95);
        assert_eq!(leaving_count(950, 10.0, minute / 2), 48);
        assert_eq!(leaving_count(37, 60.0, Duration::from_secs(10)), 4);
        let events = schedule(&candidates, 95, minute, 1, 1000);
        assert_eq!(events.len(), 95);
        let mut leaving: Vec<usize> = events.iter().map(|e| e.leaving).collect();
        leaving.sort_unstable();
        leaving.dedup();
        assert_eq!(leaving.len(), 95, "each node leaves at most once");
        assert!(leaving.iter().all(|i| candidates.contains(i)));
        assert_eq!(
            events.iter().map(|e| e.joining).collect::<Vec<_>>(),
            (1000..1095).collect::<Vec<_>>()
        );
        assert!(events.windows(2).all(|w| w[0].at < w[1].at));
        assert!(events.last().is_some_and(|e| e.at < minute));
        assert_eq!(events.iter().filter(|e| e.crash).count(), 48);
        // Another seed: others leave.
        assert_ne!(schedule(&candidates, 95, minute, 2, 1000)[0].leaving, events[0].leaving);
        // Never more than there are.
        assert_eq!(schedule(&[3, 4], 10, minute, 1, 10).len(), 2);
        assert!(schedule(&[], 10, minute, 1, 10).is_empty());
    }

    #[test]
    fn churn_rates_are_percentages() {
        assert!(check(10.0).is_ok());
        for bad in [0.0, -1.0, 101.0, f64::NAN] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
