//! Response-rate limiting for the built-in DNS server, as Knot and BIND do it (RRL).
//!
//! A tree's answers are several times the size of the query that asks for them, so an open
//! authoritative server is an amplifier: spoofed UDP queries aim its answers at a victim. Over
//! UDP each client prefix (/24 for IPv4, /56 for IPv6: one network, not one address, since a
//! spoofer can pick any address in it) gets `responses_per_second` answers, with a burst of one
//! second's worth. Past that, every `slip`-th limited query gets an empty answer with TC=1
//! (a real client retries over TCP, which a spoofed source cannot complete; the victim gets
//! nothing larger than the query), the rest get nothing; `slip = 0` drops them all. TCP is not
//! limited: its handshake proves the address.
//!
//! The table is bounded: at [`MAX_PREFIXES`] prefixes, idle ones (full buckets) are dropped;
//! if none is idle (a flood from more prefixes than that), every prefix not in the table
//! shares one bucket, so memory stays bounded and the flood is still limited.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Prefixes tracked at most.
pub const MAX_PREFIXES: usize = 65_536;

/// How an answer to one UDP query is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the prefix's rate: the answer as usual.
    Answer,
    /// Limited: an empty answer with TC=1, so a real client retries over TCP.
    Slip,
    /// Limited: nothing.
    Drop,
}

/// The limits: `[dns] rate-limit`, `rate-limit-slip`, `rate-limit-loopback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Answers per second per client prefix over UDP; 0 turns limiting off.
    pub responses_per_second: u32,
    /// Every `slip`-th limited query is answered truncated; 0: none.
    pub slip: u32,
    /// Whether loopback clients are limited too (on one host every client is 127.0.0.1:
    /// the local tools and tests; off unless a test floods from loopback).
    pub limit_loopback: bool,
}

impl Default for RateLimit {
    /// Knot's documented example: 20 answers a second per prefix, every limited one slipped.
    fn default() -> Self {
        Self { responses_per_second: 20, slip: 1, limit_loopback: false }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    limited: u64,
}

/// The per-prefix buckets.
#[derive(Debug)]
pub struct ResponseRateLimiter {
    limit: RateLimit,
    table: Mutex<Table>,
    slipped: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Debug)]
struct Table {
    buckets: HashMap<IpAddr, Bucket>,
    /// Shared by prefixes that found the table full.
    overflow: Option<Bucket>,
    /// When idle prefixes were last forgotten: a sweep walks the whole table, so at most one a
    /// second, however many newcomers find it full.
    swept: Option<Instant>,
}

/// Counts of what the limiter decided, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limited {
    /// Answers replaced by TC=1.
    pub slipped: u64,
    /// Answers not sent.
    pub dropped: u64,
}

