//! The node's integration tests, one binary (one link): real sockets on 127.0.0.1, real
//! Postgres, and js-waku from npm as the peer nobody here wrote.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "../support/fleet_ca.rs"]
mod fleet_ca;

mod archive;
mod connections;
mod discv5;
mod filter;
mod js_waku;
mod lifecycle;
mod lightpush;
mod listen;
mod peer_exchange;
mod relay;
mod store;
mod store_faults;
mod wss;
