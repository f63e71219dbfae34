//! The embedded Waku v2 node of wakufleet, and the pieces every role shares.
//!
//! # Layout
//!
//! - [`enrtree`] — EIP-1459 node lists ("enrtree" DNS trees): entry types, geth-compatible
//!   building, root signing and verification, record-size rules, go-ethereum's tree-directory
//!   format, zone-file output and the two-party signing files. Pure: no I/O.
//! - [`dnsdisc`] — resolving trees over DNS: the [`dnsdisc::TxtResolver`] trait, a hickory-based
//!   resolver (UDP with TCP fallback), an in-memory fake, and the tree client that follows links,
//!   checks every entry's hash and reports bad entries without giving up on the rest.
//! - [`keystore`] — Web3 Secret Storage v3 keystores (scrypt or pbkdf2, aes-128-ctr, keccak MAC):
//!   the only form in which wakufleet keeps private keys at rest.
//! - [`clock`] — the wall clock, read in one place; [`atomic_file`] — files replaced whole
//!   (temporary file, fsync, rename, fsync of the directory).
//! - [`crypto`] — keccak256 and secp256k1 helpers shared by the modules above.
//! - [`filter`] — filter v2 protobufs, limits and the push codec.
//! - [`lightpush`] — lightpush v3 and legacy v2 protobufs and status codes.
//! - [`message`] — WakuMessage, its presence rules, the deterministic hash and gossip ids.
//! - [`store`] — store v3: protobufs and the message archive (SQLite or Postgres).
//! - [`sql`] — what the archive and the controller share about databases: one `Any` code path
//!   for SQLite and Postgres, per-backend migrations, fresh Postgres databases for tests.
//! - [`free_port`] — ports for tests and benchmarks to hand to a process before it binds them,
//!   outside the kernel's ephemeral range.
//! - [`tcp_transport`] — TCP dials that leave from the listen address; bytes counted per node.
//! - [`tls`] — the secure WebSocket (`/wss`) transport and its certificates.
//! - [`topics`] — static-shard pubsub topics, content topics, autosharding.
//! - [`waku_enr`] — Waku's ENR fields (`waku2`, `multiaddrs`, `rs`/`rsv`), peer ids.
//! - [`enr_seq`] — the local ENR's `seq` kept across restarts, rising when the record changes.
//! - [`codec`] — varint length-prefixed protobuf framing for request/response protocols.
//! - [`metadata`] — `/vac/waku/metadata/1.0.0`, cluster and shard handshake.
//! - [`discovery_v5`] — discv5 with Waku's `d5waku` protocol id and shard filtering.
//! - [`peer_exchange`] — `/vac/waku/peer-exchange/2.0.0-alpha1`, server and client.
//! - [`peers`] — the peer manager: dial candidates, limits, backoff, fleet diversity.
//! - [`probe`] — a libp2p handshake probe: is the node behind a record really at its address?
//! - [`relay`] — gossipsub configured as Waku relay (parameters, scoring, message ids).
//! - [`config`] — [`config::NodeConfig`], nwaku's defaults.
//! - [`options`] — [`options::NodeOptions`], nwaku's flags and TOML keys, one type for
//!   `wakufleet node` and the agent's `[node]`, with one conversion into a `NodeConfig`;
//!   [`preset`] — nwaku's `--preset` networks.
//! - [`running`] — the running node: its swarm task, split by protocol, plus
//!   [`running::NodeHandle`]; the quality of the service peers it uses as a client.
//! - [`health`] — nwaku's `/health` report from a node's figures (an isolated node is not
//!   ready).
//! - [`rest`] — nwaku's REST API over a handle; [`metrics`] — Prometheus text under nwaku's
//!   metric names.

pub mod atomic_file;
pub mod clock;
pub mod codec;
pub mod config;
pub mod config_env;
pub mod crypto;
pub mod discovery_v5;
pub mod dnsdisc;
pub mod enr_seq;
pub mod enrtree;
pub mod filter;
pub mod free_port;
pub mod health;
pub mod keystore;
pub mod lightpush;
pub mod message;
pub mod metadata;
pub mod metrics;
pub mod options;
pub mod peer_exchange;
pub mod peers;
pub mod preset;
pub mod probe;
pub mod relay;
pub mod rest;
pub mod running;
pub mod sql;
pub mod store;
pub mod tcp_transport;
pub mod tls;
pub mod topics;
pub mod waku_enr;
