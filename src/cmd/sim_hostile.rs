//! Who misbehaves in the `hostile` scenario: among the nodes that are not the fleet's, a share
//! that refuses every connection while discv5 still finds them (hosts behind NAT or a firewall
//! that advertise an address nobody can reach: each dial to them is wasted), and a share that
//! takes messages and passes none on (free riders in the mesh). Everything else is honest, and
//! the scenario's figures are the honest nodes': do they still bootstrap, and does every
//! message still reach them?

use serde::Serialize;

use super::sim::Spread;

/// How a node behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Role {
    Honest,
    /// Discoverable, takes no connection, dials out.
    Unreachable,
    /// Relays nothing it receives.
    NonRelaying,
}

/// Roles for `nodes` nodes of which the first `fleet` are the fleet's (always honest): the
/// shares of the rest, spread evenly over them (a low-discrepancy sequence, so any stretch of
/// nodes holds about the same mix).
pub(crate) fn roles(fleet: usize, nodes: usize, unreachable: f64, non_relaying: f64) -> Vec<Role> {
    // The golden ratio's fractional part: each next fraction falls in the largest gap.
    const STEP: f64 = 0.618_033_988_749_895;
    (0..nodes)
        .map(|index| {
            if index < fleet {
                return Role::Honest;
            }
            let u = ((index - fleet) as f64 * STEP).fract();
            if u < unreachable {
                Role::Unreachable
            } else if u < unreachable + non_relaying {
                Role::NonRelaying
            } else {
                Role::Honest
            }
        })
        .collect()
}

/// Checks `--unreachable` and `--non-relaying`.
pub(crate) fn check(unreachable: f64, non_relaying: f64) -> anyhow::Result<()> {
    for (name, share) in [("--unreachable", unreachable), ("--non-relaying", non_relaying)] {
        anyhow::ensure!(
            share.is_finite() && (0.0..=1.0).contains(&share),
            "{name} {share}: a share of the nodes, 0 to 1"
        );
    }
    anyhow::ensure!(
        unreachable + non_relaying < 1.0,
        "--unreachable {unreachable} and --non-relaying {non_relaying} leave no honest node"
    );
    Ok(())
}

/// `results.json`'s `hostile`: the misbehaving nodes, and what they cost the honest ones.
#[derive(Debug, Serialize)]
pub(crate) struct Hostile {
    pub unreachable: usize,
    pub non_relaying: usize,
    /// Honest nodes (the fleet's among them); every other figure of `results.json` is theirs.
    pub honest: usize,
    /// Dials that failed, per honest node, by the end.
    pub dials_failed_per_honest_node: f64,
    /// Unreachable nodes that reached the relay target anyway, by dialing out.
    pub unreachable_reached_target: usize,
    /// From start to the relay target, unreachable nodes that reached it.
    pub unreachable_bootstrap_seconds: Spread,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_kept_and_spread_and_the_fleet_is_honest() {
        let roles = roles(50, 1050, 0.2, 0.1);
        assert!(roles[..50].iter().all(|r| *r == Role::Honest));
        let count = |role, range: std::ops::Range<usize>| {
            roles[range].iter().filter(|r| **r == role).count()
        };
        assert!((195..=205).contains(&count(Role::Unreachable, 50..1050)));
        assert!((95..=105).contains(&count(Role::NonRelaying, 50..1050)));
        // Any hundred clients in a row hold about the same mix.
        for start in (50..950).step_by(100) {
            let unreachable = count(Role::Unreachable, start..start + 100);
            assert!((17..=23).contains(&unreachable), "{start}: {unreachable}");
        }
        assert!(self::roles(3, 20, 0.0, 0.0).iter().all(|r| *r == Role::Honest));
    }

    #[test]
    fn shares_must_leave_honest_nodes() {
        assert!(check(0.2, 0.2).is_ok());
        assert!(check(0.0, 0.0).is_ok());
        assert!(check(0.6, 0.4).is_err());
        assert!(check(-0.1, 0.0).is_err());
        assert!(check(f64::NAN, 0.0).is_err());
        assert!(check(0.0, 1.5).is_err());
    }
}
