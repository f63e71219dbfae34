//! Ports for tests and benchmarks that must name an address before a process binds it.
//!
//! "Bind port 0, read the port, close it" hands out a port from the kernel's ephemeral range,
//! where any other socket of the machine (another test's port-0 bind, the local end of an
//! outgoing TCP connection) may take it before the child process binds it: CI saw
//! `Address already in use` that way. Ports here come from below the ephemeral range, which the
//! kernel never hands out on its own, start at a random offset (so two test binaries rarely
//! walk the same ports), and are free for TCP and UDP alike (a DNS server binds both). They
//! stay in [`FLOOR`]..[`CEILING`]: the ports from there to the ephemeral range are left to runs
//! that need whole blocks of ports at fixed offsets (the README walkthrough's fleet).

use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

/// Lowest port handed out: above the well-known and most registered service ports.
pub const FLOOR: u16 = 10_000;
/// One past the highest port handed out (unless the ephemeral range starts lower).
pub const CEILING: u16 = 20_000;

/// A port on 127.0.0.1 that is free for TCP and UDP right now and outside the ephemeral range.
/// Falls back to a kernel-chosen port when the ephemeral range leaves no room below it.
pub fn free_port() -> u16 {
    let ceiling = ephemeral_floor().unwrap_or(32_768).min(CEILING);
    if ceiling > FLOOR + 1_000 {
        let span = u32::from(ceiling - FLOOR);
        static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
        let _ = NEXT.compare_exchange(
            u32::MAX,
            random_u32() % span,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        for _ in 0..span {
            let offset = NEXT.fetch_add(1, Ordering::SeqCst) % span;
            // `offset < span`, so the port is below `ceiling` and fits u16.
            let port = FLOOR + offset as u16;
            if free_for_both(port) {
                return port;
            }
        }
    }
    loop {
        let Ok(tcp) = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)) else { continue };
        let Ok(port) = tcp.local_addr().map(|a| a.port()) else { continue };
        if UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

fn free_for_both(port: u16) -> bool {
    let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, port));
    let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, port));
    tcp.is_ok() && udp.is_ok()
}

/// The first port of the kernel's ephemeral range (Linux), if it can be read.
fn ephemeral_floor() -> Option<u16> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    range.split_whitespace().next()?.parse().ok()
}

fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    crate::crypto::random_bytes(&mut bytes);
    u32::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_distinct_and_bindable_for_both() {
        let ceiling = ephemeral_floor().unwrap_or(32_768).min(CEILING);
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        for port in ports {
            assert!((FLOOR..ceiling).contains(&port), "{port} outside {FLOOR}..{ceiling}");
            assert!(free_for_both(port), "{port}");
        }
    }
}
