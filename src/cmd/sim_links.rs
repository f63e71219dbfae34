//! The simulation's network: where each simulated host is (its own loopback address and /24),
//! how long a round trip between two hosts takes, how fast each direction of a link carries
//! (`wakufleet sim --rtt … --link-mbit …`), and which hosts have crashed.
//!
//! Each pair of node addresses gets one round-trip time, drawn once from the model by hashing
//! the pair (the same whichever end asks, the same in every run with the same seed). The node's
//! transport holds what it reads back for half of it ([`node::tcp_transport::Shaper`]), so a
//! byte crosses in half the round trip each way. Only TCP is shaped: discv5's UDP and the DNS
//! queries cross at loopback speed.

use std::{
    fmt,
    hash::{Hash, Hasher},
    net::{IpAddr, Ipv4Addr},
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use node::tcp_transport::{Link, LinkModel};

/// The second octet of the first host's address.
const FIRST_B: usize = 16;
/// Hosts per second octet: one per /24, `.1` in each.
const PER_B: usize = 250;

/// Host `index`'s address: its own /24.
pub(crate) fn address(index: usize) -> anyhow::Result<Ipv4Addr> {
    let b = FIRST_B + index / PER_B;
    let c = index % PER_B;
    let b = u8::try_from(b).ok().filter(|b| *b < 255).with_context(|| {
        format!("at most {} nodes: one /24 each, 127.16.0.0 to 127.254.249.0", (255 - 16) * 250)
    })?;
    Ok(Ipv4Addr::new(127, b, c as u8, 1))
}

/// The host at `ip`, if it is one of [`address`]'s.
pub(crate) fn index_of(ip: IpAddr) -> Option<usize> {
    let IpAddr::V4(ip) = ip else { return None };
    let [a, b, c, d] = ip.octets();
    let (b, c) = (usize::from(b), usize::from(c));
    (a == 127 && d == 1 && b >= FIRST_B && c < PER_B).then(|| (b - FIRST_B) * PER_B + c)
}

/// How round-trip times are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RttModel {
    /// Loopback as it is (well under a millisecond).
    None,
    /// Every link the same. nwaku's Shadow runs gave every path 100 ms of one-way latency: a
    /// round trip of 200 ms here.
    Fixed(Duration),
    /// Uniform between the two, per link: hosts spread over a continent or two.
    Uniform(Duration, Duration),
}

impl FromStr for RttModel {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parse = |part: &str| {
            humantime::parse_duration(part.trim())
                .map_err(|e| format!("{part:?} is not a duration such as 100ms: {e}"))
        };
        if text == "none" {
            return Ok(Self::None);
        }
        match text.split_once('-') {
            None => Ok(Self::Fixed(parse(text)?)),
            Some((low, high)) => {
                let (low, high) = (parse(low)?, parse(high)?);
                if low > high {
                    return Err(format!("{text:?}: the lower bound is above the upper one"));
                }
                Ok(Self::Uniform(low, high))
            }
        }
    }
}

impl fmt::Display for RttModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: &Duration| d.as_millis();
        match self {
            Self::None => f.write_str("none"),
            Self::Fixed(rtt) => write!(f, "{}ms", ms(rtt)),
            Self::Uniform(low, high) => write!(f, "{}ms-{}ms", ms(low), ms(high)),
        }
    }
}

/// The links of one simulation: round trips from the model, one rate for every link, and the
/// hosts that crashed (every link to them cut).
#[derive(Debug, Clone)]
pub(crate) struct SimLinks {
    pub rtt: RttModel,
    pub bytes_per_sec: Option<u64>,
    pub seed: u64,
    /// How many times slower than real time the network runs (`--slowdown`) once
    /// [`Self::stretch`] is called: from then on every delay on the wire stretched by it,
    /// every rate divided by it.
    slowdown: u32,
    /// Whether the links are stretched yet (shared by every clone in the process).
    stretched: Arc<AtomicBool>,
    /// Per host: [`CRASHED`] and [`REFUSES`].
    hosts: Arc<Vec<AtomicU8>>,
}

