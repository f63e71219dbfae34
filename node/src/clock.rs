//! The wall clock, read in one place. Every Unix timestamp wakufleet writes — Waku message
//! timestamps (ns), database columns and report times (ms), TSIG times (s) — comes from
//! [`now_ns`], so a test or a port to another clock source changes one function.

use std::time::{SystemTime, UNIX_EPOCH};

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
}
