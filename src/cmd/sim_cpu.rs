//! How busy the machine's cores were during a phase of the sim: a run whose cores were all
//! busy measured the machine (its queues), not the protocol, and its figures must say so.

use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;

/// Above this share of every core the run is taken as CPU-bound.
pub(crate) const SATURATED: f64 = 0.9;

/// Linux reports process times in USER_HZ ticks, fixed at 100 for user space on every
/// architecture Linux runs on (`sysconf(_SC_CLK_TCK)`).
const TICKS_PER_SECOND: f64 = 100.0;

/// The CPU time (user + system, every thread) of the processes `pids`, in seconds.
fn cpu_seconds(pids: &[u32]) -> anyhow::Result<f64> {
    let mut seconds = 0.0;
    for pid in pids {
        let path = format!("/proc/{pid}/stat");
        let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        seconds += parse_cpu_seconds(&stat).with_context(|| format!("{path} has no utime"))?;
    }
    Ok(seconds)
}

/// `utime` and `stime` are fields 14 and 15; the command name (field 2) is in parentheses and
/// may hold spaces, so fields are counted after its closing parenthesis.
fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / TICKS_PER_SECOND)
}

/// A phase being timed: the sim's CPU time and the wall clock at its start.
pub(crate) struct Phase {
    cpu_seconds: f64,
    started: Instant,
}

impl Phase {
    /// From now, over the processes `pids` (the sim and the workers running yet).
    pub(crate) fn start(pids: &[u32]) -> anyhow::Result<Self> {
        Ok(Self { cpu_seconds: cpu_seconds(pids)?, started: Instant::now() })
    }

    /// Share of all the machine's cores the processes `pids` used since the phase started
    /// (0–1); a process started since counts whole.
    pub(crate) fn busy_share(&self, pids: &[u32]) -> anyhow::Result<f64> {
        let used = cpu_seconds(pids)? - self.cpu_seconds;
        let wall = self.started.elapsed().as_secs_f64();
        Ok(if wall > 0.0 { (used / (wall * cores() as f64)).min(1.0) } else { 0.0 })
    }
}

/// `results.json` → `cpu_busy`: share of the machine's cores the sim used, per phase.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct CpuBusy {
    pub(crate) cores: usize,
    /// From the first start until every node reached its target (or the limit).
    pub(crate) bootstrap: f64,
    /// While messages flowed (scenarios that send them).
    pub(crate) traffic: Option<f64>,
}

impl CpuBusy {
    /// Whether a phase kept every core busy: its times are the machine's queues.
    pub(crate) fn saturated(&self) -> bool {
        self.bootstrap >= SATURATED || self.traffic.is_some_and(|t| t >= SATURATED)
    }
}

pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 2411 0 0 0 1234 566 0 0 20 0 \
                    9 0 100 0 0";
        assert_eq!(parse_cpu_seconds(stat), Some(18.0));
        assert_eq!(parse_cpu_seconds("4242 (x) S 1 2"), None);
        assert_eq!(parse_cpu_seconds("no name"), None);
    }

    #[test]
    fn this_process_shows_the_cpu_it_burns() {
        let me = [std::process::id()];
        let phase = Phase::start(&me).unwrap();
        let before = cpu_seconds(&me).unwrap();
        // Spin until the process's clock moved by a few ticks (a loaded machine may take
        // longer to give this thread the time; ten seconds is far beyond that).
        let give_up = Instant::now() + std::time::Duration::from_secs(10);
        let mut spin = 0u64;
        while cpu_seconds(&me).unwrap() - before < 0.05 && Instant::now() < give_up {
            spin = spin.wrapping_add(1);
        }
        assert!(cpu_seconds(&me).unwrap() - before >= 0.05, "the clock never moved");
        let share = phase.busy_share(&me).unwrap();
        assert!(share > 0.0 && share <= 1.0, "{share}");
        // A process that is not there is an error, not nothing.
        assert!(cpu_seconds(&[u32::MAX]).is_err());
        assert!(spin > 0);
    }
}