/// The host is down: its links carry nothing.
const CRASHED: u8 = 1;
/// The host takes no connection (behind NAT or a firewall) but dials out.
const REFUSES: u8 = 2;

impl SimLinks {
    /// Links among `hosts` hosts.
    pub(crate) fn new(rtt: RttModel, bytes_per_sec: Option<u64>, seed: u64, hosts: usize) -> Self {
        let hosts = Arc::new((0..hosts).map(|_| AtomicU8::new(0)).collect());
        Self { rtt, bytes_per_sec, seed, slowdown: 1, stretched: Arc::default(), hosts }
    }

    /// The same links, to run `slowdown` times slower than real time (at least 1) once
    /// stretched.
    pub(crate) fn slowed(self, slowdown: u32) -> Self {
        Self { slowdown: slowdown.max(1), ..self }
    }

    /// From now on the links run [`Self::slowdown`] times slower. The sim stretches them for
    /// the messages only: a whole network's bootstrap over links four times slower (800 ms
    /// round trips) left most of 1,000 nodes short of their relay target after two minutes.
    pub(crate) fn stretch(&self) {
        self.stretched.store(true, Ordering::Relaxed);
    }

    /// Host `index` crashes: from now on its links carry nothing, and its peers hear nothing.
    pub(crate) fn crash(&self, index: usize) {
        if let Some(flags) = self.hosts.get(index) {
            flags.fetch_or(CRASHED, Ordering::Relaxed);
        }
    }

    /// Host `index` refuses every connection from now on, but dials out.
    pub(crate) fn refuse_connections(&self, index: usize) {
        if let Some(flags) = self.hosts.get(index) {
            flags.fetch_or(REFUSES, Ordering::Relaxed);
        }
    }

    fn has(&self, ip: IpAddr, flag: u8) -> bool {
        index_of(ip)
            .and_then(|i| self.hosts.get(i))
            .is_some_and(|flags| flags.load(Ordering::Relaxed) & flag != 0)
    }

    fn is_crashed(&self, ip: IpAddr) -> bool {
        self.has(ip, CRASHED)
    }

    /// The round trip between `a` and `b`.
    pub(crate) fn rtt(&self, a: IpAddr, b: IpAddr) -> Duration {
        match self.rtt {
            RttModel::None => Duration::ZERO,
            RttModel::Fixed(rtt) => rtt,
            RttModel::Uniform(low, high) => {
                let (first, second) = if a <= b { (a, b) } else { (b, a) };
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                (self.seed, first, second).hash(&mut hasher);
                // 53 bits of the hash as a fraction in [0, 1).
                let fraction = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64;
                low + (high - low).mul_f64(fraction)
            }
        }
    }
}

impl LinkModel for SimLinks {
    fn link(&self, a: IpAddr, b: IpAddr) -> Link {
        // `slowed` keeps it at least 1.
        let slowdown = if self.stretched.load(Ordering::Relaxed) { self.slowdown } else { 1 };
        Link {
            one_way: self.rtt(a, b) * slowdown / 2,
            bytes_per_sec: self.bytes_per_sec.map(|rate| (rate / u64::from(slowdown)).max(1)),
        }
    }

    fn severed(&self, a: IpAddr, b: IpAddr) -> bool {
        self.is_crashed(a) || self.is_crashed(b)
    }