impl ResponseRateLimiter {
    /// A limiter with `limit`; `None` when limiting is off.
    pub fn new(limit: RateLimit) -> Option<Self> {
        (limit.responses_per_second > 0).then(|| Self {
            limit,
            table: Mutex::new(Table { buckets: HashMap::new(), overflow: None, swept: None }),
            slipped: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    /// What to send for one UDP query from `client` at `now`.
    pub fn check(&self, client: IpAddr, now: Instant) -> Verdict {
        // An IPv4 client of a dual-stack (`[::]`) socket arrives v4-mapped (::ffff:127.0.0.1):
        // it is the IPv4 client it maps, for loopback and for its prefix alike.
        let client = client.to_canonical();
        if client.is_loopback() && !self.limit.limit_loopback {
            return Verdict::Answer;
        }
        let rate = f64::from(self.limit.responses_per_second);
        let fresh = Bucket { tokens: rate, updated: now, limited: 0 };
        let Ok(mut table) = self.table.lock() else {
            return Verdict::Answer;
        };
        let prefix = prefix(client);
        let sweep_due = table
            .swept
            .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
        if table.buckets.len() >= MAX_PREFIXES && sweep_due && !table.buckets.contains_key(&prefix)
        {
            // Idle prefixes have refilled to a full bucket: forgetting them changes nothing.
            table.buckets.retain(|_, b| refill(b, now, rate) < rate);
            table.swept = Some(now);
        }
        let bucket = if table.buckets.len() < MAX_PREFIXES || table.buckets.contains_key(&prefix) {
            table.buckets.entry(prefix).or_insert(fresh)
        } else {
            table.overflow.get_or_insert(fresh)
        };
        bucket.tokens = refill(bucket, now, rate);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Verdict::Answer;
        }
        bucket.limited += 1;
        let verdict = match self.limit.slip {
            0 => Verdict::Drop,
            slip if bucket.limited.is_multiple_of(u64::from(slip)) => Verdict::Slip,
            _ => Verdict::Drop,
        };
        let counter = if verdict == Verdict::Slip { &self.slipped } else { &self.dropped };
        counter.fetch_add(1, Ordering::Relaxed);
        verdict
    }

    /// Answers slipped and dropped so far.
    pub fn limited(&self) -> Limited {
        Limited {
            slipped: self.slipped.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }

    /// Prefixes tracked now (bounded by [`MAX_PREFIXES`]).
    pub fn tracked(&self) -> usize {
        self.table.lock().map(|t| t.buckets.len()).unwrap_or(0)
    }
}

/// The bucket's tokens at `now`: refilled at `rate` a second, at most one second's worth.
fn refill(bucket: &Bucket, now: Instant, rate: f64) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.updated).min(Duration::from_secs(1));
    (bucket.tokens + elapsed.as_secs_f64() * rate).min(rate)
}

/// The client's network: the /24 of an IPv4 address, the /56 of an IPv6 one.
fn prefix(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::from([a, b, c, 0])
        }
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[7..].fill(0);
            IpAddr::from(octets)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn limiter(rate: u32, slip: u32) -> ResponseRateLimiter {
        ResponseRateLimiter::new(RateLimit {
            responses_per_second: rate,
            slip,
            limit_loopback: false,
        })
        .unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_prefix_gets_its_rate_then_slips_and_drops_and_refills() {
        let rrl = limiter(10, 2);
        let now = Instant::now();
        let verdicts: Vec<Verdict> = (0..14).map(|_| rrl.check(ip("192.0.2.7"), now)).collect();
        assert!(verdicts[..10].iter().all(|v| *v == Verdict::Answer), "{verdicts:?}");
        assert_eq!(verdicts[10..], [Verdict::Drop, Verdict::Slip, Verdict::Drop, Verdict::Slip]);
        // The same /24 shares the bucket; another /24 does not.
        assert_ne!(rrl.check(ip("192.0.2.200"), now), Verdict::Answer);
        assert_eq!(rrl.check(ip("192.0.3.7"), now), Verdict::Answer);
        // Half a second later, half the rate is back.
        let later = now + Duration::from_millis(500);
        let answered = (0..10).filter(|_| rrl.check(ip("192.0.2.7"), later) == Verdict::Answer);
        assert_eq!(answered.count(), 5);
    }

    #[test]
    fn slip_zero_drops_everything_limited_and_loopback_is_exempt_unless_asked() {
        let rrl = limiter(1, 0);
        let now = Instant::now();
        assert_eq!(rrl.check(ip("198.51.100.1"), now), Verdict::Answer);
        assert_eq!(rrl.check(ip("198.51.100.1"), now), Verdict::Drop);
        assert!((0..100).all(|_| rrl.check(ip("127.0.0.1"), now) == Verdict::Answer));
        // The same loopback client seen through a dual-stack socket.
        assert!((0..100).all(|_| rrl.check(ip("::ffff:127.0.0.1"), now) == Verdict::Answer));
        assert!((0..100).all(|_| rrl.check(ip("::1"), now) == Verdict::Answer));
        let strict = ResponseRateLimiter::new(RateLimit {
            responses_per_second: 1,
            slip: 1,
            limit_loopback: true,
        })
        .unwrap();
        assert_eq!(strict.check(ip("127.0.0.1"), now), Verdict::Answer);
        assert_eq!(strict.check(ip("127.0.0.9"), now), Verdict::Slip);
        assert!(
            ResponseRateLimiter::new(RateLimit { responses_per_second: 0, ..RateLimit::default() })
                .is_none()
        );
    }

    #[test]
    fn ipv6_clients_share_a_slash_56_and_mapped_ipv4_its_slash_24() {
        let rrl = limiter(1, 1);
        let now = Instant::now();
        assert_eq!(rrl.check(ip("2001:db8:0:ab00::1"), now), Verdict::Answer);
        assert_eq!(rrl.check(ip("2001:db8:0:abff:ffff::2"), now), Verdict::Slip);
        assert_eq!(rrl.check(ip("2001:db8:0:ac00::1"), now), Verdict::Answer);
        assert_eq!(rrl.check(ip("::ffff:203.0.113.5"), now), Verdict::Answer);
        assert_eq!(rrl.check(ip("203.0.113.99"), now), Verdict::Slip);
    }

    #[test]
    fn a_flood_from_many_prefixes_keeps_the_table_bounded_and_still_limits() {
        let rrl = limiter(2, 1);
        let now = Instant::now();
        for i in 0..(MAX_PREFIXES as u32 + 5_000) {
            let [_, a, b, c] = i.to_be_bytes();
            rrl.check(IpAddr::from([11 + a, b, c, 1]), now);
        }
        assert!(rrl.tracked() <= MAX_PREFIXES, "{}", rrl.tracked());
        // Prefixes that found the table full share one bucket: its two answers are spent.
        let newcomer = ip("100.64.1.1");
        let verdicts: Vec<Verdict> = (0..3).map(|_| rrl.check(newcomer, now)).collect();
        assert!(verdicts.contains(&Verdict::Slip), "{verdicts:?}");
        // A second later idle prefixes are forgotten and newcomers get their own bucket.
        let later = now + Duration::from_secs(2);
        assert_eq!(rrl.check(ip("100.64.2.1"), later), Verdict::Answer);
        assert!(rrl.tracked() < 10, "{}", rrl.tracked());
    }
}
