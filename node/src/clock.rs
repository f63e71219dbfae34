//! The wall clock, read in one place. Every Unix timestamp wakufleet writes — Waku message
//! timestamps (ns), database columns and report times (ms), TSIG times (s) — comes from
//! [`now_ns`], so a port to another clock source changes one function.
//!
//! Code whose decisions depend on time (the controller's health, trees, rollouts, leases) takes
//! a [`Clock`] instead, so a test moves time forward instead of sleeping through it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Where time comes from, for code a test must be able to move through time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Unix time in milliseconds.
    fn now_ms(&self) -> i64;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// For tests: the wall clock plus an offset the test moves forward ([`TestClock::advance`]).
/// Time still flows, so everything that waits on real sockets keeps working; what waits on
/// the clock (a retirement window, a lease, a report's age) is reached at once.
#[derive(Debug, Clone, Default)]
pub struct TestClock {
    offset_ms: Arc<AtomicI64>,
}

impl TestClock {
    /// A clock at the wall clock's time.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves this clock (and every clone of it) forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        now_ms().saturating_add(self.offset_ms.load(Ordering::SeqCst))
    }
}

/// Unix time in nanoseconds (Waku's timestamp unit); 0 before 1970, `i64::MAX` after 2262.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    now_ns() / 1_000_000
}

/// Unix time in seconds.
pub fn now_secs() -> u64 {
    u64::try_from(now_ns() / 1_000_000_000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_agree() {
        let (ns, ms, s) = (now_ns(), now_ms(), now_secs());
        // 2020-01-01 in each unit: the clock is past it and the units line up.
        assert!(ns > 1_577_836_800_000_000_000);
        assert!((ms - ns / 1_000_000).abs() < 1_000);
        assert!((s as i64 - ns / 1_000_000_000).abs() < 2);
    }

    #[test]
    fn a_test_clock_jumps_forward_for_every_clone() {
        let clock = TestClock::new();
        let other = clock.clone();
        let before = clock.now_ms();
        clock.advance(Duration::from_secs(3600));
        let after = other.now_ms();
        assert!((3_600_000..3_610_000).contains(&(after - before)), "{}", after - before);
        assert!((SystemClock.now_ms() - now_ms()).abs() < 1000);
    }
}