    fn refuses(&self, to: IpAddr) -> bool {
        self.has(to, REFUSES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_parse_and_print_back() {
        for text in ["none", "100ms", "40ms-130ms"] {
            let model: RttModel = text.parse().unwrap();
            assert_eq!(model.to_string(), text);
        }
        assert_eq!("1s".parse::<RttModel>(), Ok(RttModel::Fixed(Duration::from_secs(1))));
        for bad in ["", "fast", "130ms-40ms", "40ms-"] {
            assert!(bad.parse::<RttModel>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_link_has_one_round_trip_inside_the_range_and_they_spread() {
        let links = SimLinks::new("40ms-130ms".parse().unwrap(), None, 7, 50);
        let ip = |i: u8| IpAddr::from([127, 16, i, 1]);
        let mut drawn = Vec::new();
        for i in 0..50 {
            for j in (i + 1)..50 {
                let rtt = links.rtt(ip(i), ip(j));
                assert_eq!(rtt, links.rtt(ip(j), ip(i)), "the same both ways");
                assert_eq!(links.link(ip(i), ip(j)).one_way, rtt / 2);
                assert!((40..=130).contains(&rtt.as_millis()), "{rtt:?}");
                drawn.push(rtt.as_secs_f64());
            }
        }
        let mean = drawn.iter().sum::<f64>() / drawn.len() as f64;
        assert!((0.080..0.090).contains(&mean), "mean {mean}");
        let below_60 = drawn.iter().filter(|&&r| r < 0.060).count() as f64 / drawn.len() as f64;
        assert!((0.17..0.28).contains(&below_60), "{below_60}");
        // Another seed, other draws.
        let other = SimLinks::new(links.rtt, None, 8, 50);
        assert_ne!(other.rtt(ip(1), ip(2)), links.rtt(ip(1), ip(2)));
    }

    #[test]
    fn a_slowed_network_stretches_every_delay_and_divides_every_rate() {
        let ip = |i: u8| IpAddr::from([127, 16, i, 1]);
        let real = SimLinks::new("40ms-130ms".parse().unwrap(), Some(1_000_000), 7, 10);
        let slowed = real.clone().slowed(4);
        // Until stretched the links are the network's own (the nodes bootstrap at full speed).
        assert_eq!(slowed.link(ip(1), ip(2)).one_way, real.link(ip(1), ip(2)).one_way);
        slowed.clone().stretch();
        for (a, b) in [(1, 2), (3, 9)] {
            let (fast, slow) = (real.link(ip(a), ip(b)), slowed.link(ip(a), ip(b)));
            assert_eq!(slow.one_way, fast.one_way * 4);
            assert_eq!(slow.bytes_per_sec, Some(250_000));
            // The round trip the model draws is the network's own, the same in both.
            assert_eq!(slowed.rtt(ip(a), ip(b)), real.rtt(ip(a), ip(b)));
        }
        let zero = real.slowed(0);
        zero.stretch();
        assert_eq!(zero.link(ip(1), ip(2)).one_way, slowed.link(ip(1), ip(2)).one_way / 4);
    }

    #[test]
    fn addresses_map_back_to_their_hosts_and_crashes_cut_every_link_of_a_host() {
        for index in [0, 1, 249, 250, 999, 59_749] {
            let ip = IpAddr::V4(address(index).unwrap());
            assert_eq!(index_of(ip), Some(index), "{ip}");
        }
        assert!(address(59_750).is_err());
        for other in ["127.0.0.1", "127.16.0.2", "10.16.0.1", "::1"] {
            assert_eq!(index_of(other.parse().unwrap()), None, "{other}");
        }
        let links = SimLinks::new(RttModel::None, None, 1, 10);
        let ip = |i| IpAddr::V4(address(i).unwrap());
        assert!(!links.severed(ip(1), ip(2)));
        links.crash(2);
        assert!(links.severed(ip(1), ip(2)) && links.severed(ip(2), ip(3)));
        assert!(!links.severed(ip(1), ip(3)));
        links.clone().crash(99); // beyond the hosts: nothing
    }

    #[test]
    fn a_host_that_refuses_connections_is_refused_by_everyone_and_still_linked() {
        let links = SimLinks::new(RttModel::None, None, 1, 10);
        let ip = |i| IpAddr::V4(address(i).unwrap());
        links.refuse_connections(4);
        assert!(links.refuses(ip(4)));
        assert!(!links.refuses(ip(5)));
        assert!(!links.severed(ip(4), ip(5)), "its own connections carry data");
        links.crash(4);
        assert!(links.refuses(ip(4)) && links.severed(ip(4), ip(5)));
    }
}
